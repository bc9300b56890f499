"""Stage 4, alignment filter: keep a row only if the teacher is right under every strategy.

mR3 (SPEC "Training recipe", step 3) keeps a sample only when the teacher's verdict matches the gold
label under all three language strategies: a row the teacher gets right in English but wrong when the
prompt or the reasoning is in the target language is not a reliable multilingual example.

With k samples per strategy, a strategy counts as correct when at least one of its samples is correct
(``per_strategy: any``, the default) or only when all are (``per_strategy: all``). The training target
is the first correct sample of the student's strategy (``target_strategy``).

Each row that fails has one reason: ``incorrect`` (under some failing strategy the teacher gave a wrong
label) or ``no_verdict`` (it never produced a readable verdict there); the report counts them per
language, and the parser's failure types per strategy.

``smoke_test_keep_unaligned`` exists only for plumbing runs with a teacher too weak to be right
(the tiny CPU config's 135M teacher): dropped rows are kept instead, marked ``aligned: false``, with
the student strategy's first sample as the target even when it has no verdict. It is never for real
training; the report and the pipeline's log say so whenever it kept anything.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PER_STRATEGY = ("any", "all")


@dataclass
class FilterConfig:
    """per_strategy (`str`): ``any`` or ``all`` of a strategy's k samples must be correct;
    smoke_test_keep_unaligned (`bool`): plumbing runs only, see the module docstring."""

    per_strategy: str = "any"
    smoke_test_keep_unaligned: bool = False

    def problems(self) -> list[str]:
        if self.per_strategy not in PER_STRATEGY:
            return [f"filter.per_strategy must be one of {', '.join(PER_STRATEGY)}, got {self.per_strategy!r}"]
        return []


def strategy_verdicts(traces: Sequence[Mapping[str, Any]], strategies: Sequence[str], rule: str) -> dict[str, bool]:
    """Whether the teacher counts as correct under each strategy."""
    by: dict[str, list[bool]] = defaultdict(list)
    for t in traces:
        by[t["strategy"]].append(bool(t["correct"]))
    agg = any if rule == "any" else all
    return {s: bool(by.get(s)) and agg(by[s]) for s in strategies}


def _target(traces: Sequence[Mapping[str, Any]], strategy: str, *, correct_only: bool) -> dict[str, Any] | None:
    own = sorted((t for t in traces if t["strategy"] == strategy), key=lambda t: t["sample"])
    for t in own:
        if t["correct"]:
            return dict(t)
    return dict(own[0]) if own and not correct_only else None


def alignment_filter(
    rows: list[dict[str, Any]],
    strategies: Sequence[str],
    target_strategy: str,
    config: FilterConfig,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Keep the rows whose teacher traces are correct under every strategy.

    Args:
        rows (`list[dict]`): distilled rows (with ``traces``).
        strategies (`Sequence[str]`): the strategies that must all be correct.
        target_strategy (`str`): the student's language mode; its first correct sample becomes ``target``.
        config (`FilterConfig`): see the class.

    Returns:
        `tuple[list[dict], dict]`: kept rows with ``aligned`` and ``target`` (a trace) added, and a report:
        counts in/kept/dropped per language, drop reasons, and outcomes per strategy.

    Example:

    >>> t = lambda s, ok: {"strategy": s, "sample": 0, "correct": ok, "failure": None, "score": "x"}
    >>> rows = [{"id": "a", "language": "de", "traces": [t("p", True), t("q", True)]},
    ...         {"id": "b", "language": "de", "traces": [t("p", True), t("q", False)]}]
    >>> kept, report = alignment_filter(rows, ["p", "q"], "q", FilterConfig())
    >>> [r["id"] for r in kept], report["failed_by_reason"]
    (['a'], {'incorrect': 1})
    """
    if target_strategy not in strategies:
        raise ValueError(f"the student's strategy {target_strategy!r} was not distilled; add it to distill.strategies "
                         f"(have: {', '.join(strategies)})")
    counts = _Counts()
    kept = []
    for row in rows:
        decided = _filter_row(row, strategies, target_strategy, config, counts)
        if decided is not None:
            kept.append(decided)
    return kept, _report(rows, kept, counts, config, target_strategy)


@dataclass
class _Counts:
    """What the filter saw, row by row: per language (in, kept, each drop reason, kept unaligned), the drop
    reasons, and per strategy whether the teacher counted as correct."""

    by_language: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    reasons: Counter = field(default_factory=Counter)
    by_strategy: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))


def _filter_row(row: dict[str, Any], strategies: Sequence[str], target_strategy: str, config: FilterConfig,
                counts: _Counts) -> dict[str, Any] | None:
    """The row with ``aligned`` and ``target`` when it is kept, else None; counted in ``counts``."""
    traces = row["traces"]
    verdicts = strategy_verdicts(traces, strategies, config.per_strategy)
    for s, ok in verdicts.items():
        counts.by_strategy[s]["correct" if ok else "not_correct"] += 1
    language = counts.by_language[row["language"]]
    language["in"] += 1
    if all(verdicts.values()):
        language["kept"] += 1
        return dict(row, aligned=True, target=_target(traces, target_strategy, correct_only=True))
    reason = _drop_reason(traces, verdicts)
    counts.reasons[reason] += 1
    language[reason] += 1
    target = _target(traces, target_strategy, correct_only=False) if config.smoke_test_keep_unaligned else None
    if target is None:
        return None
    language["kept_unaligned"] += 1
    return dict(row, aligned=False, target=target)


def _drop_reason(traces: Sequence[Mapping[str, Any]], verdicts: Mapping[str, bool]) -> str:
    """``incorrect`` when, under some failing strategy, the teacher gave a wrong label; else ``no_verdict``."""
    failing = [s for s, ok in verdicts.items() if not ok]
    wrong = any(t["failure"] is None and not t["correct"] for t in traces if t["strategy"] in failing)
    return "incorrect" if wrong else "no_verdict"


def _parser_failures(rows: Sequence[Mapping[str, Any]]) -> dict[str, Counter]:
    """The parser's failure types of all traces, per strategy."""
    failures: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        for t in row["traces"]:
            if t["failure"] is not None:
                failures[t["strategy"]][t["failure"]] += 1
    return failures


def _report(rows: list[dict[str, Any]], kept: list[dict[str, Any]], counts: _Counts, config: FilterConfig,
            target_strategy: str) -> dict[str, Any]:
    """The stage's report, with a warning whenever the smoke-test switch kept unaligned rows."""
    unaligned = sum(not r["aligned"] for r in kept)
    report = {
        "rows_in": len(rows),
        "kept": len(kept),
        "kept_aligned": len(kept) - unaligned,
        "kept_unaligned_smoke_test": unaligned,
        "dropped": len(rows) - len(kept),
        "failed_by_reason": dict(counts.reasons),  # rows that failed the filter (smoke-test keeps included)
        "by_language": {k: dict(v) for k, v in sorted(counts.by_language.items())},
        "by_strategy": {k: dict(v) for k, v in sorted(counts.by_strategy.items())},
        "failures_by_strategy": {k: dict(v) for k, v in sorted(_parser_failures(rows).items())},
        "per_strategy": config.per_strategy,
        "target_strategy": target_strategy,
    }
    if unaligned:
        report["warning"] = ("smoke_test_keep_unaligned kept rows the teacher did not get right under every strategy: "
                             "this SFT set is for plumbing runs only, never for a real judge")
    return report
