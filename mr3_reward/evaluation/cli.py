"""The ``mr3 eval`` arguments and command.

    mr3 eval --data ROWS --layout m-reward-bench --model smollm2-135m --seeds 0,1,2 --out out/eval
    mr3 eval --data ROWS --layout m-reward-bench --generations GENS.jsonl --protocol both --out out/eval

With ``--generations`` no engine is imported and no model is loaded.
"""

from __future__ import annotations

import argparse

from mr3_reward.evaluation.layouts import GOLD_SCALES, LAYOUTS
from mr3_reward.evaluation.score import PROTOCOLS


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``mr3 eval`` options, the judge's included."""
    from mr3_reward.judge_args import add_judge_arguments

    parser.add_argument("--data", required=True, help="JSONL, Parquet, a save_to_disk folder or a hub dataset id")
    parser.add_argument("--layout", required=True, help="the benchmark whose columns and metrics apply: "
                        + " | ".join(LAYOUTS))
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, help="evaluate the first N rows kept")
    parser.add_argument("--seeds", help="comma-separated seeds, e.g. 0,1,2 (the paper's average); default 0, or "
                        "with --generations every seed in the file")
    parser.add_argument("--protocol", default="reference", choices=PROTOCOLS,
                        help="reference: the mR3 reference's reading and scoring (default); ours: our parser and "
                             "re-sampling; both: side by side")
    parser.add_argument("--both-orders", action="store_true",
                        help="with --protocol ours or both: also judge every pair swapped (position consistency)")
    parser.add_argument("--gold-scale", default="signed", choices=GOLD_SCALES,
                        help="helpsteer3: the gold is on -3..3 (signed, HelpSteer3's own) or on the judge's 1..7")
    parser.add_argument("--generations", metavar="GENS.jsonl",
                        help="score saved generations, no model: lines of {id, seed, text, truncated}; an id and "
                             "seed with no line counts as a failed parse")
    parser.add_argument("--out", default="out/eval", help="folder for eval.json, eval.md and eval_languages.png")
    add_judge_arguments(parser)


def _seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise ValueError(f"--seeds takes comma-separated integers, e.g. --seeds 0,1,2; got {text!r}") from None


def cmd_eval(args: argparse.Namespace) -> int:
    """Run ``mr3 eval``: judge (or read ``--generations``), score, write the reports and print the markdown."""
    from mr3_reward.evaluation.layouts import read_items
    from mr3_reward.evaluation.reports import markdown, write_reports
    from mr3_reward.evaluation.run import evaluate, read_generations, score_generations

    seeds = _seeds(args.seeds)  # checked first: a typo here should not cost loading the data and the model
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit takes a positive number of rows, got {args.limit}; drop it to evaluate every row")
    if args.generations and args.both_orders:
        raise ValueError("--both-orders judges every pair swapped; saved generations hold one order, "
                         "so drop one of them")
    items, dropped = read_items(args.data, args.layout, split=args.split, limit=args.limit, gold_scale=args.gold_scale)
    if args.generations:
        from mr3_reward.templates import LanguageMode

        generations = read_generations(args.generations)
        forced = LanguageMode.for_model(args.model, args.language_mode).tgt_thinking
        result = score_generations(items, args.layout, generations, seeds=seeds, protocol=args.protocol,
                                   forced_thinking=forced, dropped=dropped, source=str(args.generations))
    else:
        from mr3_reward.judge import Judge
        from mr3_reward.judge_args import judge_options

        judge = Judge(args.model, **judge_options(args))
        result = evaluate(judge, items, args.layout, seeds=seeds or [0], protocol=args.protocol,
                          both_orders=args.both_orders, dropped=dropped)
    paths = write_reports(result, args.out)
    print(markdown(result))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
