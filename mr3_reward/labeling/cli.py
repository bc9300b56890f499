"""``mr3 label`` (and ``python -m mr3_reward.labeling``): the options, the command and its closing summary."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from mr3_reward.backends.base import Backend
from mr3_reward.debias import ON_DISAGREE
from mr3_reward.labeling.config import (DEFAULT_OPPONENTS, OPTIONAL_ROLES, PAIR_TASKS, ROUND_ROBIN_MAX, STRATEGIES,
                                        LabelConfig)
from mr3_reward.labeling.job import LabelResult, label


def add_label_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``mr3 label`` options, for ``mr3``'s subparser (and ``python -m mr3_reward.labeling``)."""
    from mr3_reward.judge_args import add_judge_arguments

    parser.add_argument("input", help="a .jsonl or .parquet file, a folder written by save_to_disk, or a hub dataset id")
    parser.add_argument("output", help="the HF dataset folder to write (work files go to OUTPUT.work/)")
    parser.add_argument("--strategy", default="best-worst", choices=STRATEGIES,
                        help="best-worst: pointwise scores, max vs min; tournament: pairwise win rates; "
                             "pair: a given pair in both orders, consistent verdicts only")
    parser.add_argument("--min-margin", type=float, default=0.0, help="drop pairs whose score margin (0-1) is lower")
    parser.add_argument("--opponents", type=int, help="tournament: compare each response with the next K only "
                        f"(default: round robin up to {ROUND_ROBIN_MAX} responses, {DEFAULT_OPPONENTS} beyond)")
    parser.add_argument("--on-disagree", default="tie", choices=ON_DISAGREE,
                        help="tournament: what a pair whose two orders disagree counts as")
    parser.add_argument("--keep-ties", action="store_true", help="pair: keep ties and disagreements, marked tie=true")
    parser.add_argument("--task", choices=[t.value for t in PAIR_TASKS],
                        help="the judge task of tournament and pair (default pairwise)")
    g = parser.add_argument_group("input columns")
    g.add_argument("--prompt-column", help="default: prompt, input or question")
    g.add_argument("--responses-column", help="a column holding a list of responses (default: responses)")
    g.add_argument("--response-columns", nargs="+", metavar="COL",
                   help="one response per column, e.g. chosen rejected (default: response_a response_b)")
    g.add_argument("--column", action="append", default=[], metavar="ROLE=COL",
                   help=f"read an optional input from another column; roles: {', '.join(OPTIONAL_ROLES)}")
    g.add_argument("--language", default="en", help="language code of rows without one (default en)")
    g.add_argument("--split", default="train", help="split of an HF dataset (default train)")
    add_judge_arguments(parser, cache_default="default")
    o = parser.add_argument_group("outputs and running")
    o.add_argument("--jsonl", help="also write the pairs as JSONL here")
    o.add_argument("--parquet", help="also write the pairs as Parquet here")
    o.add_argument("--dropped", help="write the dropped rows, with their reason, as JSONL here")
    o.add_argument("--overwrite", action="store_true",
                   help="replace outputs and work files of a different job (the same command always resumes)")
    o.add_argument("--shard-size", type=int, default=32, help="rows per checkpointed shard (default 32)")
    o.add_argument("--chunk", type=int, default=64, help="judge requests per judge call (default 64)")
    o.add_argument("--ray", action="store_true", help="label the shards on a Ray cluster (Ray Data actor pool)")
    o.add_argument("--ray-address", help="Ray cluster address (default: RAY_ADDRESS, else a new local cluster)")
    o.add_argument("--ray-actors", type=int, default=1, help="judge actors (default 1)")
    o.add_argument("--ray-cpus-per-actor", type=float, default=1.0)
    o.add_argument("--ray-gpus-per-actor", type=float, default=0.0)
    o.add_argument("--quiet", action="store_true")


def _columns_option(values: Sequence[str]) -> dict[str, str]:
    columns = {}
    for value in values:
        role, sep, col = value.partition("=")
        if not sep or not role or not col:
            raise ValueError(f"--column takes ROLE=COLUMN (e.g. --column language=lang), got {value!r}")
        columns[role] = col
    return columns


def cmd_label(args: argparse.Namespace, *, backend: Backend | None = None) -> int:
    """``mr3 label INPUT OUTPUT ...``; ``backend`` replaces ``--backend``/``--model``'s engine (tests, embedding)."""
    from mr3_reward.judge_args import judge_options

    if args.pool and args.ray:
        raise ValueError("--pool (a running judge pool) and --ray (judges started for this job) are two ways to "
                         "use Ray: pick one")
    config = LabelConfig(
        strategy=args.strategy, task=args.task, min_margin=args.min_margin, opponents=args.opponents,
        on_disagree=args.on_disagree, keep_ties=args.keep_ties, prompt_column=args.prompt_column,
        responses_column=args.responses_column,
        response_columns=tuple(args.response_columns) if args.response_columns else None,
        columns=_columns_option(args.column), language=args.language, split=args.split,
        shard_size=args.shard_size, chunk=args.chunk,
    )
    options = judge_options(args)
    if backend is not None:  # an injected engine replaces --backend and its options
        options.update(backend=backend, backend_options={})
    result = label(
        args.input, args.output, model=args.model, config=config, jsonl=args.jsonl,
        parquet=args.parquet, dropped=args.dropped, overwrite=args.overwrite, ray=args.ray,
        ray_address=args.ray_address, ray_actors=args.ray_actors, ray_cpus_per_actor=args.ray_cpus_per_actor,
        ray_gpus_per_actor=args.ray_gpus_per_actor, progress=not args.quiet, **options,
    )
    if not args.quiet:
        print_summary(result)
    return 0


def print_summary(result: LabelResult) -> None:
    """The closing table: pairs kept, dropped by reason, per-language counts, position consistency, failures."""
    from rich.console import Console
    from rich.table import Table

    s, st = result.summary, result.stats
    console = Console(stderr=True)
    console.print(f"mr3 label: {s['kept']} of {s['rows']} row(s) kept as pairs")
    table = Table()
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("pairs kept", str(s["kept"]))
    for reason, n in s["dropped"].items():
        table.add_row(f"[yellow]dropped: {reason}[/yellow]", str(n))
    for language, c in s["languages"].items():
        table.add_row(f"language {language}", f"{c['kept']}/{c['rows']}")
    pc = s["position_consistency"]
    table.add_row("position consistency", "-" if pc is None else f"{pc:.0%}")
    table.add_row("judgments", str(s["judgments"]))
    for failure, n in s["failures"].items():
        table.add_row(f"[red]failed: {failure}[/red]", str(n))
    table.add_row("shards resumed / labeled", f"{st.get('shards_resumed', 0)} / {st.get('shards_labeled', 0)}")
    table.add_row("engine items / cache hits", f"{st.get('engine_items', 0)} / {st.get('cache_hits', 0)}")
    table.add_row("wall time (s)", f"{st.get('seconds', 0.0):.1f}")
    console.print(table)
    console.print(f"wrote {s['kept']} pair(s) to {result.output}")


def main(argv: list[str] | None = None, *, backend: Backend | None = None) -> int:
    """``python -m mr3_reward.labeling INPUT OUTPUT ...`` (the same as ``mr3 label``)."""
    parser = argparse.ArgumentParser(prog="mr3 label", description=(
        "Label sampled responses into prompt/chosen/rejected pairs for TRL's DPOTrainer; resumable."))
    add_label_arguments(parser)
    args = parser.parse_args(argv)
    from mr3_reward.judge_args import run_command

    return run_command("mr3 label", lambda: cmd_label(args, backend=backend))

