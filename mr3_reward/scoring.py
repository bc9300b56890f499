"""A single-response verdict as a number: the one score normalization, used by the reward and the labeler.

- pointwise: ``(score - min) / (max - min)`` over the rubric's numeric labels, in [0, 1];
- binary: 1.0 for ``true``, 0.0 for ``false``.

With ``soft=True`` and label probabilities on the judgment (`Judgment.label_probs`), the value is the
probability-weighted one instead: the expected normalized score, or P(true) over P(true) + P(false).
"""

from __future__ import annotations

from collections.abc import Sequence

from mr3_reward.types import Judgment, TaskKind

__all__ = ["numeric_scale", "single_value"]


def numeric_scale(labels: Sequence[str]) -> tuple[float, float]:
    """(min, max) of numeric labels, e.g. ``('1', '2', '3', '4', '5')`` -> ``(1.0, 5.0)``."""
    values = [float(x) for x in labels]
    return min(values), max(values)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def single_value(judgment: Judgment, task: TaskKind, labels: Sequence[str] = (), *, soft: bool = False) -> float | None:
    """The verdict on one response as a number in [0, 1], or None when the judge gave none.

    judgment (`Judgment`): a pointwise or binary verdict.
    task (`TaskKind`): ``POINTWISE`` or ``BINARY``.
    labels (`Sequence[str]`): the pointwise rubric's numeric labels (they set the scale).
    soft (`bool`): use the label probabilities where the judgment carries them.

    >>> single_value(Judgment(score="4"), TaskKind.POINTWISE, ["1", "2", "3", "4", "5"])
    0.75
    >>> single_value(Judgment(score="true"), TaskKind.BINARY)
    1.0
    """
    if not judgment.ok:
        return None
    probs = judgment.label_probs if soft else None
    if task is TaskKind.BINARY:
        if probs and probs.get("true", 0) + probs.get("false", 0) > 0:
            return probs.get("true", 0) / (probs.get("true", 0) + probs.get("false", 0))
        return 1.0 if judgment.score == "true" else 0.0
    if task is not TaskKind.POINTWISE:
        raise ValueError(f"single_value scores pointwise and binary verdicts; got task {task.value!r}")
    lo, hi = numeric_scale(labels)
    if probs:
        numeric = {v: p for k, p in probs.items() if (v := _number(k)) is not None}
        total = sum(numeric.values())
        if total > 0:
            return (sum(v * p for v, p in numeric.items()) / total - lo) / (hi - lo)
    return (float(judgment.score) - lo) / (hi - lo)
