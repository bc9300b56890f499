"""The three strategies: what each row asks the judge, and how its judgments become the row's record.

A strategy plans one row at a time (`plan`): the judge requests the row needs and a ``finish`` that turns their
judgments into the output record. `label_rows` sends the requests of many rows to the judge together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mr3_reward.data import jsonl_text
from mr3_reward.debias import consistency, in_both_orders, pair_schedule, pair_verdicts
from mr3_reward.judge import Judge
from mr3_reward.labeling.config import DEFAULT_OPPONENTS, ROUND_ROBIN_MAX, LabelConfig
from mr3_reward.labeling.rows import LabelRow, is_messages
from mr3_reward.records import judgment_record
from mr3_reward.reward import stable_prompt_id
from mr3_reward.scoring import single_value
from mr3_reward.types import JudgeRequest, Judgment, Rubric, TaskKind


@dataclass
class Plan:
    """The judge requests one row needs, and how to turn their judgments into the row's record."""

    requests: list[JudgeRequest]
    finish: Callable[[list[Judgment]], dict[str, Any]]


def _request(row: LabelRow, task: TaskKind, responses: tuple[str, ...]) -> JudgeRequest:
    return JudgeRequest(
        task=task, prompt=row.prompt_text, responses=responses, rubric=row.rubric,
        task_description=row.task_description, language=row.language, reference=row.reference,
        # One id per row: every request of the row sees the same rubric variant.
        id=row.id if row.id is not None else stable_prompt_id(row.prompt_text),
    )


def _pick(scores: list[float | None], min_margin: float) -> tuple[int | None, int | None, float | None, str | None]:
    """(chosen, rejected, margin, drop reason) from per-response scores; the lowest index wins a tie."""
    scored = [i for i, s in enumerate(scores) if s is not None]
    if len(scored) < 2:
        return None, None, None, "judge_failed"
    chosen = max(scored, key=lambda i: (scores[i], -i))
    rejected = min((i for i in scored if i != chosen), key=lambda i: (scores[i], i))
    margin = scores[chosen] - scores[rejected]
    if margin <= 1e-12:
        return chosen, rejected, 0.0, "tie"
    if margin < min_margin:
        return chosen, rejected, margin, "low_margin"
    return chosen, rejected, margin, None


def _plan_best_worst(row: LabelRow, config: LabelConfig) -> Plan:
    from mr3_reward.templates import DEFAULT_LABELS

    labels = Rubric(row.rubric).labels if row.rubric else DEFAULT_LABELS[TaskKind.POINTWISE]
    # An empty response gets the lowest score without a judgment, as in MR3Reward.
    judged = [i for i in range(len(row.responses)) if row.response_text(i).strip()]
    requests = [_request(row, TaskKind.POINTWISE, (row.response_text(i),)) for i in judged]

    def finish(judgments: list[Judgment]) -> dict[str, Any]:
        scores: list[float | None] = [0.0] * len(row.responses)
        for i, j in zip(judged, judgments):
            scores[i] = single_value(j, TaskKind.POINTWISE, labels)
        chosen, rejected, margin, reason = _pick(scores, config.min_margin)
        return _record(row, config, chosen, rejected, scores, margin, reason, [],
                       [judgment_record(j, [i], meta=False) for i, j in zip(judged, judgments)])

    return Plan(requests, finish)


def _decided_without_judge(a: str, b: str) -> float | None:
    """Preference for ``a`` when no judgment is needed: identical texts tie, an empty text loses."""
    if a == b or (not a.strip() and not b.strip()):
        return 0.5
    if not b.strip():
        return 1.0
    if not a.strip():
        return 0.0
    return None


def _plan_pairs(row: LabelRow, config: LabelConfig, pairs: list[tuple[int, int]]) -> tuple[list[JudgeRequest], list]:
    """Both orders of every pair that needs the judge; ``todo`` lists (a, b, trivial preference or None)."""
    task = config.task_kind
    todo, forward = [], []
    for a, b in pairs:
        p = _decided_without_judge(row.response_text(a), row.response_text(b))
        todo.append((a, b, p))
        if p is None:
            forward.append(_request(row, task, (row.response_text(a), row.response_text(b))))
    return in_both_orders(forward), todo


def _comparisons(row: LabelRow, config: LabelConfig, todo: list, judgments: list[Judgment]) -> tuple[list, list, list]:
    """(comparison records, PairVerdicts, judgment records) for the planned pairs, in schedule order."""
    verdicts = pair_verdicts(judgments, len(judgments) // 2, config.task_kind, on_disagree=config.on_disagree)
    judged = iter(verdicts)
    records, made = [], []
    for a, b, p in todo:
        if p is not None:
            records.append({"a": a, "b": b, "p_a": p, "consistent": None, "forward": None, "backward": None})
            continue
        v = next(judged)
        records.append({"a": a, "b": b, "p_a": v.p_first, "consistent": v.consistent,
                        "forward": v.forward.score, "backward": v.backward.score})
        made += [judgment_record(v.forward, [a, b], meta=False),
                 judgment_record(v.backward, [b, a], meta=False)]
    return records, verdicts, made


def _plan_tournament(row: LabelRow, config: LabelConfig) -> Plan:
    n = len(row.responses)
    opponents = config.opponents if config.opponents is not None else (None if n <= ROUND_ROBIN_MAX else DEFAULT_OPPONENTS)
    requests, todo = _plan_pairs(row, config, pair_schedule(list(range(n)), opponents))

    def finish(judgments: list[Judgment]) -> dict[str, Any]:
        records, verdicts, made = _comparisons(row, config, todo, judgments)
        won: dict[int, list[float]] = {i: [] for i in range(n)}
        for c in records:
            if c["p_a"] is not None:
                won[c["a"]].append(c["p_a"])
                won[c["b"]].append(1.0 - c["p_a"])
        scores = [sum(w) / len(w) if w else None for w in won.values()]
        chosen, rejected, margin, reason = _pick(scores, config.min_margin)
        return _record(row, config, chosen, rejected, scores, margin, reason, records, made,
                       consistency=consistency(verdicts))

    return Plan(requests, finish)


def _plan_pair(row: LabelRow, config: LabelConfig) -> Plan:
    requests, todo = _plan_pairs(row, config, [(0, 1)])

    def finish(judgments: list[Judgment]) -> dict[str, Any]:
        records, verdicts, made = _comparisons(row, config, todo, judgments)
        [c] = records
        p, decided = c["p_a"], not verdicts  # decided: no judgment was needed (identical or empty response)
        scores = [p, None if p is None else 1.0 - p]
        if p is None or (not decided and c["consistent"] is None):
            reason = "judge_failed"  # consistency can only be checked when both orders were judged
        elif not decided and not c["consistent"]:
            reason = "inconsistent"
        elif abs(p - 0.5) < 1e-12:
            reason = "tie"
        else:
            reason = None
        if reason in ("inconsistent", "tie") and config.keep_ties:
            return _record(row, config, 0, 1, scores, 0.0, None, records, made, tie=True,
                           consistency=consistency(verdicts))
        chosen, rejected, margin = None, None, None
        if p is not None:
            chosen, rejected = (0, 1) if p >= 0.5 else (1, 0)
            margin = abs(2 * p - 1)
            if reason is None and margin < config.min_margin:
                reason = "low_margin"
        return _record(row, config, chosen, rejected, scores, margin, reason, records, made,
                       consistency=consistency(verdicts))

    return Plan(requests, finish)


PLANNERS = {"best-worst": _plan_best_worst, "tournament": _plan_tournament, "pair": _plan_pair}


def plan(row: LabelRow, config: LabelConfig) -> Plan:
    """The requests ``row`` needs under ``config.strategy``, and how to finish its record."""
    return PLANNERS[config.strategy](row, config)


def _as_output(row: LabelRow, i: int | None) -> Any:
    """A response in the output's form: conversational when the prompt is, text otherwise."""
    if i is None:
        return None
    response = row.responses[i]
    if isinstance(row.prompt, str):
        return row.response_text(i)
    return response if is_messages(response) else [{"role": "assistant", "content": response}]


def _record(row: LabelRow, config: LabelConfig, chosen: int | None, rejected: int | None,
            scores: list[float | None], margin: float | None, reason: str | None, comparisons: list,
            judgments: list, *, tie: bool = False, consistency: float | None = None) -> dict[str, Any]:
    """The output record of one row; the key order is the output's column order."""
    kept = reason is None
    return {
        "prompt": row.prompt,
        "chosen": _as_output(row, chosen) if kept else None,
        "rejected": _as_output(row, rejected) if kept else None,
        "id": row.id,
        "row": row.index,
        "language": row.language,
        "strategy": config.strategy,
        "chosen_index": chosen,
        "rejected_index": rejected,
        "scores": [None if s is None else float(s) for s in scores],
        "margin": None if margin is None else float(margin),
        "tie": tie,
        "consistency": consistency,
        "comparisons": comparisons,
        "judgments": judgments,
        "reason": reason,
    }


def label_rows(
    judge: Judge,
    rows: Sequence[LabelRow],
    config: LabelConfig | None = None,
    *,
    progress: Callable[[int], None] | None = None,
    stats: dict[str, int] | None = None,
) -> list[dict[str, Any]]:
    """Label rows in memory: one record per row (kept or dropped, see ``reason``), in order. No files, no resume.

    All the rows' requests go to the judge together, ``config.chunk`` per call, so the engine batches across
    rows. ``stats`` (a dict) accumulates the judge's ``last_stats`` (requests, cache hits, engine items).

    >>> from mr3_reward.backends.fake import FakeBackend
    >>> judge = Judge(backend=FakeBackend(lambda p, s: '</think>{"score": "%s"}' % ("5" if "Paris" in p.user else "2")))
    >>> [r] = label_rows(judge, [LabelRow(0, "example", "Capital of France?", ("Rome", "Paris", "Lyon"))])
    >>> r["chosen"], r["rejected"], r["scores"], r["margin"]
    ('Paris', 'Rome', [0.25, 1.0, 0.25], 0.75)
    """
    config = config or LabelConfig()
    plans = [plan(row, config) for row in rows]
    requests = [r for p in plans for r in p.requests]
    judgments: list[Judgment] = []
    for lo in range(0, len(requests), config.chunk):
        judgments += judge.judge(requests[lo:lo + config.chunk], progress=progress)
        if stats is not None:
            for key, value in judge.last_stats.items():
                stats[key] = stats.get(key, 0) + value
    records, k = [], 0
    for p in plans:
        records.append(p.finish(judgments[k:k + len(p.requests)]))
        k += len(p.requests)
    return records


def records_text(records: Sequence[Any]) -> str:
    """Records as the shards and the JSONL outputs hold them: one line each, strict JSON (no NaN)."""
    return jsonl_text(records, allow_nan=False)
