"""What a thinking budget saves and what constrained verdicts cost, on one vLLM engine, in one run:

    .venv/bin/python -m benchmarks budget [--n 24] [--budgets 32,64,128,256] [--unbounded 1024] [--repeats 2]
                                          [--model smollm2-135m] [--dtype D] [--max-model-len 2048] [--kv-cache-gib G]

For every budget (and unbounded: the reasoning may use all of ``--unbounded`` tokens) and both verdict modes,
the same ``--n`` requests (the multilingual sample, cycled) are judged on one `VLLMBackend` with the same
seed, result cache off, no retries, the prefix cache reset before each run:

- generated tokens and wall time per judgment;
- the failure rate;
- agreement: the share of verdicts equal to the unbudgeted verdict of the same mode and seed (over the
  requests both judged);
- the cost of constrained decoding: constrained time / free time at the same budget, the median over
  ``--repeats`` runs that alternate which mode goes first. Goal: at most 1.10.

Writes ``benchmarks/results/budget.json`` and ``budget.png``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

GOAL_CONSTRAINED = 1.10
MODES = ("free", "constrained")


def judge_once(backend: Any, reqs: list, budget: int | None, verdict: str, unbounded: int,
               explanation_tokens: int) -> dict[str, Any]:
    from mr3_reward.judge import Judge

    # Unbounded (budget None) is the judge without a budget: free verdicts are then one generation, as today.
    judge = Judge(backend.model_id, backend=backend, cache=None, max_retries=0, max_tokens=unbounded,
                  thinking_budget=budget, verdict=verdict, explanation_tokens=explanation_tokens)
    backend.llm.reset_prefix_cache()
    t = time.perf_counter()
    out = judge.judge(reqs)
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "scores": [j.score for j in out], "failures": [j.failure for j in out],
            "tokens": sum(j.completion_tokens for j in out),
            "thinking_tokens": [j.meta.get("thinking_tokens") for j in out]}


def run(n: int, budgets: list[int], unbounded: int, repeats: int, explanation_tokens: int, model: str,
        engine: dict[str, Any], out_dir: Path | None = None) -> dict[str, Any]:
    from benchmarks.common import table, write
    from benchmarks.vllm_engine import requests
    from mr3_reward.backends.vllm import VLLMBackend

    reqs = requests(n)
    backend = VLLMBackend(model, **engine)
    rows: dict[str, dict[str, Any]] = {}
    try:
        for budget in [*budgets, None]:
            name = str(budget) if budget else "unbounded"
            runs: dict[str, list[dict]] = {m: [] for m in MODES}
            for rep in range(repeats):
                for verdict in MODES if rep % 2 == 0 else MODES[::-1]:
                    runs[verdict].append(judge_once(backend, reqs, budget, verdict, unbounded, explanation_tokens))
                    r = runs[verdict][-1]
                    print(f"  budget {name:>9} {verdict:<11} run {rep + 1}: {r['seconds']:6.1f} s, "
                          f"{r['tokens']} tokens, {sum(f is not None for f in r['failures'])} failed", flush=True)
            rows[name] = {
                verdict: {
                    "seconds_per_judgment": round(statistics.median(r["seconds"] for r in rs) / n, 4),
                    "tokens_per_judgment": round(rs[0]["tokens"] / n, 1),
                    "max_thinking_tokens": max((t or 0) for t in rs[0]["thinking_tokens"]),
                    "failure_rate": round(sum(f is not None for f in rs[0]["failures"]) / n, 3),
                    "scores": rs[0]["scores"],
                } for verdict, rs in runs.items()
            }
            rows[name]["constrained_over_free"] = round(statistics.median(
                c["seconds"] / f["seconds"] for c, f in zip(runs["constrained"], runs["free"])), 3)
    finally:
        backend.close()
    for row in rows.values():
        for verdict in MODES:
            base, mine = rows["unbounded"][verdict]["scores"], row[verdict]["scores"]
            both = [(a, b) for a, b in zip(base, mine) if a is not None and b is not None]
            row[verdict]["agreement_with_unbounded"] = round(sum(a == b for a, b in both) / len(both), 3) if both else None
    result = {"model": model, "n": n, "repeats": repeats, "unbounded_tokens": unbounded,
              "explanation_tokens": explanation_tokens, "engine": engine, "goal_constrained_over_free": GOAL_CONSTRAINED,
              "budgets": rows}
    path = write("budget", result, out_dir)
    png = chart(result, out_dir)
    table(f"budget sweep, {model} on vLLM, {n} judgments per run", [
        (f"budget {name}",
         " | ".join(f"{v}: {row[v]['tokens_per_judgment']:.0f} tok, {row[v]['seconds_per_judgment'] * 1e3:.0f} ms, "
                    f"{row[v]['failure_rate']:.0%} failed, agree {row[v]['agreement_with_unbounded']}" for v in MODES),
         f"constrained/free {row['constrained_over_free']:.2f} (<= {GOAL_CONSTRAINED})",
         "yes" if row["constrained_over_free"] <= GOAL_CONSTRAINED else "NO")
        for name, row in rows.items()
    ])
    print(f"wrote {path} and {png}")
    return result


def chart(result: dict, out_dir: Path | None = None) -> Path:
    from benchmarks.common import Panel, plot

    rows = result["budgets"]
    x = list(rows)
    per = {v: {k: [rows[b][v][k] for b in x] for k in ("tokens_per_judgment", "seconds_per_judgment", "failure_rate")}
           for v in MODES}
    return plot("budget", [
        Panel("generated tokens per judgment", x=x, series={v: per[v]["tokens_per_judgment"] for v in MODES},
              ylabel="tokens", xlabel="thinking budget"),
        Panel("wall time per judgment", x=x, series={v: [s * 1e3 for s in per[v]["seconds_per_judgment"]] for v in MODES},
              ylabel="ms", xlabel="thinking budget"),
        Panel("failure rate", x=x, series={v: per[v]["failure_rate"] for v in MODES}, ylabel="share failed",
              xlabel="thinking budget", fmt="{:.2f}"),
        Panel(f"constrained / free time (goal <= {GOAL_CONSTRAINED})", x=x,
              series={"constrained / free": [rows[b]["constrained_over_free"] for b in x]}, goal=GOAL_CONSTRAINED,
              goal_label="goal <=", xlabel="thinking budget", fmt="{:.2f}"),
    ], title=f"thinking budget and constrained verdicts, {result['model']} on vLLM ({result['n']} judgments a run)",
        out_dir=out_dir, saved=result)


def main(argv: list[str] | None = None) -> None:
    from benchmarks.common import add_engine_args, engine_options

    ap = argparse.ArgumentParser(prog="python -m benchmarks budget")
    ap.add_argument("--n", type=int, default=24, help="judgments per run")
    ap.add_argument("--budgets", default="32,64,128,256", help="comma-separated thinking budgets")
    ap.add_argument("--unbounded", type=int, default=1024, help="the reasoning's room when unbounded (tokens)")
    ap.add_argument("--explanation-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out-dir", type=Path)
    add_engine_args(ap)
    a = ap.parse_args(argv)
    budgets = [int(b) for b in a.budgets.split(",")]
    run(a.n, budgets, a.unbounded, a.repeats, a.explanation_tokens, a.model,
        engine_options(a.dtype, a.max_model_len, a.kv_cache_gib), a.out_dir)


if __name__ == "__main__":
    main()
