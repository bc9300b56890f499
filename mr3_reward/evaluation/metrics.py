"""Pure metrics: RewardBench section weighting, Kendall's tau-b, Pearson's r, micro F1, rounding.

Plain Python (no numpy or scipy): scoring 10,000 saved generations takes well under a second.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from mr3_reward.evaluation.layouts import EXAMPLE_COUNTS, SECTIONS


def mean(values: Sequence[float]) -> float | None:
    """The arithmetic mean, None for no values."""
    return math.fsum(values) / len(values) if values else None


def rounded(value: float | None, digits: int, *, numpy: bool = False) -> float | None:
    """``round(value, digits)``; ``numpy=True`` rounds as numpy does (scale, round half to even, unscale),
    which differs from Python's exact-decimal rounding at a few ties. None stays None.

    >>> rounded(0.12345, 4), rounded(0.12345, 4, numpy=True)
    (0.1235, 0.1234)
    """
    if value is None:
        return None
    if numpy:
        scale = 10.0 ** digits
        return round(value * scale) / scale
    return round(value, digits)


def section_scores(correct_by_subset: Mapping[str, Sequence[bool]], *, zero_missing: bool = False) -> dict[str, float]:
    """RewardBench section scores for one language: subset accuracies weighted by example counts.

    A section with none of its subsets present is left out, or scored 0 with ``zero_missing`` (what the
    reference's ``calculate_scores_per_section`` does). Subsets in no section are ignored.
    """
    out = {}
    for section, subsets in SECTIONS.items():
        num = den = 0.0
        for s in subsets:
            if correct_by_subset.get(s):
                num += sum(correct_by_subset[s]) / len(correct_by_subset[s]) * EXAMPLE_COUNTS[s]
                den += EXAMPLE_COUNTS[s]
        if den:
            out[section] = num / den
        elif zero_missing:
            out[section] = 0.0
    return out


def reward_bench_score(items: Sequence[Any], correct: Sequence[bool], *, zero_missing: bool = True) -> dict[str, Any]:
    """m-RewardBench / RewardBench: per language the section scores and their mean, then the mean over languages.

    zero_missing (`bool`): the reference's rule (default): a section with no subset present scores 0 and the
        language's score still divides by 4. False: the mean of the sections present.

    Returns ``{"score", "sections" (each section's mean over languages), "languages": {lang: {"score",
    "sections", "accuracy", "n"}}}``.
    """
    by_lang: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for item, ok in zip(items, correct):
        by_lang[item.language][item.subset].append(ok)
    languages = {}
    for lang, subsets in sorted(by_lang.items()):
        sections = section_scores(subsets, zero_missing=zero_missing)
        flat = [x for v in subsets.values() for x in v]
        languages[lang] = {"score": mean(list(sections.values())), "sections": sections,
                           "accuracy": sum(flat) / len(flat), "n": len(flat)}
    per_section = {s: mean([v["sections"][s] for v in languages.values() if s in v["sections"]]) for s in SECTIONS}
    return {
        "score": mean([v["score"] for v in languages.values() if v["score"] is not None]),
        "sections": {s: v for s, v in per_section.items() if v is not None},
        "languages": languages,
    }


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b (ties in either variable corrected), as ``scipy.stats.kendalltau`` computes it, in
    O(n log n); None with fewer than 2 points or when a variable is constant.

    >>> round(kendall_tau_b([1, 2, 3, 4], [1, 3, 2, 4]), 6)  # 5 concordant pairs, 1 discordant: 4 / 6
    0.666667
    """
    n = len(x)
    if n < 2 or len(y) != n:
        return None
    total = n * (n - 1) // 2

    def tied(values: Any) -> int:
        return sum(c * (c - 1) // 2 for c in Counter(values).values())

    x_ties, y_ties, joint_ties = tied(x), tied(y), tied(zip(x, y))
    # Sorted by (x, y), a pair with equal x is never inverted in y; so the discordant pairs are the strict
    # inversions of the y sequence, counted with a Fenwick tree over y's ranks.
    ys = [b for _, b in sorted(zip(x, y))]
    rank = {v: r for r, v in enumerate(sorted(set(ys)), 1)}
    tree = [0] * (len(rank) + 1)
    discordant = 0
    for seen, v in enumerate(ys):
        r = rank[v]
        at_most = 0
        k = r
        while k:
            at_most += tree[k]
            k -= k & -k
        discordant += seen - at_most
        while r < len(tree):
            tree[r] += 1
            r += r & -r
    if total == x_ties or total == y_ties:
        return None
    concordant_less_discordant = total - x_ties - y_ties + joint_ties - 2 * discordant
    tau = concordant_less_discordant / math.sqrt(total - x_ties) / math.sqrt(total - y_ties)
    return min(1.0, max(-1.0, tau))


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson's r; None with fewer than 2 points or when a variable is constant."""
    n = len(x)
    if n < 2 or len(y) != n:
        return None
    mx, my = math.fsum(x) / n, math.fsum(y) / n
    dx, dy = [a - mx for a in x], [b - my for b in y]
    sxx, syy = math.fsum(d * d for d in dx), math.fsum(d * d for d in dy)
    if sxx == 0 or syy == 0:
        return None
    return max(-1.0, min(1.0, math.fsum(a * b for a, b in zip(dx, dy)) / math.sqrt(sxx * syy)))


def f1_micro(y_true: Sequence[str], y_pred: Sequence[str]) -> float | None:
    """Micro-averaged F1 over every label seen (``sklearn.metrics.f1_score(average="micro")``); for one label
    per item it equals the accuracy. None for no items."""
    if not y_true:
        return None
    tp = sum(t == p for t, p in zip(y_true, y_pred))
    fp = fn = len(y_true) - tp  # every wrong prediction is a false positive of one label, a miss of another
    return 2 * tp / (2 * tp + fp + fn)
