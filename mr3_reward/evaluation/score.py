"""One seed's figures for one benchmark, and their mean and std over seeds, under either protocol.

``answers`` hold one string per item: under ``reference`` the reference's answer (`extract.ERROR` when it
read none), under ``ours`` our label (HelpSteer3: on -3..3), or None when our parser failed. The procedure
of each benchmark is in the docstring of `mr3_reward.evaluation`.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from mr3_reward.evaluation.extract import ERROR
from mr3_reward.evaluation.layouts import REWARD_BENCH_LAYOUTS, EvalItem
from mr3_reward.evaluation.metrics import f1_micro, kendall_tau_b, mean, pearson, reward_bench_score, rounded

PROTOCOLS = ("reference", "ours", "both")
SENTINEL = -10000  # the reference's ERROR_PARSE_KENDALL_VALUE: a failed HelpSteer3 answer in tau and r
# Each layout's headline figures, as the reference reports them (its names: eval.py).
HEADLINES: dict[str, tuple[str, ...]] = {
    "m-reward-bench": ("score",), "reward-bench": ("score",), "mm-eval": ("score",), "indopref": ("score",),
    "helpsteer3": ("accuracy", "kendall_tau", "pearson"),
    "include": ("accuracy", "accuracy_en", "accuracy_non_en"),
    "mgsm": ("accuracy", "accuracy_en", "accuracy_non_en"),
    "rtp-lx": ("f1_micro", "f1_micro_en", "f1_micro_non_en"),
    "polyguard": ("accuracy", "accuracy_prompt", "accuracy_response"),
}
# Counts and labels of a seed, summed or kept as they are rather than averaged.
_COUNTS = ("seed", "n", "failed", "failures", "judgments", "protocol", "ours")


def _groups(items: Sequence[EvalItem], key: Callable[[EvalItem], str]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        out[key(item)].append(i)
    return dict(sorted(out.items()))


def _accuracy(correct: Sequence[bool], idx: Sequence[int]) -> float | None:
    return sum(correct[i] for i in idx) / len(idx) if idx else None


class _Seed:
    """The figures of one seed: ``round6`` rounds to 6 digits where the reference does, and only then."""

    def __init__(self, layout: str, items: Sequence[EvalItem], answers: Sequence[str | None], protocol: str) -> None:
        self.layout, self.items, self.answers = layout, items, answers
        self.reference = protocol == "reference"
        exact = self.reference and layout in REWARD_BENCH_LAYOUTS  # m-RewardBench compares case-sensitively
        self.correct = [a is not None and (a == it.gold if exact else a.lower() == it.gold.lower())
                        for it, a in zip(items, answers)]
        self.failed = [a is None or (self.reference and a == ERROR) for a in answers]
        self.everyone = list(range(len(items)))
        self.by_language = _groups(items, lambda it: it.language)

    def round6(self, value: float | None, *, numpy: bool = False) -> float | None:
        return rounded(value, 6, numpy=numpy) if self.reference else value

    def figures(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n": len(self.items), "failed": sum(self.failed),
                               "accuracy": _accuracy(self.correct, self.everyone), "sections": {}}
        if self.layout in REWARD_BENCH_LAYOUTS:
            rb = reward_bench_score(self.items, self.correct, zero_missing=self.reference)
            out.update(score=rb["score"], sections=rb["sections"],
                       languages={k: v["score"] for k, v in rb["languages"].items()},
                       language_sections={k: v["sections"] for k, v in rb["languages"].items()})
        elif self.layout in ("mm-eval", "indopref"):
            per_subset = {s: self.round6(_accuracy(self.correct, idx))
                          for s, idx in _groups(self.items, lambda it: it.subset).items()}
            out.update(score=mean(list(per_subset.values())), sections=per_subset, languages=self._per_language())
        elif self.layout == "helpsteer3":
            out.update(self._helpsteer3(self.everyone))
            domains = {d: idx for d, idx in _groups(self.items, lambda it: it.subset).items() if d}
            out["sections"] = {d: self._helpsteer3(idx) for d, idx in domains.items()}
            out["languages"] = self._per_language()
        elif self.layout in ("include", "mgsm"):
            out.update(self._by_english("accuracy", lambda idx: _accuracy(self.correct, idx)))
        elif self.layout == "rtp-lx":
            out.update(self._by_english("f1_micro", self._f1, rounding=False))
        elif self.layout == "polyguard":
            out.update(self._polyguard(self.everyone))
            out["sections"] = {k: out[f"accuracy_{k}"] for k in ("prompt", "response")}
            per_lang = {lang: self._polyguard(idx) for lang, idx in self.by_language.items()}
            out["languages"] = {lang: v["accuracy"] for lang, v in per_lang.items()}
            out["language_sections"] = {lang: {"prompt": v["accuracy_prompt"], "response": v["accuracy_response"]}
                                        for lang, v in per_lang.items()}
        else:
            raise ValueError(f"unknown layout {self.layout!r}")
        return out

    def _per_language(self) -> dict[str, float | None]:
        return {lang: _accuracy(self.correct, idx) for lang, idx in self.by_language.items()}

    def _helpsteer3(self, idx: Sequence[int]) -> dict[str, float | None]:
        """eval.py, evaluate_helpsteer3 / calculate_hs3_stats; ours drops failed answers from tau and r."""
        gold = [int(self.items[i].gold) for i in idx]
        if self.reference:
            pred = [self._signed_or_sentinel(self.answers[i]) for i in idx]
        else:
            kept = [(g, int(self.answers[i])) for g, i in zip(gold, idx) if self.answers[i] is not None]
            gold, pred = [g for g, _ in kept], [p for _, p in kept]
        return {"accuracy": self.round6(_accuracy(self.correct, idx)),
                "kendall_tau": self.round6(kendall_tau_b(gold, pred), numpy=True),
                "pearson": self.round6(pearson(gold, pred), numpy=True)}

    @staticmethod
    def _signed_or_sentinel(answer: str | None) -> int:
        try:
            value = int(answer) if answer not in (None, ERROR) else SENTINEL
        except ValueError:
            return SENTINEL
        return value if -3 <= value <= 3 else SENTINEL

    def _f1(self, idx: Sequence[int]) -> float | None:
        """Failed answers are a label of their own, as the reference's ``"error"``."""
        return f1_micro([self.items[i].gold.lower() for i in idx],
                        [(self.answers[i] or ERROR).lower() for i in idx])

    def _by_english(self, name: str, metric: Callable[[Sequence[int]], float | None], *,
                    rounding: bool = True) -> dict[str, Any]:
        """eval.py, evaluate_accuracy_generic / evaluate_mgsm / evaluate_rtp_lx: the metric overall and per
        language (rounded for accuracy), English's own, and over the other languages' items pooled (never rounded)."""
        r = self.round6 if rounding else (lambda v: v)
        languages = {lang: r(metric(idx)) for lang, idx in self.by_language.items()}
        others = [i for lang, idx in self.by_language.items() if lang != "en" for i in idx]
        return {name: r(metric(self.everyone)), f"{name}_en": languages.get("en"),
                f"{name}_non_en": metric(others) if others else None, "languages": languages}

    def _polyguard(self, idx: Sequence[int]) -> dict[str, float | None]:
        """eval.py, evaluate_polyguard / calculate_polyguard_stats."""
        def part(kind: str) -> list[int]:
            return [i for i in idx if self.items[i].subset == kind]

        return {"accuracy": self.round6(_accuracy(self.correct, idx)),
                "accuracy_prompt": self.round6(_accuracy(self.correct, part("prompt"))),
                "accuracy_response": self.round6(_accuracy(self.correct, part("response")))}


def seed_figures(layout: str, items: Sequence[EvalItem], answers: Sequence[str | None],
                 protocol: str) -> dict[str, Any]:
    """One seed's figures: the layout's `HEADLINES`, ``accuracy`` (over all items), ``sections``, ``languages``
    (each language's headline), ``language_sections`` where a language has a breakdown, ``n`` and ``failed``."""
    if protocol not in ("reference", "ours"):
        raise ValueError(f"protocol must be 'reference' or 'ours' here, got {protocol!r}")
    if len(answers) != len(items):
        raise ValueError(f"{len(answers)} answers for {len(items)} items")
    return _Seed(layout, items, answers, protocol).figures()


def _numpy_rounded(layout: str, path: tuple[str, ...]) -> bool:
    """Whether the reference holds this figure as a numpy float (rounded the numpy way) or a Python one."""
    if layout in REWARD_BENCH_LAYOUTS:
        return True
    if layout in ("mm-eval", "indopref"):
        return path == ("score",)
    return layout == "helpsteer3" and path[-1] in ("kendall_tau", "pearson")


def _stat(values: list[float], reference: bool, numpy: bool) -> dict[str, float]:
    if not reference:
        return {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0}
    # utils.py, recursive_avg / recursive_std: the mean rounded to 4 digits, the population std around that
    # rounded mean, also rounded to 4 digits.
    avg = rounded(math.fsum(values) / len(values), 4, numpy=numpy)
    return {"mean": avg, "std": round(math.sqrt(math.fsum((x - avg) ** 2 for x in values) / len(values)), 4)}


def over_seeds(per_seed: Sequence[dict[str, Any]], layout: str, protocol: str) -> dict[str, Any]:
    """Every figure of the seeds as ``{"mean", "std"}``, nested as in one seed; None figures are skipped."""
    reference = protocol == "reference"

    def walk(values: list[Any], path: tuple[str, ...]) -> Any:
        dicts = [v for v in values if isinstance(v, dict)]
        if dicts:
            keys = list(dict.fromkeys(k for d in dicts for k in d))
            out = {k: walk([d.get(k) for d in dicts], (*path, k)) for k in keys if path or k not in _COUNTS}
            return {k: v for k, v in out.items() if v is not None}
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return _stat(numbers, reference, _numpy_rounded(layout, path)) if numbers else None

    return walk(list(per_seed), ())
