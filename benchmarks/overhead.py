"""What the package adds around the engine, per judgment, on the scripted backend (no model).

    .venv/bin/python -m benchmarks overhead [--n 10000] [--batch 64]

1. Cold path: render + cache key + cache miss lookup + parse + cache write, for N distinct requests
   judged in batches (as a GRPO step sends them). Reported per judgment: the median over batches of
   batch time / batch size. Goal: <= 50 us.
2. Warm replay: the same N requests again, every one a cache hit. Goal: >= 50,000 judgments/s.
Also the pieces alone (render, key, parse), so a regression points at its stage.

Writes ``benchmarks/results/overhead.json`` and ``overhead.png`` (each number against its goal).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from mr3_reward.backends.fake import FakeBackend
from mr3_reward.judge import Judge
from mr3_reward.parsing import parse_judgment
from mr3_reward.types import JudgeRequest

ANSWER = ("Both answers address the question; A is correct and concise.</think>\n"
          '{"explanation": "Assistant A gives the right number and explains it.", "score": "Assistant A"}')
GOAL_COLD_US = 50.0
GOAL_WARM_PER_S = 50_000.0


def requests(n: int) -> list[JudgeRequest]:
    body = "Here is a detailed answer with some code: def f(x): return {x: x ** 2}. " * 6
    return [JudgeRequest(task="pairwise", prompt=f"Question {i}: explain squares.", id=str(i % 97),
                         responses=(f"{body} v{i}", f"A shorter answer {i}.")) for i in range(n)]


def per_item_us(fn, items, batch):
    times = []
    for lo in range(0, len(items), batch):
        chunk = items[lo:lo + batch]
        t = time.perf_counter()
        fn(chunk)
        times.append((time.perf_counter() - t) / len(chunk) * 1e6)
    return statistics.median(times)


def run(n: int = 10_000, batch: int = 64, out_dir: Path | None = None) -> dict:
    from benchmarks.common import table, write

    reqs = requests(n)
    with tempfile.TemporaryDirectory() as tmp:
        judge = Judge(backend=FakeBackend(lambda p, s: ANSWER), cache=Path(tmp) / "bench.sqlite", max_retries=0)
        rendered = [judge.render(r) for r in reqs[:2000]]
        stages = {
            "render_us": per_item_us(lambda c: [judge.render(r) for r in c], reqs[:2000], batch),
            "key_us": per_item_us(lambda c: [judge._key(r) for r in c], rendered, batch),
            "parse_us": per_item_us(lambda c: [parse_judgment(ANSWER, r.labels, r.prompt.prefix) for r in c], rendered, batch),
        }
        cold_us = per_item_us(judge.judge, reqs, batch)
        t = time.perf_counter()
        replay = judge.judge(reqs)
        warm_s = time.perf_counter() - t
        assert all(j.meta.get("cached") for j in replay), "warm replay must be served from the cache"
    warm_per_s = n / warm_s
    result = {
        "n": n, "batch": batch, **{k: round(v, 2) for k, v in stages.items()},
        "cold_us_per_judgment_median": round(cold_us, 2), "goal_cold_us": GOAL_COLD_US,
        "warm_replay_judgments_per_s": round(warm_per_s), "goal_warm_per_s": GOAL_WARM_PER_S,
    }
    path = write("overhead", result, out_dir)
    png = chart(result, out_dir)
    table(f"overhead per judgment ({n} requests, batches of {batch}, scripted backend)", [
        ("render", f"{stages['render_us']:.1f} us", "", ""),
        ("cache key", f"{stages['key_us']:.1f} us", "", ""),
        ("parse", f"{stages['parse_us']:.1f} us", "", ""),
        ("cold: render+key+miss+parse+store", f"{cold_us:.1f} us", f"<= {GOAL_COLD_US:.0f} us",
         "yes" if cold_us <= GOAL_COLD_US else "NO"),
        ("warm replay", f"{warm_per_s:,.0f} judgments/s", f">= {GOAL_WARM_PER_S:,.0f}/s",
         "yes" if warm_per_s >= GOAL_WARM_PER_S else "NO"),
    ])
    print(f"wrote {path} and {png}")
    return result


def chart(result: dict, out_dir: Path | None = None) -> Path:
    from benchmarks.common import Panel, plot

    cold = result["cold_us_per_judgment_median"]
    return plot("overhead", [
        Panel(f"per judgment: cold path {cold:.1f} us (goal <= {GOAL_COLD_US:.0f} us)",
              x=["render", "cache key", "parse", "cold path\n(all + miss + store)"],
              series={"us per judgment": [result["render_us"], result["key_us"], result["parse_us"], cold]},
              ylabel="microseconds per judgment (median over batches)", goal=GOAL_COLD_US, goal_label="goal <=",
              fmt="{:.1f}"),
        Panel(f"warm-cache replay of {result['n']:,} judgments", x=["warm replay"],
              series={"judgments / s": [result["warm_replay_judgments_per_s"]]}, ylabel="judgments / s",
              goal=GOAL_WARM_PER_S, goal_label="goal >="),
    ], title=f"overhead per judgment, scripted backend (batches of {result['batch']})", out_dir=out_dir,
        saved=result)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks overhead")
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--out-dir", type=Path)
    a = ap.parse_args(argv)
    run(a.n, a.batch, a.out_dir)


if __name__ == "__main__":
    main()
