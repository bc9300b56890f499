"""Position debiasing: judge a pair in both orders and combine the two verdicts.

A pairwise verdict is turned into ``p``, the preference for the *first* response of the original pair,
in [0, 1]: 1 = the first wins, 0 = the second wins, 0.5 = a tie. For the 1-7 strength scale,
``p = (7 - score) / 6`` (score 1 -> 1.0, 4 -> 0.5, 7 -> 0.0). The swapped order's verdict is mirrored
(``1 - p``) before combining:

- both orders agree (same side, or both ties) -> that preference (the mean of the two, for strength);
- they disagree -> ``on_disagree``: ``"tie"`` (0.5, the default), ``"mean"`` (the average) or
  ``"first"`` (trust the original order);
- one order failed -> the other one's preference, consistency unknown;
- both failed -> None.

With ``soft=True`` and label probabilities on the judgment (`Judgment.label_probs`), ``p`` is the probability-weighted
preference instead of the hard verdict.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mr3_reward.types import JudgeRequest, Judgment, TaskKind

ON_DISAGREE = ("tie", "mean", "first")
DEBIAS = ("none", "both")


def swapped(request: JudgeRequest) -> JudgeRequest:
    """The same pair with the responses in the other order (the id is kept: same rubric variant)."""
    if len(request.responses) != 2:
        raise ValueError(f"only a pair can be swapped; this {request.task.value!r} request has {len(request.responses)} response(s)")
    return dataclasses.replace(request, responses=request.responses[::-1])


def _label_preference(label: str, task: TaskKind) -> float | None:
    """Preference for the first response implied by one label, or None for labels with no side."""
    if task is TaskKind.PREFERENCE_STRENGTH:
        try:
            return (7.0 - float(label)) / 6.0
        except ValueError:
            return None
    key = label.strip().casefold()
    if key in ("assistant a", "a", "response 1", "1"):
        return 1.0
    if key in ("assistant b", "b", "response 2", "2"):
        return 0.0
    if key in ("tie", "both bad", "both good"):
        return 0.5
    return None


def preference(judgment: Judgment, task: TaskKind, *, soft: bool = False) -> float | None:
    """Preference in [0, 1] for the first response shown to the judge, or None if there is none."""
    if not judgment.ok:
        return None
    probs: Mapping[str, float] | None = judgment.label_probs if soft else None
    if probs:
        weights = {lab: p for lab, p in probs.items() if _label_preference(lab, task) is not None}
        total = sum(weights.values())
        if total > 0:
            return sum(w * _label_preference(lab, task) for lab, w in weights.items()) / total
    return _label_preference(judgment.score, task)


@dataclass(frozen=True)
class PairVerdict:
    """The combined verdict on a pair; ``p_first`` is None when neither order could be judged."""

    p_first: float | None
    consistent: bool | None  # None when one order failed
    forward: Judgment
    backward: Judgment | None = None


def _side(p: float) -> int:
    return 0 if abs(p - 0.5) < 1e-9 else (1 if p > 0.5 else -1)


def combine(
    forward: Judgment,
    backward: Judgment | None,
    task: TaskKind,
    *,
    on_disagree: str = "tie",
    soft: bool = False,
) -> PairVerdict:
    """Combine the verdict on (A, B) with the verdict on (B, A); see the module docstring.

    >>> a = Judgment(score="Assistant A")
    >>> combine(a, a, TaskKind.PAIRWISE).p_first  # the judge always picks the first slot
    0.5
    >>> combine(a, Judgment(score="Assistant B"), TaskKind.PAIRWISE).p_first
    1.0
    """
    if on_disagree not in ON_DISAGREE:
        raise ValueError(f"on_disagree must be one of {ON_DISAGREE}, got {on_disagree!r}")
    p_fwd = preference(forward, task, soft=soft)
    if backward is None:
        return PairVerdict(p_fwd, None, forward)
    p_bwd = preference(backward, task, soft=soft)
    p_bwd = None if p_bwd is None else 1.0 - p_bwd
    if p_fwd is None or p_bwd is None:
        return PairVerdict(p_fwd if p_bwd is None else p_bwd, None, forward, backward)
    agree = _side(p_fwd) == _side(p_bwd)
    if agree or on_disagree == "mean":
        p = (p_fwd + p_bwd) / 2
    elif on_disagree == "first":
        p = p_fwd
    else:
        p = 0.5
    return PairVerdict(p, agree, forward, backward)


def in_both_orders(requests: Sequence[JudgeRequest], both: bool = True) -> list[JudgeRequest]:
    """The batch that judges ``requests`` in their order and, with ``both``, swapped: forward ones first."""
    requests = list(requests)
    return requests + [swapped(r) for r in requests] if both else requests


def pair_verdicts(
    judgments: Sequence[Judgment], n: int, task: TaskKind, *, on_disagree: str = "tie", soft: bool = False
) -> list[PairVerdict]:
    """Combine the judgments of an `in_both_orders` batch of ``n`` pairs (``n`` or ``2n`` judgments)."""
    if len(judgments) not in (n, 2 * n):
        raise ValueError(f"{len(judgments)} judgments for {n} pairs; expected {n} (one order) or {2 * n} (both)")
    backward = judgments[n:] if len(judgments) == 2 * n and n else [None] * n
    return [combine(f, b, task, on_disagree=on_disagree, soft=soft) for f, b in zip(judgments[:n], backward)]


def judge_pairs(
    judge: Any, requests: Sequence[JudgeRequest], *, both: bool = True, on_disagree: str = "tie", soft: bool = False
) -> list[PairVerdict]:
    """Judge pair requests (all of one task) in one or both orders, in one judge call, and combine each pair.

    This is the one both-orders path: the reward, the labeler and the evaluation all go through it (the
    labeler, which batches many rows into one call, through its two halves `in_both_orders` and
    `pair_verdicts`).

    >>> from mr3_reward.judge import Judge
    >>> judge = Judge(model="fake", backend="fake")  # the fake judge always picks the first slot
    >>> [v.p_first for v in judge_pairs(judge, [JudgeRequest(task="pairwise", prompt="?", responses=("x", "y"))])]
    [0.5]
    """
    requests = list(requests)
    if not requests:
        return []
    tasks = {r.task for r in requests}
    if len(tasks) != 1:
        raise ValueError(f"judge_pairs takes requests of one task; got {sorted(t.value for t in tasks)}")
    judgments = judge.judge(in_both_orders(requests, both))
    return pair_verdicts(judgments, len(requests), tasks.pop(), on_disagree=on_disagree, soft=soft)


def consistency(verdicts: Sequence[PairVerdict]) -> float | None:
    """Share of pairs judged in both orders whose two verdicts agree (None if there are none)."""
    known = [v.consistent for v in verdicts if v.consistent is not None]
    return sum(known) / len(known) if known else None


def pair_schedule(members: list[int], opponents: int | None) -> list[tuple[int, int]]:
    """Pairs to compare within one group: all n(n-1)/2 pairs, or each member against the next k
    (cyclically), n*k pairs once k < n/2.

    >>> pair_schedule([10, 11, 12], None)
    [(10, 11), (10, 12), (11, 12)]
    """
    n = len(members)
    if opponents is None or opponents >= n - 1:
        return [(members[a], members[b]) for a in range(n) for b in range(a + 1, n)]
    seen: set[tuple[int, int]] = set()
    for a in range(n):
        for step in range(1, opponents + 1):
            b = (a + step) % n
            seen.add((min(a, b), max(a, b)))
    return [(members[a], members[b]) for a, b in sorted(seen)]
