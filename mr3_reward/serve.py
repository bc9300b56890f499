"""``mr3 serve``: start, scale, inspect and stop a Ray judge pool (see `mr3_reward.backends.ray_pool`).

    ray start --head --include-dashboard=false            # or an existing cluster
    mr3 serve --model rubricreward/mR3-Qwen3-4B-en-prompt-en-thinking --replicas 2 --gpus-per-replica 1
    mr3 serve status
    mr3 serve stop

``--local`` starts a one-machine Ray instance inside the command and keeps serving in the foreground until
Ctrl-C (or ``mr3 serve stop`` from another shell); processes of the same machine connect with
``ray.init(address="auto")``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from typing import Any

from mr3_reward.backends.ray_pool import DEFAULT_NAME, NAMESPACE, JudgePool
from mr3_reward.backends.registry import BACKENDS


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", default="start", choices=["start", "status", "stop"],
                        help="start (default; also rescales a running pool), status or stop")
    parser.add_argument("--name", default=DEFAULT_NAME, help=f"the pool's name (default {DEFAULT_NAME})")
    parser.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else auto)")
    parser.add_argument("--local", action="store_true",
                        help="start: run a local Ray instance in this process and serve in the foreground")
    g = parser.add_argument_group("start")
    g.add_argument("--model", help="hub id, local dir or alias of the judge")
    g.add_argument("--engine", default="vllm", help=f"{', '.join(BACKENDS)} or package.module:Class (default vllm)")
    g.add_argument("--replicas", type=int, default=1)
    g.add_argument("--gpus-per-replica", type=float, default=1.0, help="vLLM uses tensor parallelism over them")
    g.add_argument("--cpus-per-replica", type=float, default=1.0)
    g.add_argument("--resources", type=json.loads, default={},
                   help='extra Ray resources per replica as JSON, e.g. \'{"mr3_judge": 1}\' to use judge nodes only')
    g.add_argument("--backend-option", action="append", default=[], metavar="KEY=VALUE",
                   help="engine option for every replica, e.g. max_model_len=8192 dtype=bfloat16 (repeatable)")
    g.add_argument("--request-timeout", type=float, default=900.0,
                   help="seconds one attempt of a chunk may take before it is re-sent (default 900)")
    g.add_argument("--max-restarts", type=int, default=5, help="restarts of a replica before it is taken out")
    g.add_argument("--thinking-budget", type=int, help="cap on the reasoning tokens of every budgeted or "
                   "constrained judgment the pool serves (clients set their own budget below it)")
    g.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for replicas to load (default 900)")
    parser.add_argument("--json", action="store_true", help="status: print JSON")


def _backend_options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--backend-option takes KEY=VALUE (e.g. max_model_len=8192), got {pair!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def cmd_serve(args: argparse.Namespace) -> int:
    if args.action == "status":
        return _status(JudgePool.connect(args.name, address=args.address), as_json=args.json)
    if args.action == "stop":
        JudgePool.connect(args.name, address=args.address).shutdown()
        print(f"judge pool {args.name!r} stopped (replicas and their placement groups removed)")
        return 0
    if not args.model:
        raise ValueError("mr3 serve needs --model (a hub id, local dir or alias)")
    if args.local:
        import ray

        # One machine, this process: the dashboard stays off, so nothing else listens.
        ray.init(namespace=NAMESPACE, include_dashboard=False, dashboard_host="127.0.0.1", log_to_driver=False)
    pool = JudgePool.start(
        args.model, engine=args.engine, replicas=args.replicas, gpus_per_replica=args.gpus_per_replica,
        cpus_per_replica=args.cpus_per_replica, resources=args.resources,
        backend_options=_backend_options(args.backend_option), name=args.name, address=args.address,
        timeout_s=args.timeout, request_timeout_s=args.request_timeout, max_restarts=args.max_restarts,
        thinking_budget=args.thinking_budget,
    )
    status = pool.status()
    nodes = sorted({r["node"][:8] for r in status["replicas"] if r["state"] == "ready"})
    print(f"judge pool {args.name!r} ready: {len(status['replicas'])} replica(s) of {args.engine}:{args.model} "
          f"on {len(nodes)} node(s)")
    print("connect from any process of this Ray cluster (after ray.init(address='auto')):")
    print(f"  MR3Reward(pool={args.name!r}, mode='pointwise')    mr3 label IN OUT --pool {args.name}")
    print(f"status: mr3 serve status --name {args.name}    stop: mr3 serve stop --name {args.name}", flush=True)
    if args.local:
        _serve_foreground(pool)
    return 0


def _serve_foreground(pool: JudgePool) -> None:
    """Keep the local Ray instance alive until Ctrl-C, SIGTERM, or the pool is stopped from elsewhere."""
    import ray

    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.append(True))
    while not stop:
        time.sleep(0.5)
        try:
            ray.get_actor(pool.name, namespace=NAMESPACE)
        except ValueError:  # stopped with `mr3 serve stop`
            return
    try:
        pool.shutdown()
    except Exception:
        pass


def _status(pool: JudgePool, *, as_json: bool) -> int:
    status = pool.status()
    if as_json:
        print(json.dumps(status, indent=2, default=str))
        return 0
    from rich.console import Console
    from rich.table import Table

    cfg = status["config"]
    console = Console()
    console.print(f"judge pool {status['name']!r}: {cfg['engine']}:{cfg['model']}, up {status['uptime_s']:.0f} s")
    table = Table()
    for col in ("replica", "state", "node", "served", "waiting", "restarts", "failures", "last problem"):
        table.add_column(col)
    for r in status["replicas"]:
        table.add_row(str(r["index"]), r["state"], (r["node"] or "-")[:8], str(r["served"]), str(r["waiting"]),
                      str(r["restarts"]), str(r["failures"]), r["reason"] or "")
    console.print(table)
    clients = status["clients"]
    rate = status["cache_hit_rate"]
    console.print(f"client requests {clients.get('requests', 0)}, engine items {clients.get('engine_items', 0)}, "
                  f"cache hit rate {'-' if rate is None else f'{rate:.0%}'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from mr3_reward.judge_args import run_command

    parser = argparse.ArgumentParser(prog="mr3 serve", description="Start, inspect or stop a Ray judge pool.")
    add_serve_arguments(parser)
    args = parser.parse_args(argv)
    return run_command("mr3 serve", lambda: cmd_serve(args))


if __name__ == "__main__":
    sys.exit(main())
