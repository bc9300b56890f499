"""What one long input costs the short ones batched with it, on the transformers backend, in one run:

    .venv/bin/python -m benchmarks batching [--input-limit 2048] [--max-tokens 8] [--repeats 3] [--threads 1]
                                            [--model smollm2-135m]

Five short pointwise requests and one whose 200 KB completion the judge cuts to ``--input-limit`` tokens are
judged on one `TransformersBackend` (greedy, result cache off, no retries, ``--threads`` torch threads: one
keeps a shared 2-core machine's timings steadier), after one untimed warm-up run of the six, with the sides
interleaved (`benchmarks.common.interleaved`):

- ``batch of 6``: all six in one `Judge.judge` call, batched by length (`length_batches`);
- ``long alone`` and ``5 short alone``: the parts on their own;
- ``batch of 6, padded``: the six again with every batch padded to its longest prompt (``max_padding=inf``),
  how the backend batched before: the baseline from the same run.

Goal: batch of 6 / (long alone + 5 short alone) <= 1.5, the median over repeats of the ratio within a repeat.
Writes ``benchmarks/results/batching.json`` and ``batching.png``.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

GOAL = 1.5
SIDES = ("batch of 6", "long alone", "5 short alone", "batch of 6, padded")


def requests() -> tuple[list, Any]:
    """Five short pointwise requests and one with a 200 KB completion."""
    from mr3_reward.types import JudgeRequest

    topics = ("the water cycle", "a leap year", "photosynthesis", "the speed of light", "a prime number")
    short = [JudgeRequest(task="pointwise", prompt=f"Explain {t} in one sentence.", id=f"short-{i}",
                          responses=(f"A short answer about {t}.",)) for i, t in enumerate(topics)]
    essay = " ".join(f"Sentence {i} of a very long essay about rivers, rain and the sea." for i in range(3200))
    long = JudgeRequest(task="pointwise", prompt="Summarize the essay.", id="long", responses=(essay[:200_000],))
    return short, long


def run(input_limit: int, max_tokens: int, repeats: int, model: str, threads: int | None = None,
        out_dir: Path | None = None) -> dict[str, Any]:
    import torch

    from benchmarks.common import interleaved, table, write
    from mr3_reward.backends.transformers import TransformersBackend
    from mr3_reward.judge import Judge

    if threads:
        torch.set_num_threads(threads)
    backend = TransformersBackend(model, batch_size=8)
    judge = Judge(model, backend=backend, cache=None, max_retries=0, temperature=0.0, max_tokens=max_tokens,
                  max_input_tokens=input_limit)
    short, long = requests()
    tokens = {r.id: backend.count_tokens(judge.render(r).prompt) for r in [*short, long]}
    judge.judge([*short, long])  # warm-up: the first calls of a process pay for allocations and caches

    def before(name: str) -> None:
        backend.max_padding = float("inf") if name == "batch of 6, padded" else type(backend).max_padding

    def judged(reqs: list) -> Any:
        return lambda: [j.raw for j in judge.judge(reqs)]

    runs = interleaved([("batch of 6", judged([*short, long])), ("long alone", judged([long])),
                        ("5 short alone", judged(short)), ("batch of 6, padded", judged([*short, long]))],
                       repeats, before=before)
    backend.max_padding = type(backend).max_padding

    def over_parts(side: str, field: str) -> float:
        return round(statistics.median(getattr(b, field) / (getattr(lo, field) + getattr(s, field))
                                       for b, lo, s in zip(runs[side], runs["long alone"], runs["5 short alone"])), 3)

    result = {
        "model": model, "input_limit": input_limit, "max_tokens": max_tokens, "repeats": repeats, "goal": GOAL,
        "torch_threads": torch.get_num_threads(),
        "prompt_tokens": tokens,
        "seconds": {side: [round(r.wall_s, 3) for r in runs[side]] for side in SIDES},
        "batch_over_parts": over_parts("batch of 6", "wall_s"),
        "batch_over_parts_cpu": over_parts("batch of 6", "cpu_s"),
        "padded_over_parts": over_parts("batch of 6, padded", "wall_s"),
        # The batch gives the texts of its parts: the same batches run either way.
        "same_texts": runs["batch of 6"][0].value == [*runs["5 short alone"][0].value, *runs["long alone"][0].value],
    }
    path = write("batching", result, out_dir)
    png = chart(result, out_dir)
    met = result["batch_over_parts"] <= GOAL
    table(f"one long input in a batch, {model} on transformers (input limit {input_limit} tokens)", [
        ("batch of 6 / (long + 5 short alone)", f"{result['batch_over_parts']:.2f} "
         f"(CPU {result['batch_over_parts_cpu']:.2f})", f"<= {GOAL}", "yes" if met else "NO"),
        ("padded to the longest / (long + 5 short alone)", f"{result['padded_over_parts']:.2f}", "baseline", ""),
        ("batch texts = the parts' texts", str(result["same_texts"]), "True", "yes" if result["same_texts"] else "NO"),
    ])
    print(f"wrote {path} and {png}")
    return result


def chart(result: dict, out_dir: Path | None = None) -> Path:
    from benchmarks.common import Panel, plot

    seconds = {side: statistics.median(v) for side, v in result["seconds"].items()}
    return plot("batching", [
        Panel("median wall time", x=list(seconds), series={"seconds": list(seconds.values())}, ylabel="s",
              fmt="{:.1f}"),
        Panel(f"batch / (long + short alone): {result['batch_over_parts']:.2f}", x=["by length", "padded (before)"],
              series={"ratio": [result["batch_over_parts"], result["padded_over_parts"]]}, goal=GOAL,
              goal_label="goal <=", fmt="{:.2f}"),
    ], title=f"5 short requests + 1 at the input limit ({result['input_limit']} tokens), {result['model']} on "
             f"transformers", out_dir=out_dir, saved=result)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks batching")
    ap.add_argument("--input-limit", type=int, default=2048, help="the judge's input limit in tokens")
    ap.add_argument("--max-tokens", type=int, default=8, help="tokens generated per judgment")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--out-dir", type=Path)
    a = ap.parse_args(argv)
    run(a.input_limit, a.max_tokens, a.repeats, a.model, a.threads, a.out_dir)


if __name__ == "__main__":
    main()
