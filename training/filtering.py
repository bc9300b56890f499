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
from dataclasses import dataclass
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
    kept: list[dict[str, Any]] = []
    lang: dict[str, Counter] = defaultdict(Counter)
    reasons: Counter = Counter()
    outcomes: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        traces = row["traces"]
        verdicts = strategy_verdicts(traces, strategies, config.per_strategy)
        for s, ok in verdicts.items():
            outcomes[s]["correct" if ok else "not_correct"] += 1
        lang[row["language"]]["in"] += 1
        if all(verdicts.values()):
            kept.append(dict(row, aligned=True, target=_target(traces, target_strategy, correct_only=True)))
            lang[row["language"]]["kept"] += 1
            continue
        failing = [s for s, ok in verdicts.items() if not ok]
        wrong = any(t["failure"] is None and not t["correct"] for t in traces if t["strategy"] in failing)
        reason = "incorrect" if wrong else "no_verdict"
        reasons[reason] += 1
        lang[row["language"]][reason] += 1
        if config.smoke_test_keep_unaligned:
            target = _target(traces, target_strategy, correct_only=False)
            if target is not None:
                kept.append(dict(row, aligned=False, target=target))
                lang[row["language"]]["kept_unaligned"] += 1
    failures: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        for t in row["traces"]:
            if t["failure"] is not None:
                failures[t["strategy"]][t["failure"]] += 1
    unaligned = sum(not r["aligned"] for r in kept)
    report = {
        "rows_in": len(rows),
        "kept": len(kept),
        "kept_aligned": len(kept) - unaligned,
        "kept_unaligned_smoke_test": unaligned,
        "dropped": len(rows) - len(kept),
        "failed_by_reason": dict(reasons),  # rows that failed the filter (smoke-test keeps included)
        "by_language": {k: dict(v) for k, v in sorted(lang.items())},
        "by_strategy": {k: dict(v) for k, v in sorted(outcomes.items())},
        "failures_by_strategy": {k: dict(v) for k, v in sorted(failures.items())},
        "per_strategy": config.per_strategy,
        "target_strategy": target_strategy,
    }
    if unaligned:
        report["warning"] = ("smoke_test_keep_unaligned kept rows the teacher did not get right under every strategy: "
                             "this SFT set is for plumbing runs only, never for a real judge")
    return kept, report
