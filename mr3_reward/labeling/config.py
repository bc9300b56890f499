"""`LabelConfig`: how rows become pairs (strategy, margins, input columns, shards), checked at construction."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mr3_reward.debias import ON_DISAGREE
from mr3_reward.reward import COLUMNS
from mr3_reward.types import TaskKind

STRATEGIES = ("best-worst", "tournament", "pair")
DROP_REASONS = ("judge_failed", "tie", "low_margin", "inconsistent")
# Pairwise strategies may judge on the 2-way pairwise scale or the 1-7 preference-strength scale.
PAIR_TASKS = (TaskKind.PAIRWISE, TaskKind.PREFERENCE_STRENGTH)
# Round robin costs n(n-1) judgments (both orders): 30 at n = 6; beyond that each response meets a few others.
ROUND_ROBIN_MAX = 6
DEFAULT_OPPONENTS = 3
OPTIONAL_ROLES = ("id", "language", "rubric", "reference", "task_description")


@dataclass(frozen=True)
class LabelConfig:
    """How rows become pairs. Everything here except ``chunk`` changes the output, so it is in the job's hash.

    strategy (`str`): ``"best-worst"`` (default), ``"tournament"`` or ``"pair"``; see `mr3_reward.labeling`.
    task (`str`, *optional*): the judge task of the pairwise strategies: ``"pairwise"`` (default) or
        ``"preference_strength"`` (1-7); ``best-worst`` always scores pointwise.
    min_margin (`float`): drop pairs whose score margin (in [0, 1]) is below this; ties (margin 0) always drop.
    opponents (`int`, *optional*): tournament: compare each response with the next k (cyclically) instead of
        all others; default round robin up to 6 responses, 3 opponents beyond.
    on_disagree (`str`): tournament: ``"tie"`` (default), ``"mean"`` or ``"first"`` when the two orders disagree.
    keep_ties (`bool`): pair: keep ties and disagreements as rows marked ``tie=True`` instead of dropping them.
    prompt_column (`str`, *optional*): default: the first of ``prompt``, ``input``, ``question`` present.
    responses_column (`str`, *optional*): a column holding a list of responses (default ``responses``).
    response_columns (`tuple[str, ...]`, *optional*): or one response per column, e.g. ``("chosen", "rejected")``;
        default ``response_a``/``response_b`` or ``response_1``/``response_2`` when there is no list column.
    columns (`dict`, *optional*): read an optional input from another column, e.g. ``{"language": "lang"}``;
        roles: ``id``, ``language``, ``rubric``, ``reference``, ``task_description``.
    language (`str`): the language code of rows without one.
    split (`str`): the split to read from an HF dataset.
    shard_size (`int`): rows per checkpointed shard.
    chunk (`int`): judge requests per judge call (the result cache is written after each call).
    """

    strategy: str = "best-worst"
    task: str | None = None
    min_margin: float = 0.0
    opponents: int | None = None
    on_disagree: str = "tie"
    keep_ties: bool = False
    prompt_column: str | None = None
    responses_column: str | None = None
    response_columns: tuple[str, ...] | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    language: str = "en"
    split: str = "train"
    shard_size: int = 32
    chunk: int = 64

    def __post_init__(self) -> None:
        if self.response_columns is not None and not isinstance(self.response_columns, tuple):
            object.__setattr__(self, "response_columns", tuple(self.response_columns))
        object.__setattr__(self, "columns", dict(self.columns or {}))
        problems = []
        if self.strategy not in STRATEGIES:
            problems.append(f"unknown strategy {self.strategy!r}; use one of: {', '.join(STRATEGIES)}")
        elif self.task is not None:
            try:
                task = TaskKind.parse(self.task)
            except ValueError as e:
                problems.append(str(e))
            else:
                allowed = (TaskKind.POINTWISE,) if self.strategy == "best-worst" else PAIR_TASKS
                if task not in allowed:
                    problems.append(f"strategy {self.strategy!r} judges with task "
                                    f"{' or '.join(t.value for t in allowed)}; got task={task.value!r}")
        if not isinstance(self.min_margin, (int, float)) or not 0 <= self.min_margin <= 1:
            problems.append(f"min_margin is a score difference in [0, 1], got {self.min_margin!r}")
        if self.opponents is not None:
            if self.strategy != "tournament":
                problems.append("opponents sets the tournament schedule; it needs strategy='tournament'")
            elif not isinstance(self.opponents, int) or self.opponents < 1:
                problems.append(f"opponents must be a positive int, got {self.opponents!r}")
        if self.on_disagree not in ON_DISAGREE:
            problems.append(f"on_disagree must be one of {ON_DISAGREE}, got {self.on_disagree!r}")
        if self.keep_ties and self.strategy != "pair":
            problems.append("keep_ties marks undecided pairs of strategy='pair'; the other strategies drop ties")
        if self.responses_column is not None and self.response_columns is not None:
            problems.append("give responses_column (a list column) or response_columns (one column per response), "
                            "not both")
        if self.response_columns is not None and len(self.response_columns) < 2:
            problems.append(f"response_columns needs two or more columns, got {list(self.response_columns)}")
        unknown = sorted(set(self.columns) - set(OPTIONAL_ROLES))
        if unknown:
            problems.append(f"unknown column role(s) {unknown} in columns=; known: {', '.join(OPTIONAL_ROLES)}")
        if not isinstance(self.language, str) or not self.language.strip():
            problems.append(f"language must be a language code such as 'en', got {self.language!r}")
        for name in ("shard_size", "chunk"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{name} must be a positive int, got {value!r}")
        if problems:
            raise ValueError("invalid LabelConfig: " + "; ".join(problems))

    @property
    def task_kind(self) -> TaskKind:
        if self.strategy == "best-worst":
            return TaskKind.POINTWISE
        return TaskKind.parse(self.task) if self.task is not None else TaskKind.PAIRWISE

    def column(self, role: str) -> str:
        return self.columns.get(role, COLUMNS.get(role, role))

    def key(self) -> dict[str, Any]:
        """What changes the output: everything but ``chunk`` (how requests are grouped into judge calls)."""
        record = dataclasses.asdict(self)
        record.pop("chunk")
        record["task"] = self.task_kind.value
        record["response_columns"] = list(self.response_columns) if self.response_columns else None
        record["columns"] = dict(sorted(self.columns.items()))
        return record

