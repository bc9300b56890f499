"""What the package adds around the engine, per judgment, beside a minimal hand-written loop in the same run.

    .venv/bin/python -m benchmarks overhead [--n 10000] [--batch 64] [--repeats 5]

The goal: the plumbing (everything but the engine) stays below 1% of the cheapest real engine call, and
plain. The cheapest one measured here is smollm2-135m with constrained verdicts and a thinking budget of 64
tokens, about 2.6-2.8 s a judgment on this CPU (`python -m benchmarks budget`; 2.6 s is used); the plumbing
is about 40 us, some 0.002% of it. Within that, the package stays in proportion to a hand-written loop:

Both sides judge the same requests on a scripted engine (no model), in batches of ``--batch`` (as a GRPO
step sends them), alternating which side runs first, so they see the same machine load:

1. Cold path. Ours: `Judge.judge` with a SQLite cache, i.e. render + cache key + cache miss + parse + store.
   Minimal: an f-string render of the same size, a sha256 key, one SQLite lookup and one insert per batch
   (of the same record: verdict, explanation and the generated text), ``json.loads`` of the answer. The
   engine is the same scripted one on both sides, at no cost. Goal: ours at most 3x the minimal loop's time.
2. Warm replay: the same requests again, all cached (a resumed or repeated run). Ours: `Judge.judge`, which
   answers a request it judged recently from its memory of recent cached requests (no render, key or
   lookup). Minimal: one SQLite lookup of the same, already computed, keys and ``json.loads`` of each
   record. Goal: ours at least half the minimal lookup's rate.
Also the pieces alone (render, key, parse), so a regression points at its stage. Each timed block starts
after a garbage collection, so the one before it (making the requests) does not leave it a collection to
pay for. Absolute times change with the machine; the ratios are the goals.

Why these goals: an earlier one (cold at most 2x) was met with tricks on the per-judgment path (frozen
objects built around their constructors, kept hash states for keys, judgments kept as field dicts). They
saved 3-5 us a judgment, under 0.001% of the cheapest engine call, and every reader paid for them. The
code is plain now; what is worth optimizing is what the engine does (batching, prefix reuse, fewer tokens,
fewer judge calls).

Writes ``benchmarks/results/overhead.json`` and ``overhead.png``.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from mr3_reward.backends.base import Generation
from mr3_reward.judge import Judge
from mr3_reward.parsing import parse_judgment
from mr3_reward.types import THINK_CLOSE, JudgeRequest

ANSWER = ("Both answers address the question; A is correct and concise.</think>\n"
          '{"explanation": "Assistant A gives the right number and explains it.", "score": "Assistant A"}')
# The cheapest real engine call measured on this machine, in seconds a judgment: smollm2-135m, constrained
# verdicts, thinking budget 64 (benchmarks/results/budget.json, rounded down). The plumbing stays below 1% of it.
CHEAPEST_ENGINE_S = 2.6
GOAL_PLUMBING_SHARE = 0.01  # ours cold, per judgment / the cheapest engine call, at most
GOAL_COLD_RATIO = 3.0  # ours / minimal time, at most
GOAL_WARM_RATIO = 0.5  # ours / minimal rate, at least
GOAL = (f"plumbing below {GOAL_PLUMBING_SHARE:.0%} of the cheapest real engine call (~{CHEAPEST_ENGINE_S:g} s: "
        f"smollm2-135m, constrained, budget 64); cold <= {GOAL_COLD_RATIO:g}x the minimal loop's time; warm replay "
        f">= {GOAL_WARM_RATIO:g}x the minimal lookup's rate")


def requests(n: int, tag: str = "") -> list[JudgeRequest]:
    body = "Here is a detailed answer with some code: def f(x): return {x: x ** 2}. " * 6
    return [JudgeRequest(task="pairwise", prompt=f"Question {tag}{i}: explain squares.", id=str(i % 97),
                         responses=(f"{body} v{i}", f"A shorter answer {i}.")) for i in range(n)]


class Scripted:
    """The engine of both sides: the same answer for every prompt, at no cost (what is measured is the rest)."""

    model_id = "scripted"

    def generate(self, requests):
        return [_ONE] * len(requests)  # a frozen Generation, shared: no engine work at all


_ONE = Generation(ANSWER, "stop", 100, 40)


class MinimalLoop:
    """The least a hand-written judge loop does for the same work: no validation, neutralizing, fitting,
    retries or typed failures."""

    def __init__(self, path: Path, system: str) -> None:
        self.system = system
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # the durability our cache has
        self.db.execute("CREATE TABLE IF NOT EXISTS j (key TEXT PRIMARY KEY, value TEXT)")

    def keys(self, reqs: list[JudgeRequest]) -> list[str]:
        prompts = [f"{self.system}\n# Input\n{r.prompt}\n# Assistant A\n{r.responses[0]}\n# Assistant B\n"
                   f"{r.responses[1]}\n# Your Response\n<think>" for r in reqs]
        return [hashlib.sha256(p.encode("utf-8")).hexdigest() for p in prompts]

    def lookup(self, keys: list[str]) -> dict[str, str]:
        marks = ",".join("?" * len(keys))
        return dict(self.db.execute(f"SELECT key, value FROM j WHERE key IN ({marks})", keys))

    def judge(self, reqs: list[JudgeRequest]) -> list[dict]:
        keys = self.keys(reqs)
        found = self.lookup(keys)
        out, new = [], []
        for k in keys:
            if k in found:
                out.append(json.loads(found[k]))
                continue
            reasoning, _, answer_text = ANSWER.rpartition(THINK_CLOSE)  # the engine's text, parsed
            answer = json.loads(answer_text)
            # What a cache must keep to give the judgment back: the verdict and the text it came from.
            record = {"score": answer["score"], "explanation": answer["explanation"], "reasoning": reasoning,
                      "raw": ANSWER}
            new.append((k, json.dumps(record)))
            out.append(record)
        self.db.execute("BEGIN")
        self.db.executemany("INSERT OR REPLACE INTO j VALUES (?, ?)", new)
        self.db.execute("COMMIT")
        return out

    def replay(self, keys: list[str]) -> list[dict]:
        return [json.loads(v) for v in self.lookup(keys).values()]


def batched_seconds(fn, items: list, batch: int) -> float:
    # Collect first: the garbage-collection debt of making the requests would otherwise fall on whichever
    # side runs first (measured: ours-first repeats read 0.4-0.7x higher than minimal-first ones). Each side
    # still pays for the collections its own work causes.
    gc.collect()
    t = time.perf_counter()
    for lo in range(0, len(items), batch):
        fn(items[lo:lo + batch])
    return time.perf_counter() - t


def per_item_us(fn, items: list, batch: int) -> float:
    return batched_seconds(fn, items, batch) / len(items) * 1e6


def run(n: int = 10_000, batch: int = 64, repeats: int = 5, out_dir: Path | None = None) -> dict:
    from benchmarks.common import write

    per = max(batch, n // repeats)
    cold = {"ours": [], "minimal": []}
    warm = {"ours": [], "minimal": []}
    with tempfile.TemporaryDirectory() as tmp:
        judge = Judge(backend=Scripted(), cache=Path(tmp) / "ours.sqlite", max_retries=0)
        system = judge.render(requests(1)[0]).prompt.system
        minimal = MinimalLoop(Path(tmp) / "minimal.sqlite", system)
        sample = requests(2000, "s")
        rendered = [judge.render(r) for r in sample]
        stages = {
            "render_us": per_item_us(lambda c: [judge.render(r) for r in c], sample, batch),
            "key_us": per_item_us(lambda c: [judge.key(r) for r in c], rendered, batch),
            "parse_us": per_item_us(lambda c: [parse_judgment(ANSWER, r.labels, r.prompt.prefix) for r in c],
                                    rendered, batch),
        }
        for k in range(repeats):
            reqs = requests(per, f"r{k}-")  # fresh requests: both sides start cold
            sides = [("ours", judge.judge), ("minimal", minimal.judge)]
            for name, fn in sides if k % 2 == 0 else sides[::-1]:
                cold[name].append(batched_seconds(fn, reqs, batch))
            keys = minimal.keys(reqs)
            replay = [("ours", lambda: batched_seconds(judge.judge, reqs, batch)),
                      ("minimal", lambda: batched_seconds(minimal.replay, keys, batch))]
            for name, fn in replay if k % 2 == 0 else replay[::-1]:
                warm[name].append(fn())
        assert all(j.meta.get("cached") for j in judge.judge(reqs[:batch])), "warm replay must hit the cache"
    cold_ratio = statistics.median(o / m for o, m in zip(cold["ours"], cold["minimal"]))
    warm_ratio = statistics.median(m / o for o, m in zip(warm["ours"], warm["minimal"]))  # rate ratio
    us = {side: statistics.median(v) / per * 1e6 for side, v in cold.items()}
    rate = {side: per / statistics.median(v) for side, v in warm.items()}
    share = us["ours"] * 1e-6 / CHEAPEST_ENGINE_S
    result = {
        "goal": GOAL, "n": per * repeats, "batch": batch, "repeats": repeats,
        **{k: round(v, 2) for k, v in stages.items()},
        "cold_us_ours": round(us["ours"], 2), "cold_us_minimal": round(us["minimal"], 2),
        "cold_ratio": round(cold_ratio, 3), "goal_cold_ratio": GOAL_COLD_RATIO,
        "warm_per_s_ours": round(rate["ours"]), "warm_per_s_minimal": round(rate["minimal"]),
        "warm_ratio": round(warm_ratio, 3), "goal_warm_ratio": GOAL_WARM_RATIO,
        "cheapest_engine_s": CHEAPEST_ENGINE_S, "plumbing_share": float(f"{share:.3g}"),
        "goal_plumbing_share": GOAL_PLUMBING_SHARE,
        "met": share <= GOAL_PLUMBING_SHARE and cold_ratio <= GOAL_COLD_RATIO and warm_ratio >= GOAL_WARM_RATIO,
    }
    path = write("overhead", result, out_dir)
    png = chart(result, out_dir)
    report(result)
    print(f"wrote {path} and {png}")
    return result


def report(result: dict) -> None:
    from benchmarks.common import table

    cold, warm, share = result["cold_ratio"], result["warm_ratio"], result["plumbing_share"]
    table(f"overhead per judgment ({result['n']} requests, batches of {result['batch']}, scripted engine, one run)", [
        ("render / key / parse", f"{result['render_us']:.1f} / {result['key_us']:.1f} / {result['parse_us']:.1f} us",
         "", ""),
        (f"plumbing / the cheapest engine call ({CHEAPEST_ENGINE_S:g} s)", f"{share:.5%}",
         f"< {GOAL_PLUMBING_SHARE:.0%}", "yes" if share <= GOAL_PLUMBING_SHARE else "NO"),
        ("cold: ours vs minimal loop", f"{result['cold_us_ours']:.1f} vs {result['cold_us_minimal']:.1f} us = {cold:.2f}x",
         f"<= {GOAL_COLD_RATIO:g}x", "yes" if cold <= GOAL_COLD_RATIO else "NO"),
        ("warm replay: ours vs minimal lookup",
         f"{result['warm_per_s_ours']:,} vs {result['warm_per_s_minimal']:,} /s = {warm:.2f}x",
         f">= {GOAL_WARM_RATIO:g}x", "yes" if warm >= GOAL_WARM_RATIO else "NO"),
    ])


def chart(result: dict, out_dir: Path | None = None) -> Path:
    from benchmarks.common import Panel, plot

    return plot("overhead", [
        Panel(f"cold path: ours {result['cold_ratio']:.2f}x the minimal loop (goal <= {GOAL_COLD_RATIO:g}x)",
              x=["minimal loop", "ours"], series={"us per judgment": [result["cold_us_minimal"], result["cold_us_ours"]]},
              ylabel="microseconds per judgment", fmt="{:.1f}"),
        Panel(f"warm replay: ours {result['warm_ratio']:.2f}x the minimal lookup's rate (goal >= {GOAL_WARM_RATIO:g}x)",
              x=["minimal lookup", "ours"], series={"judgments / s": [result["warm_per_s_minimal"], result["warm_per_s_ours"]]},
              ylabel="judgments / s"),
    ], title=(f"overhead per judgment, scripted engine (batches of {result['batch']}), both sides in one run; "
              f"plumbing {result['plumbing_share']:.4%} of the cheapest engine call (goal < {GOAL_PLUMBING_SHARE:.0%})"),
        out_dir=out_dir, saved=result)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks overhead")
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out-dir", type=Path)
    a = ap.parse_args(argv)
    run(a.n, a.batch, a.repeats, a.out_dir)


if __name__ == "__main__":
    main()
