"""Parser speed on pathological model output: every input must parse in under 0.5 s.

    .venv/bin/python -m benchmarks parser

The same inputs are parsed for correctness (never an exception) in tests/reliability/test_parser_fuzz.py; the time
goal lives here, measured in one run, because a timed assertion in a test flakes on a loaded machine.
Writes ``benchmarks/results/parser.json`` and ``parser.png`` (every input's time against the goal).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mr3_reward.parsing import parse_judgment

GOAL_S = 0.5
PAIR = ("Assistant A", "Assistant B")

PATHOLOGICAL: dict[str, str] = {
    "open braces 50k": "{" * 50_000,
    "close braces 50k": "}" * 50_000,
    "think + open braces": "</think>" + "{" * 50_000,
    "think + unbalanced": "</think>" + "}" * 50_000 + "{" * 50_000,
    "empty objects 50k": "</think>" + "{}" * 50_000,
    "nested score keys": "</think>" + '{"score": ' * 50_000,
    "python-quoted keys": "</think>" + "{'score': '" * 50_000,
    "50k answer objects": "</think>" + '{"score": "A"}' * 50_000,
    "brackets 100k": "</think>" + "[" * 100_000,
    "answer in 100k brackets": "</think>" + "[" * 100_000 + '{"score": "Assistant A"}' + "]" * 100_000,
    "100k nested objects": "</think>" + '{"a": ' * 100_000 + '"x"' + "}" * 100_000,
    "score in score 50k": "</think>" + '{"score": {"score": ' * 50_000,
    "bare score: 150k": "</think>" + "score: " * 150_000,
    "quotes 500k": "</think>" + '"' * 500_000 + "score" * 100_000,
    "comma-quote 300k": "</think>{" + ',"' * 300_000,
    "think tags 100k": "</think>" * 100_000,
    "200 kB braces explanation": "ok</think>" + json.dumps({"explanation": "x{\"}' [y] " * 20_000, "score": "Assistant A"}),
}


def run(out_dir: Path | None = None) -> dict:
    from benchmarks.common import table, write

    times = {}
    for name, text in PATHOLOGICAL.items():
        t = time.perf_counter()
        parse_judgment(text, PAIR, "<think>")
        times[name] = time.perf_counter() - t
    worst = max(times, key=times.get)
    result = {"goal_s": GOAL_S, "worst_case": worst, "worst_s": round(times[worst], 4),
              "seconds": {k: round(v, 6) for k, v in times.items()}}
    path = write("parser", result, out_dir)
    png = chart(result, out_dir)
    rows = [(name, f"{s * 1000:.2f} ms", "", "") for name, s in times.items()]
    rows.append(("worst case", f"{times[worst] * 1000:.1f} ms ({worst})", f"< {GOAL_S * 1000:.0f} ms",
                 "yes" if times[worst] < GOAL_S else "NO"))
    table("parse_judgment on pathological input", rows)
    print(f"wrote {path} and {png}")
    return result


def chart(result: dict, out_dir: Path | None = None) -> Path:
    from benchmarks.common import Panel, plot

    ms = {name: s * 1000 for name, s in result["seconds"].items()}
    return plot("parser", [
        Panel(f"worst {result['worst_s'] * 1000:.0f} ms ({result['worst_case']}); goal < {GOAL_S * 1000:.0f} ms",
              x=list(ms), series={"parse time": list(ms.values())}, horizontal=True, log=True,
              ylabel="milliseconds (log scale)", goal=GOAL_S * 1000, goal_label="goal <", fmt="{:.2g} ms"),
    ], title="parse_judgment on pathological model output", out_dir=out_dir, saved=result)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks parser")
    ap.add_argument("--out-dir", type=Path)
    run(ap.parse_args(argv).out_dir)


if __name__ == "__main__":
    main()
