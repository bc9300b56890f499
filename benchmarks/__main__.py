"""python -m benchmarks NAME [options]; `python -m benchmarks NAME --help` for a suite's options.

A suite is a module with ``main(argv)``; to add one, add a line to SUITES (see benchmarks/README.md).
"""

import importlib
import json
import sys

SUITES = {
    "overhead": "benchmarks.overhead",
    "parser": "benchmarks.parser",
    "vllm": "benchmarks.vllm_engine",
    "debias": "benchmarks.debias",
    "pool": "benchmarks.pool",
    "budget": "benchmarks.budget",
    "eval_generations": "benchmarks.eval_generations",
    "batching": "benchmarks.batching",
    "judge_quality": "benchmarks.judge_quality",
    "sft_speed": "benchmarks.sft_speed",
    "group_schemes": "benchmarks.group_schemes",
    "async_pool": "benchmarks.async_pool",
}


def run_suite(name: str, argv: list[str] | None = None) -> None:
    """Run one suite by name with its command-line options, e.g. ``run_suite("debias", ["--pairs", "8"])``.
    ``["--replot"]`` redraws ``results/NAME.png`` from ``results/NAME.json`` without measuring again (for suites
    with a ``chart(result)`` function)."""
    if name not in SUITES:
        raise SystemExit(f"unknown benchmark suite {name!r}; choose one of: {', '.join(SUITES)}")
    module = importlib.import_module(SUITES[name])
    if list(argv or []) == ["--replot"]:
        if not hasattr(module, "chart"):
            raise SystemExit(f"suite {name!r} has no chart(result) function to redraw from its JSON; run it again")
        from benchmarks.common import RESULTS

        print(f"wrote {module.chart(json.loads((RESULTS / f'{name}.json').read_text(encoding='utf-8')))}")
        return
    module.main(list(argv or []))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(f"usage: python -m benchmarks {{{','.join(SUITES)}}} [options]\n\n{__doc__.strip()}")
        return
    if not argv or argv[0] not in SUITES:
        print(f"usage: python -m benchmarks {{{','.join(SUITES)}}} [options]", file=sys.stderr)
        sys.exit(2)
    run_suite(argv[0], argv[1:])


if __name__ == "__main__":
    main()
