"""What a reward scores and how: `RewardConfig`, checked once, at construction, with every problem at once.

The engine options (model, backend, cache, sampling) belong to the `Judge`; this module only checks that
they do not clash with ``judge=`` or ``pool=``, and leaves their own validation to the judge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mr3_reward.debias import DEBIAS, ON_DISAGREE
from mr3_reward.reward.rows import COLUMNS
from mr3_reward.types import Rubric, TaskKind, label_problem

# The judge tasks each mode accepts; the first is its default.
MODES: dict[str, tuple[TaskKind, ...]] = {
    "pointwise": (TaskKind.POINTWISE,),
    "binary": (TaskKind.BINARY,),
    "reference": (TaskKind.PAIRWISE, TaskKind.PREFERENCE_STRENGTH),
    "strength": (TaskKind.PREFERENCE_STRENGTH,),
    "group": (TaskKind.PAIRWISE, TaskKind.PREFERENCE_STRENGTH),
}
PAIR_MODES = ("reference", "strength", "group")
REFERENCE_MODES = ("reference", "strength")


@dataclass(frozen=True)
class RewardConfig:
    """The checked scoring options of a reward (see `MR3Reward` for each one); build it with `reward_config`.

    columns (`Mapping[str, str]`): role -> column for every role of `COLUMNS`, the user's mapping applied.
    explicit_columns (`frozenset[str]`): the roles the user mapped, whose column must be in every batch.
    """

    mode: str = "pointwise"
    task: TaskKind = TaskKind.POINTWISE
    rubric: Rubric | None = None
    task_description: str | None = None
    language: str = "en"
    debias: str = "none"
    on_disagree: str = "tie"
    soft: bool = False
    group_opponents: int | None = None
    group_size: int | None = None
    group_timeout_s: float = 120.0
    columns: Mapping[str, str] = field(default_factory=lambda: dict(COLUMNS))
    explicit_columns: frozenset[str] = frozenset()
    name: str = "mr3"


def reward_config(
    *,
    mode: str = "pointwise",
    task: str | TaskKind | None = None,
    rubric: Rubric | Mapping[str, str] | str | None = None,
    task_description: str | None = None,
    language: str = "en",
    debias: str | None = None,
    on_disagree: str = "tie",
    soft: bool = False,
    group_opponents: int | None = None,
    group_size: int | None = None,
    group_timeout_s: float = 120.0,
    columns: Mapping[str, str] | None = None,
    name: str = "mr3",
    engine: Mapping[str, Any] | None = None,
) -> RewardConfig:
    """Check the options of `MR3Reward` and fill in the defaults that depend on the mode.

    engine (`dict`, *optional*): how the judge is chosen (``judge``, ``pool``, ``backend``, ``backend_options``,
        ``pack``, ``family``, ``sampling``), checked only for clashes between ``judge=``, ``pool=`` and the rest.

    Raises ``ValueError("invalid MR3Reward: ...")`` listing every problem found.

    >>> reward_config(mode="group").debias
    'both'
    >>> reward_config(mode="pointwise", debias="both", on_disagree="coin")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: invalid MR3Reward: debias='both' needs a pairwise mode ...; on_disagree must be one of ...
    """
    problems: list[str] = []
    task_kind = _task_of(mode, task, problems)
    if debias is None:
        debias = "both" if mode in PAIR_MODES else "none"
    if debias not in DEBIAS:
        problems.append(f"debias must be one of {DEBIAS}, got {debias!r}")
    elif debias == "both" and mode not in PAIR_MODES:
        problems.append(f"debias='both' needs a pairwise mode (reference, strength, group); got mode={mode!r}")
    if on_disagree not in ON_DISAGREE:
        problems.append(f"on_disagree must be one of {ON_DISAGREE}, got {on_disagree!r}")
    engine = dict(engine or {})
    problems += _group_problems(mode, group_opponents, group_size, group_timeout_s, engine.get("pool"))
    unknown = sorted(set(columns or {}) - set(COLUMNS))
    if unknown:
        problems.append(f"unknown column role(s) {unknown} in columns=; known: {', '.join(COLUMNS)}")
    fixed_rubric = None
    if rubric is not None:
        try:
            fixed_rubric = Rubric.coerce(rubric)
        except (TypeError, ValueError) as e:
            problems.append(str(e))
    if fixed_rubric is not None and task_kind is not None:
        problem = label_problem(task_kind, fixed_rubric.labels, scored=True)
        if problem:
            problems.append(problem)
    problems += _engine_problems(**engine)
    if not isinstance(name, str) or not name.isidentifier():
        problems.append(f"name must be an identifier-like string (it names TRL log columns), got {name!r}")
    if problems:
        raise ValueError("invalid MR3Reward: " + "; ".join(problems))
    return RewardConfig(
        mode=mode, task=task_kind, rubric=fixed_rubric, task_description=task_description, language=language,
        debias=debias, on_disagree=on_disagree, soft=soft, group_opponents=group_opponents, group_size=group_size,
        group_timeout_s=float(group_timeout_s), columns={**COLUMNS, **(columns or {})},
        explicit_columns=frozenset(columns or {}), name=name,
    )


def _task_of(mode: str, task: str | TaskKind | None, problems: list[str]) -> TaskKind | None:
    """The judge task of ``mode`` (``task`` if given and allowed), or None after adding the problem."""
    if mode not in MODES:
        problems.append(f"unknown mode {mode!r}; use one of: {', '.join(MODES)}")
        return None
    try:
        task_kind = TaskKind.parse(task) if task is not None else MODES[mode][0]
    except ValueError as e:
        problems.append(str(e))
        return None
    if task_kind not in MODES[mode]:
        allowed = ", ".join(t.value for t in MODES[mode])
        problems.append(f"mode={mode!r} needs task {allowed}; got task={task_kind.value!r}")
    return task_kind


def _group_problems(mode: str, opponents: Any, size: Any, timeout_s: Any, pool: Any) -> list[str]:
    problems = []
    if opponents is not None and (mode != "group" or not isinstance(opponents, int) or opponents < 1):
        problems.append("group_opponents must be a positive int and needs mode='group'")
    if size is not None and (mode != "group" or pool is None or isinstance(size, bool)
                             or not isinstance(size, int) or size < 2):
        problems.append("group_size (completions per prompt, e.g. GRPO's num_generations) must be an int >= 2 "
                        "and needs mode='group' and pool=... (the ranks meet through the pool)")
    if not isinstance(timeout_s, (int, float)) or timeout_s <= 0:
        problems.append(f"group_timeout_s must be > 0 seconds, got {timeout_s!r}")
    return problems


def _engine_problems(
    judge: Any = None, pool: Any = None, backend: Any = "transformers", backend_options: Any = None,
    pack: Any = None, family: Any = None, sampling: Mapping[str, Any] | None = None,
) -> list[str]:
    """Clashes between a ready ``judge=`` or ``pool=`` and the options that would build another engine."""
    problems = []
    if pool is not None and (judge is not None or backend != "transformers" or backend_options):
        problems.append("pool= is the engine: drop judge=, backend= and backend_options= (the pool's replicas "
                        "were configured by `mr3 serve`)")
    if judge is not None:
        given = [k for k, v in (("backend_options", backend_options), ("pack", pack), ("family", family)) if v]
        given += list(sampling or {})
        if given:
            problems.append(f"judge=... already carries its engine and settings; drop {', '.join(given)} "
                            "or build the Judge with them")
    return problems

