"""Judge health per call, and what goes to TRL's logs: ``log_metric`` for the numbers, ``log_extra`` for the notes.

TRL logs ``<name>/<metric>`` (e.g. ``mr3/failure_rate``) with the trainer's metrics and shows the
``<name>_verdict`` column, one note per completion, in its completions table.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mr3_reward.debias import PairVerdict, consistency
from mr3_reward.types import Judgment

log = logging.getLogger("mr3_reward.reward")


def call_metrics(
    rewards: Sequence[float | None], judgments: Sequence[Judgment], verdicts: Sequence[PairVerdict], seconds: float
) -> dict[str, float]:
    """Failure and cache-hit rates, latency, tokens spent, None rewards, position consistency (pairs only), and
    the mean label entropy over judgments that carry label probabilities (constrained verdicts always do).

    >>> call_metrics([1.0, None], [Judgment(score="true"), Judgment(score=None, failure="bad_json")], [], 0.5)["failure_rate"]
    0.5
    """
    made = [j for j in judgments if not j.meta.get("cached")]
    metrics = {
        "failure_rate": (sum(not j.ok for j in judgments) / len(judgments)) if judgments else 0.0,
        "cache_hit_rate": (1 - len(made) / len(judgments)) if judgments else 0.0,
        "latency_s": seconds,
        "completion_tokens": float(sum(j.completion_tokens for j in made)),
        "none_rewards": float(sum(r is None for r in rewards)),
        "judgments": float(len(judgments)),
    }
    c = consistency(verdicts)
    if c is not None:
        metrics["position_consistency"] = c
    sure = [label_entropy(j.label_probs) for j in judgments if j.label_probs]
    if sure:  # how sure the judge was: 0 = all mass on one label
        metrics["label_entropy"] = sum(sure) / len(sure)
    return metrics


def label_entropy(probs: Mapping[str, float]) -> float:
    """Entropy in nats of a judgment's label distribution (0 when one label has all the mass).

    >>> round(label_entropy({"true": 0.5, "false": 0.5}), 4)
    0.6931
    """
    return -sum(p * math.log(p) for p in probs.values() if p > 0)


def report(
    name: str, metrics: Mapping[str, float], notes: list[str], kwargs: Mapping[str, Any],
    on_metrics: Callable[[dict[str, float]], None] | None = None,
) -> None:
    """Hand the metrics and notes to TRL's ``log_metric`` / ``log_extra`` when the call received them, and the
    metrics to ``on_metrics`` when given. Without ``log_metric`` (AsyncGRPO's rollout worker passes none) the
    metrics go to the ``mr3_reward.reward`` logger, one INFO line per call."""
    log_metric: Callable[[str, float], None] | None = kwargs.get("log_metric")
    log_extra: Callable[[str, list], None] | None = kwargs.get("log_extra")
    named = {f"{name}/{key}": value for key, value in metrics.items()}
    if callable(log_metric):
        for key, value in named.items():
            log_metric(key, value)
    else:
        log.info("judge health: %s", " ".join(f"{key}={value:.4g}" for key, value in named.items()))
    if on_metrics is not None:
        on_metrics(named)
    if callable(log_extra):
        log_extra(f"{name}_verdict", notes)
