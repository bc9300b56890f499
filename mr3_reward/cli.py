"""The ``mr3`` command.

    mr3 judge --input requests.jsonl --output judgments.jsonl --model smollm2-135m --max-tokens 256
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

from mr3_reward.records import InputError, judgment_record, read_requests


def _summary(console, judgments, seconds: float, judge) -> None:
    from rich.table import Table

    verdicts = collections.Counter(j.score for j in judgments if j.ok)
    failures = collections.Counter(j.failure for j in judgments if not j.ok)
    tokens = sum(j.completion_tokens for j in judgments)
    console.print(f"mr3 judge: {len(judgments)} judgment(s) by {judge.model_id} ({judge.language_mode.value}, "
                  f"{_decoding(judge.sampling)})")
    console.print(f"{sum(verdicts.values())} verdicts out of {len(judgments)} ({sum(failures.values())} failed), "
                  f"{tokens} generated tokens")
    table = Table()
    table.add_column("what")
    table.add_column("count", justify="right")
    for label, n in sorted(verdicts.items()):
        table.add_row(f"verdict {label}", str(n))
    for reason, n in sorted(failures.items()):
        table.add_row(f"[red]failed: {reason}[/red]", str(n))
    table.add_row("generated tokens", str(tokens))
    table.add_row("tokens/s", f"{tokens / seconds:.1f}" if seconds > 0 else "-")
    table.add_row("wall time (s)", f"{seconds:.1f}")
    console.print(table)


def _decoding(sampling) -> str:
    budget = "unbounded reasoning" if sampling.thinking_budget is None else f"thinking budget {sampling.thinking_budget}"
    return f"{budget}, {sampling.verdict} verdicts"


def _make_judge(args: argparse.Namespace):
    from mr3_reward.judge import Judge
    from mr3_reward.judge_args import judge_options

    return Judge(args.model, **judge_options(args))


def cmd_eval(args: argparse.Namespace) -> int:
    from mr3_reward.evaluation.cli import cmd_eval as run_eval

    return run_eval(args)


def cmd_judge(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    pairs = read_requests(args.input, args.task)
    out_path = Path(args.output)
    if out_path.parent and not out_path.parent.exists():
        out_path.parent.mkdir(parents=True)
    judge = _make_judge(args)
    requests = [r for _, r in pairs]
    for n, r in enumerate(requests):  # render everything first: template errors surface before any generation
        try:
            judge.render(r)
        except (ValueError, KeyError) as e:
            raise InputError(f"{args.input}: row {n + 1} ({r.id or 'no id'}): {e}") from None
    start = time.perf_counter()
    judgments = []
    with Progress(TextColumn("judging"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=args.quiet) as bar:
        task = bar.add_task("judge", total=len(requests))
        step = max(1, args.chunk)
        for lo in range(0, len(requests), step):
            judgments += judge.judge(requests[lo:lo + step], progress=lambda n: bar.advance(task, n))
    seconds = time.perf_counter() - start
    with open(out_path, "w", encoding="utf-8") as f:
        for (row, _), j in zip(pairs, judgments):
            f.write(json.dumps({**row, "judgment": judgment_record(j)}, ensure_ascii=False) + "\n")
    if not args.quiet:
        _summary(console, judgments, seconds, judge)
        console.print(f"wrote {len(judgments)} judgment(s) to {out_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from mr3_reward.judge_args import add_judge_arguments
    from mr3_reward.labeling import add_label_arguments, cmd_label
    from mr3_reward.serve import add_serve_arguments, cmd_serve

    parser = argparse.ArgumentParser(prog="mr3", description="mR3 reasoning reward models for RLHF.")
    sub = parser.add_subparsers(dest="command", required=True)
    j = sub.add_parser("judge", help="judge a JSONL file of requests", description=(
        "Judge each line of a JSONL file: 'prompt' plus 'responses' (a list), 'response_a'/'response_b' or "
        "'response'; optional 'task', 'id', 'language', 'rubric', 'task_description', 'reference', 'options'."))
    j.add_argument("--input", required=True, help="JSONL file, one request per line")
    j.add_argument("--output", required=True, help="JSONL file to write: each input line plus a 'judgment' object "
                   "(every Judgment field, label_probs included, and 'error')")
    j.add_argument("--task", default="auto", help="auto | pairwise | preference_strength | pointwise | binary | multiple_choice")
    add_judge_arguments(j)
    j.add_argument("--chunk", type=int, default=32, help="requests per judge call (progress granularity)")
    j.add_argument("--quiet", action="store_true")
    j.set_defaults(func=cmd_judge)

    from mr3_reward.evaluation.cli import add_eval_arguments

    e = sub.add_parser("eval", help="score a judge on a benchmark as the mR3 reference does", description=(
        "Score a judge on a benchmark (m-RewardBench, RewardBench, MM-Eval, IndoPref, HelpSteer3, INCLUDE, MGSM, "
        "RTP-LX, PolyGuard) as the mR3 reference does (--protocol reference), with our parser and re-sampling "
        "(ours) or both; from saved --generations without a model; writes eval.json, eval.md and a PNG."))
    add_eval_arguments(e)
    e.set_defaults(func=cmd_eval)

    lab = sub.add_parser("label", help="label sampled responses into DPO pairs (resumable)", description=(
        "Label sampled responses into prompt/chosen/rejected pairs for TRL's DPOTrainer; resumable after any stop."))
    add_label_arguments(lab)
    lab.set_defaults(func=cmd_label)

    srv = sub.add_parser("serve", help="start, inspect or stop a Ray judge pool", description=(
        "mr3 serve [start|status|stop]: judges as Ray actors on their own GPUs, shared by every trainer rank, "
        "labeling job or custom loop of the cluster (MR3Reward(pool=NAME), --pool NAME)."))
    add_serve_arguments(srv)
    srv.set_defaults(func=cmd_serve)

    bench = sub.add_parser("bench", help="run a benchmark suite (python -m benchmarks NAME)", description=(
        "mr3 bench NAME [options], from the repository root: runs one suite of benchmarks/ (listed in "
        "benchmarks/README.md); `mr3 bench NAME --help` shows a suite's own options."))
    bench.add_argument("suite", nargs="?", help="the suite, e.g. overhead, parser, vllm, debias, pool, budget")
    bench.add_argument("options", nargs=argparse.REMAINDER, help="the suite's own options")
    bench.set_defaults(func=cmd_bench, bench_parser=bench)
    return parser


def cmd_bench(args: argparse.Namespace) -> int:
    """The benchmark suites live in the source checkout's ``benchmarks/`` folder, not in the installed package."""
    if (Path.cwd() / "benchmarks" / "__main__.py").is_file() and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # the `mr3` script's own folder is on sys.path, not the checkout
    try:
        from benchmarks.__main__ import SUITES, run_suite
    except ImportError:
        raise ImportError("mr3 bench runs the suites of a source checkout: run it from the repository root "
                          "(the folder holding benchmarks/)") from None
    if args.suite is None:
        args.bench_parser.print_help()
        print(f"\nsuites: {', '.join(SUITES)}")
        return 2
    if args.suite not in SUITES:
        raise ValueError(f"unknown benchmark suite {args.suite!r}; choose one of: {', '.join(SUITES)}")
    run_suite(args.suite, args.options)
    return 0


def main(argv: list[str] | None = None) -> int:
    from mr3_reward.judge_args import run_command

    args = build_parser().parse_args(argv)
    return run_command(f"mr3 {args.command}", lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
