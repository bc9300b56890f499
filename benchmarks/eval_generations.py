"""Scoring saved generations without a model: `mr3 eval --generations` on 10,000 synthetic m-RewardBench rows.

    .venv/bin/python -m benchmarks eval_generations [--n 10000] [--repeats 3]

Measures, in one run, reading the rows and generations and scoring them under each protocol, beside the
least any reader must do: decoding the two files' JSON lines. Goal: under one second for 10,000 rows
(the reference protocol). Writes ``benchmarks/results/eval_generations.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

GOAL_S = 1.0
SOURCES = ("alpacaeval-easy", "mt-bench-hard", "donotanswer", "math-prm", "hep-go")


def synthetic(folder: Path, n: int = 10_000) -> tuple[Path, Path]:
    """``n`` m-RewardBench rows in 4 languages and 5 sources, and generations for 9 in 10 of them (the rest
    count as failed parses): two thirds right, the rest 'Assistant A' whatever the gold."""
    rows, gens = [], []
    for i in range(n):
        gold = "Assistant A" if i % 2 else "Assistant B"
        rows.append({"id": f"r{i}", "language": ["en", "de", "zh", "ar"][i % 4], "source": SOURCES[i % 5],
                     "input": f"question {i}", "response_1": "a" * 200, "response_2": "b" * 200, "actual_score": gold})
        if i % 10:
            verdict = gold if i % 3 else "Assistant A"
            gens.append({"id": f"r{i}", "seed": 0, "text": "thinking " * 100 + f'</think>{{"explanation": "x", '
                         f'"score": "{verdict}"}}', "truncated": False})
    paths = folder / "rows.jsonl", folder / "gens.jsonl"
    for path, lines in zip(paths, (rows, gens)):
        path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    return paths


def score(rows: Path, gens: Path, protocol: str = "reference"):
    from mr3_reward.evaluation import read_generations, read_items, score_generations

    items, dropped = read_items(rows, "m-reward-bench")
    return score_generations(items, "m-reward-bench", read_generations(gens), dropped=dropped, protocol=protocol)


def _decode(rows: Path, gens: Path) -> None:
    for path in (rows, gens):
        with open(path, encoding="utf-8") as f:
            [json.loads(line) for line in f]


def _best(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def run(n: int = 10_000, repeats: int = 3, out_dir: Path | None = None) -> dict:
    from benchmarks.common import Panel, plot, table, write

    with tempfile.TemporaryDirectory() as tmp:
        rows, gens = synthetic(Path(tmp), n)
        seconds = {"decode JSON only": _best(lambda: _decode(rows, gens), repeats)}
        for protocol in ("reference", "ours", "both"):
            seconds[protocol] = _best(lambda: score(rows, gens, protocol), repeats)
    result = {"n": n, "repeats": repeats, "seconds": {k: round(v, 3) for k, v in seconds.items()}, "goal_s": GOAL_S,
              "reference_over_decode": round(seconds["reference"] / seconds["decode JSON only"], 2)}
    path = write("eval_generations", result, out_dir)
    png = plot("eval_generations", [Panel(f"scoring {n:,} saved generations (best of {repeats})", x=list(seconds),
                                          series={"seconds": list(seconds.values())}, goal=GOAL_S, goal_label="goal <",
                                          ylabel="seconds", fmt="{:.2f}")],
               title="mr3 eval --generations, no model", out_dir=out_dir, saved=result)
    table(f"scoring {n:,} saved generations", [
        (name, f"{s:.2f} s", f"< {GOAL_S:g} s" if name == "reference" else "",
         ("yes" if s < GOAL_S else "NO") if name == "reference" else "") for name, s in seconds.items()])
    print(f"wrote {path} and {png}")
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks eval_generations")
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out-dir", type=Path)
    a = ap.parse_args(argv)
    run(a.n, a.repeats, a.out_dir)


if __name__ == "__main__":
    main()
