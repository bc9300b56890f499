"""A judge pool under AsyncGRPO-style load: many single-group reward calls at once on one event loop.

    .venv/bin/python -m benchmarks async_pool [--calls 64] [--per-token-ms 4] [--tokens 64]

Two replicas of `LatencyBackend` (an engine call costs ``tokens x per_token_s`` however many sequences are in
it). ``--calls`` reward calls of one group each (``--group`` completions of one prompt, round robin in both
orders: 12 judgments for 4, one chunk) are awaited together on one asyncio loop, while a heartbeat coroutine
sleeps 5 ms in a loop and records how late it wakes (the loop's longest stall). Sides, in one run:

* ``async``: `AsyncMR3Reward(pool=..., mode="group")`, what a user of TRL's AsyncGRPO hits; replicas with
  ``engine_calls=64``, standing in for an engine that batches across calls (``vllm serve``);
* ``async, engine_calls=1``: the same against replicas that run one engine call at a time (vLLM's in-process
  engine): chunks that arrive while the engine works wait for its next call;
* ``blocking``: a reward coroutine that calls `MR3Reward` on the loop, so `ray.get` blocks it (the baseline).

Measured per side: p50 / p90 latency of a call over one group's call measured alone in the same run, each
replica's share of the judgments, the longest stall. Goals (for ``async``): stall <= 50 ms, p90 <= 1.5x one
group alone, every replica 40-60% of the work.

Writes ``benchmarks/results/async_pool.json`` and ``async_pool.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.common import Panel, plot, table, write
from mr3_reward.backends.ray_pool import JudgePool
from mr3_reward.reward import AsyncMR3Reward, MR3Reward

ENGINE = "mr3_reward.backends.testing:LatencyBackend"
GOAL_STALL_MS = 50.0
GOAL_P90 = 1.5  # x one group's call alone
GOAL_SHARE = (0.4, 0.6)
HEARTBEAT_S = 0.005


def start(name: str, args: argparse.Namespace, engine_calls: int) -> JudgePool:
    return JudgePool.start(
        "latency", engine=ENGINE, name=name, replicas=2, gpus_per_replica=0, cpus_per_replica=1,
        backend_options={"per_token_s": args.per_token_ms / 1000, "tokens": args.tokens},
        engine_calls=engine_calls, timeout_s=300, chunk_size=16,
    )


def group(tag: str, size: int) -> tuple[list[str], list[str]]:
    """One prompt's completions, distinct per call so nothing is shared between calls."""
    return [f"prompt {tag}"] * size, [f"answer {tag}.{k} " + "x" * k for k in range(size)]


async def heartbeat(stop: asyncio.Event) -> float:
    """The longest the loop kept a 5 ms sleep waiting beyond its 5 ms, in seconds."""
    worst = 0.0
    while not stop.is_set():
        t = time.perf_counter()
        await asyncio.sleep(HEARTBEAT_S)
        worst = max(worst, time.perf_counter() - t - HEARTBEAT_S)
    return worst


async def concurrently(call: Callable[[list[str], list[str]], Awaitable[list]], n: int, size: int,
                       tag: str) -> dict[str, Any]:
    """``n`` calls of one group each awaited together beside the heartbeat: latencies, wall, the worst stall."""
    stop = asyncio.Event()
    beat = asyncio.create_task(heartbeat(stop))
    await asyncio.sleep(2 * HEARTBEAT_S)  # the heartbeat is running before the first call starts

    async def timed(k: int) -> float:
        t = time.perf_counter()
        rewards = await call(*group(f"{tag} {k}", size))
        assert all(r is not None for r in rewards), "a benchmark group was not judged"
        return time.perf_counter() - t

    start = time.perf_counter()
    latencies = await asyncio.gather(*(timed(k) for k in range(n)))
    wall = time.perf_counter() - start
    stop.set()
    return {"latencies": latencies, "wall_s": wall, "stall_s": await beat}


def served(pool: JudgePool) -> list[int]:
    return [r["served"] for r in sorted(pool.status()["replicas"], key=lambda r: r["index"])]


def measure(pool: JudgePool, reward: MR3Reward, args: argparse.Namespace, side: str) -> dict[str, Any]:
    """One side: warm up, one group alone (median of 5), then ``--calls`` groups at once."""
    if isinstance(reward, AsyncMR3Reward):
        call = reward
    else:
        async def call(prompts: list[str], completions: list[str]) -> list:  # judges on the loop: ray.get blocks it
            return reward(prompts, completions)
    asyncio.run(concurrently(call, 4, args.group, f"{side} warm"))
    alone = [asyncio.run(concurrently(call, 1, args.group, f"{side} alone {k}"))["wall_s"] for k in range(5)]
    before = served(pool)
    run = asyncio.run(concurrently(call, args.calls, args.group, side))
    work = [a - b for a, b in zip(served(pool), before)]
    lat = sorted(run["latencies"])
    one = statistics.median(alone)
    p50, p90 = statistics.median(lat), statistics.quantiles(lat, n=10)[-1]
    return {"side": side, "alone_s": round(one, 4), "p50_s": round(p50, 4), "p90_s": round(p90, 4),
            "max_s": round(lat[-1], 4), "p50_over_alone": round(p50 / one, 3), "p90_over_alone": round(p90 / one, 3),
            "wall_s": round(run["wall_s"], 3), "stall_ms": round(run["stall_s"] * 1000, 1),
            "judgments": work, "shares": [round(w / sum(work), 3) for w in work]}


def met(side: dict[str, Any]) -> dict[str, bool]:
    return {"stall": side["stall_ms"] <= GOAL_STALL_MS, "p90": side["p90_over_alone"] <= GOAL_P90,
            "shares": all(GOAL_SHARE[0] <= s <= GOAL_SHARE[1] for s in side["shares"])}


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks async_pool")
    ap.add_argument("--calls", type=int, default=64, help="single-group calls awaited at once")
    ap.add_argument("--group", type=int, default=4, help="completions per group")
    ap.add_argument("--per-token-ms", type=float, default=4.0)
    ap.add_argument("--tokens", type=int, default=64)
    args = ap.parse_args(argv)

    import ray

    from benchmarks.judge_quality import _commit

    ray.init(num_cpus=8, include_dashboard=False, namespace="mr3", log_to_driver=False)
    sides = []
    for name, engine_calls, blocking in (("async", 64, False), ("async, engine_calls=1", 1, False),
                                         ("blocking", 64, True)):
        pool = start(f"bench-async-{len(sides)}", args, engine_calls)
        reward = (MR3Reward if blocking else AsyncMR3Reward)(pool=pool.name, mode="group", cache=None)
        sides.append({**measure(pool, reward, args, name), "engine_calls": engine_calls})
        pool.shutdown()
        print(f"  {name:<24} p90 {sides[-1]['p90_over_alone']:.2f}x alone, stall {sides[-1]['stall_ms']:.0f} ms, "
              f"shares {sides[-1]['shares']}", flush=True)
    ray.shutdown()
    ours = sides[0]
    result = {"settings": vars(args), "commit": _commit(), "engine_call_s": args.tokens * args.per_token_ms / 1000,
              "sides": sides,
              "goals": {"stall_ms_max": GOAL_STALL_MS, "p90_over_alone_max": GOAL_P90, "share_range": GOAL_SHARE},
              "met": met(ours)}
    path = write("async_pool", result)
    png = chart(result)
    report(result)
    print(f"wrote {path} and {png}")


def chart(result: dict[str, Any]) -> Any:
    sides = result["sides"]
    names = [s["side"] for s in sides]
    return plot("async_pool", [
        Panel("latency of a call / one group alone", x=names,
              series={"p50": [s["p50_over_alone"] for s in sides], "p90": [s["p90_over_alone"] for s in sides]},
              goal=GOAL_P90, goal_label="p90 goal", fmt="{:.2f}", log=True),
        Panel("longest event-loop stall (ms)", x=names, series={"stall": [max(s["stall_ms"], 0.1) for s in sides]},
              goal=GOAL_STALL_MS, fmt="{:.0f}", log=True),
        Panel("share of the judgments per replica", x=names,
              series={f"replica {i}": [s["shares"][i] for s in sides] for i in range(len(sides[0]["shares"]))},
              goal=GOAL_SHARE[1], goal_label="max share", fmt="{:.2f}"),
    ], title=f"{result['settings']['calls']} single-group reward calls at once on one event loop, 2 replicas "
             f"({result['engine_call_s']:g} s engine call)", saved=result if "machine" in result else None)


def report(result: dict[str, Any]) -> None:
    rows = []
    for s in result["sides"]:
        goal = s is result["sides"][0]
        ok = met(s)
        rows += [
            (f"{s['side']}: p50 / p90 over one group alone",
             f"{s['p50_over_alone']:.2f} / {s['p90_over_alone']:.2f} ({s['alone_s']:.3f} s alone)",
             f"p90 <= {GOAL_P90}" if goal else "", _yes(ok["p90"], goal)),
            (f"{s['side']}: longest loop stall", f"{s['stall_ms']:.1f} ms", f"<= {GOAL_STALL_MS:g} ms" if goal else "",
             _yes(ok["stall"], goal)),
            (f"{s['side']}: replica shares", ", ".join(f"{x:.0%}" for x in s["shares"]), "40-60% each" if goal else "",
             _yes(ok["shares"], goal)),
        ]
    table("AsyncGRPO-style load on a judge pool", rows)


def _yes(ok: bool, goal: bool) -> str:
    return ("yes" if ok else "NO") if goal else ""
