"""Ray judge pool scaling: N fixed-latency replicas standing in for GPU engines, N = 1, 2, 4, 8.

    .venv/bin/python -m benchmarks pool [--replicas 1 2 4 8] [--per-replica 256]

Each replica runs `LatencyBackend`: one engine step of up to ``--step-batch`` sequences costs
``tokens * per_token_s`` (64 x 4 ms = 256 ms by default), however many sequences are in it, as a batched
GPU engine decodes. One client sends ``per-replica x N`` requests through `JudgePool`.

1. Throughput scaling: judgments/s with N replicas divided by N x the 1-replica figure, measured in one run.
   Goal: >= 0.9 for every N.
2. Routing overhead per request: the round trip of a single-request call through the pool to a replica whose
   engine answers at once (no batching to hide behind), median over 300 calls. Goal: <= 2 ms.
   Also the wall time beyond the engine's own time, per request, in the scaling runs (the first engine step
   of a call starts with the first chunk to arrive, so a call takes about one step more than the ideal).

Writes ``benchmarks/results/pool.json`` and ``pool.png``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

from benchmarks.common import Panel, plot, table, write
from mr3_reward.backends.base import ChatPrompt, GenerationRequest
from mr3_reward.backends.ray_pool import JudgePool
from mr3_reward.types import Sampling

ENGINE = "mr3_reward.backends.testing:LatencyBackend"
GOAL_EFFICIENCY = 0.9
GOAL_ROUTING_MS = 2.0


def batch(n: int, tag: str) -> list[GenerationRequest]:
    return [GenerationRequest(ChatPrompt("Judge. 'enum': ['true', 'false']", f"{tag} {i}"), Sampling(max_tokens=64))
            for i in range(n)]


def start(name: str, replicas: int, per_token_s: float, tokens: int, step_batch: int) -> JudgePool:
    return JudgePool.start(
        "latency", engine=ENGINE, name=name, replicas=replicas, gpus_per_replica=0, cpus_per_replica=1,
        backend_options={"per_token_s": per_token_s, "tokens": tokens, "max_batch": step_batch},
        max_batch=step_batch, timeout_s=300, chunk_size=16, max_inflight=2 * step_batch,
    )


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks pool")
    ap.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--per-replica", type=int, default=256, help="requests per replica in a scaling run")
    ap.add_argument("--per-token-ms", type=float, default=4.0)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--step-batch", type=int, default=32, help="sequences per engine step")
    ap.add_argument("--round-trips", type=int, default=300)
    args = ap.parse_args(argv)

    import ray

    ray.init(num_cpus=2 * max(args.replicas) + 2, include_dashboard=False, namespace="mr3", log_to_driver=False)
    step_s = args.tokens * args.per_token_ms / 1000

    # Routing overhead: single-request calls to an engine that answers at once.
    pool = start("bench-rt", 1, 0.0, 1, args.step_batch)
    one = batch(1, "rt")
    for _ in range(20):
        pool.generate(one)
    trips = []
    for _ in range(args.round_trips):
        t = time.perf_counter()
        pool.generate(one)
        trips.append((time.perf_counter() - t) * 1000)
    pool.shutdown()
    routing_ms = statistics.median(trips)
    routing_p90 = statistics.quantiles(trips, n=10)[-1]

    runs = []
    for n in args.replicas:
        pool = start(f"bench-{n}", n, args.per_token_ms / 1000, args.tokens, args.step_batch)
        pool.generate(batch(n * args.step_batch, f"warm {n}"))  # every replica answers once before timing
        requests = batch(n * args.per_replica, f"n{n}")
        t = time.perf_counter()
        gens = pool.generate(requests)
        wall = time.perf_counter() - t
        assert all(g.finish_reason == "stop" for g in gens), "a benchmark request failed"
        ideal = math.ceil(args.per_replica / args.step_batch) * step_s
        runs.append({"replicas": n, "requests": len(requests), "wall_s": round(wall, 3),
                     "judgments_per_s": round(len(requests) / wall, 1), "ideal_s": round(ideal, 3),
                     "beyond_engine_ms_per_request": round(max(0.0, wall - ideal) * 1000 / len(requests), 3)})
        pool.shutdown()
    ray.shutdown()

    base = runs[0]["judgments_per_s"] / runs[0]["replicas"]
    for r in runs:
        r["efficiency"] = round(r["judgments_per_s"] / (r["replicas"] * base), 3)
    worst = min(r["efficiency"] for r in runs)
    result = {
        "settings": vars(args), "engine_step_s": step_s, "runs": runs,
        "routing_round_trip_ms": {"median": round(routing_ms, 3), "p90": round(routing_p90, 3)},
        "goals": {"efficiency_min": GOAL_EFFICIENCY, "routing_ms_max": GOAL_ROUTING_MS},
        "met": {"efficiency": worst >= GOAL_EFFICIENCY, "routing": routing_ms <= GOAL_ROUTING_MS},
    }
    path = write("pool", result)
    ns = [r["replicas"] for r in runs]
    png = plot("pool", [
        Panel(f"throughput vs replicas (worst efficiency {worst:.2f})", x=ns,
              series={"measured": [r["judgments_per_s"] for r in runs], "linear": [n * base for n in ns]},
              kind="line", reference="linear", xlabel="replicas", ylabel="judgments / s"),
        Panel("scaling efficiency = throughput / (N x 1-replica)", x=[str(n) for n in ns],
              series={"efficiency": [r["efficiency"] for r in runs]}, goal=GOAL_EFFICIENCY, fmt="{:.2f}",
              xlabel="replicas"),
        Panel("routing round trip, 1 request (ms)", x=["median", "p90"],
              series={"ms": [routing_ms, routing_p90]}, goal=GOAL_ROUTING_MS, fmt="{:.2f}"),
    ], title=f"Ray judge pool: {args.tokens} tokens x {args.per_token_ms:g} ms per engine step of "
             f"{args.step_batch}")
    rows = [(f"throughput, {r['replicas']} replica(s)", f"{r['judgments_per_s']:.0f}/s "
             f"(efficiency {r['efficiency']:.2f})", f">= {GOAL_EFFICIENCY}", "yes" if r["efficiency"] >= GOAL_EFFICIENCY else "NO")
            for r in runs]
    rows.append(("routing round trip (median)", f"{routing_ms:.2f} ms", f"<= {GOAL_ROUTING_MS} ms",
                 "yes" if routing_ms <= GOAL_ROUTING_MS else "NO"))
    rows += [(f"wall beyond engine, {r['replicas']} replica(s)", f"{r['beyond_engine_ms_per_request']:.2f} ms/request", "", "")
             for r in runs]
    table("Ray judge pool", rows)
    print(f"wrote {path} and {png}")
