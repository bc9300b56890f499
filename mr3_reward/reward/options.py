"""What a reward scores and how: `RewardConfig`, checked once, at construction, with every problem at once.

The engine options (model, backend, cache, sampling) belong to the `Judge`; this module checks that they do
not clash with ``judge=`` or ``pool=``, and lists the judge's own problems (`judge_problems`) with the reward's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mr3_reward.backends.ray_pool import JudgePool  # Ray itself is imported only when a pool is used
from mr3_reward.debias import DEBIAS, ON_DISAGREE
from mr3_reward.errors import ConfigError
from mr3_reward.judge import Judge
from mr3_reward.judge_checks import judge_problems
from mr3_reward.models import DEFAULT_MODEL
from mr3_reward.reward.rows import COLUMNS, TRL_KWARGS
from mr3_reward.reward.schemes import SCHEMES, resolve_scheme, scheme_problems
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
    group_scheme: str = "round_robin"
    group_size: int | None = None
    group_timeout_s: float = 120.0
    columns: Mapping[str, str] = field(default_factory=lambda: dict(COLUMNS))
    explicit_columns: frozenset[str] = frozenset()
    name: str = "mr3"


# The options `reward_config` checks, with the defaults `MR3Reward` documents (its signature spells them out).
_DEFAULTS: dict[str, Any] = dict(
    mode="pointwise", task=None, rubric=None, task_description=None, language="en", debias=None, on_disagree="tie",
    soft=False, group_opponents=None, group_scheme=None, group_size=None, rank=None, group_timeout_s=120.0,
    columns=None, name="mr3")


def reward_config(*, engine: Mapping[str, Any] | None = None, **options: Any) -> RewardConfig:
    """Check the options of `MR3Reward` and fill in the defaults that depend on the mode.

    options: `MR3Reward`'s options of the same names (``mode``, ``task``, ``rubric``, ..., ``name``); ``rank``
        is checked only (the reward keeps it for group mode across ranks).
    engine (`dict`, *optional*): how the judge is chosen (``judge``, ``pool``, ``model``, ``backend``,
        ``backend_options``, ``language_mode``, ``pack``, ``family``, ``cache``, ``max_retries``, ``sampling``):
        checked for clashes between ``judge=``, ``pool=`` and the rest, and by `judge_problems` when a judge
        is to be built, so one message lists every problem.

    Raises ``ConfigError("invalid MR3Reward: ...")`` (a ValueError) listing every problem found.

    >>> reward_config(mode="group").debias
    'both'
    >>> reward_config(mode="pointwise", debias="both", on_disagree="coin")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mr3_reward.errors.ConfigError: invalid MR3Reward: debias='both' needs a pairwise mode ...; on_disagree must be one of ...
    """
    unknown = sorted(set(options) - set(_DEFAULTS))
    if unknown:
        raise TypeError(f"unknown MR3Reward option(s) {unknown}; known: {', '.join(_DEFAULTS)}")
    (mode, task, rubric, task_description, language, debias, on_disagree, soft, group_opponents, group_scheme,
     group_size, rank, group_timeout_s, columns, name) = ({**_DEFAULTS, **options}[k] for k in _DEFAULTS)
    problems: list[str] = []
    task_kind = _task_of(mode, task, problems)
    if debias is None:
        debias = "both" if mode in PAIR_MODES else "none"
    if not isinstance(debias, str) or debias not in DEBIAS:
        problems.append(f"debias must be one of {DEBIAS}, got {debias!r}")
    elif debias == "both" and mode not in PAIR_MODES:
        problems.append(f"debias='both' needs a pairwise mode (reference, strength, group); got mode={mode!r}")
    if not isinstance(on_disagree, str) or on_disagree not in ON_DISAGREE:
        problems.append(f"on_disagree must be one of {ON_DISAGREE}, got {on_disagree!r}")
    if not isinstance(soft, bool):
        problems.append(f"soft must be True or False (use the engine's label probabilities), got {soft!r}")
    engine = dict(engine or {})
    problems += _group_problems(mode, group_opponents, group_size, rank, group_timeout_s, engine.get("pool"))
    problems += _scheme_problems(mode, group_scheme, group_opponents, group_size)
    problems += _text_problems(task_description, language) + _columns_problems(columns)
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
        raise ConfigError("invalid MR3Reward: " + "; ".join(problems))
    return RewardConfig(
        mode=mode, task=task_kind, rubric=fixed_rubric, task_description=task_description, language=language,
        debias=debias, on_disagree=on_disagree, soft=soft, group_opponents=group_opponents,
        group_scheme=resolve_scheme(group_scheme, group_opponents), group_size=group_size,
        group_timeout_s=float(group_timeout_s), columns={**COLUMNS, **(columns or {})},
        explicit_columns=frozenset(columns or {}), name=name,
    )


def _task_of(mode: str, task: str | TaskKind | None, problems: list[str]) -> TaskKind | None:
    """The judge task of ``mode`` (``task`` if given and allowed), or None after adding the problem."""
    if not isinstance(mode, str) or mode not in MODES:
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


def _group_problems(mode: str, opponents: Any, size: Any, rank: Any, timeout_s: Any, pool: Any) -> list[str]:
    problems = []
    if opponents is not None and (mode != "group" or not _is_int(opponents) or opponents < 1):
        problems.append(f"group_opponents must be a positive int and needs mode='group'; got {opponents!r}")
    if size is not None and (mode != "group" or pool is None or not _is_int(size) or size < 2):
        problems.append("group_size (completions per prompt, e.g. GRPO's num_generations) must be an int >= 2 "
                        "and needs mode='group' and pool=... (the ranks meet through the pool)")
    if rank is not None and (not _is_int(rank) or rank < 0 or size is None):
        problems.append(f"rank (this process's rank, default $RANK) must be an int >= 0 and needs group_size=...; "
                        f"got {rank!r}")
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not 0 < timeout_s < math.inf:
        problems.append(f"group_timeout_s must be > 0 seconds, got {timeout_s!r}")
    return problems


def _scheme_problems(mode: Any, scheme: Any, opponents: Any, size: Any) -> list[str]:
    """`scheme_problems` for a group reward; a scheme named for another mode is one problem of its own."""
    if scheme is None:
        return []
    if not isinstance(scheme, str):
        return [f"group_scheme must be the name of a group scheme (one of: {', '.join(SCHEMES)}); "
                f"got {type(scheme).__name__}"]
    if mode != "group":
        return [f"group_scheme={scheme!r} is how group mode pairs completions; use mode='group' or drop group_scheme"]
    # A bad group_opponents or group_size is reported by `_group_problems`; here only how it clashes with the scheme.
    return scheme_problems(scheme, opponents if _is_int(opponents) and opponents >= 1 else None,
                           size if _is_int(size) else None)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text_problems(task_description: Any, language: Any) -> list[str]:
    problems = []
    if task_description is not None and (not isinstance(task_description, str) or not task_description.strip()):
        problems.append(f"task_description must be text, or None for the task's built-in description; "
                        f"got {task_description!r}")
    if not isinstance(language, str) or not language.strip():
        problems.append(f"language must be a non-empty language code such as 'en' (the default for rows without "
                        f"a language column), got {language!r}")
    return problems


def _columns_problems(columns: Any) -> list[str]:
    if columns is None:
        return []
    if not isinstance(columns, Mapping):
        return [f"columns must be a dict of role -> dataset column, e.g. {{'reference': 'answer'}}; "
                f"got {type(columns).__name__}"]
    problems = []
    unknown = sorted(map(str, set(columns) - set(COLUMNS)))
    if unknown:
        problems.append(f"unknown column role(s) {unknown} in columns=; known: {', '.join(COLUMNS)}")
    reserved = {"prompts", "completions", *TRL_KWARGS}
    for role, column in columns.items():
        if not isinstance(column, str) or not column.strip() or column in reserved:
            problems.append(f"columns[{role!r}] must name a dataset column, not {column!r} (prompts, completions "
                            "and TRL's own keyword arguments are not columns)")
    shared = sorted({c for c in columns.values() if isinstance(c, str) and list(columns.values()).count(c) > 1})
    if shared:
        problems.append(f"columns= reads several roles from one column ({', '.join(shared)}); give each role its own")
    return problems


def _engine_problems(
    judge: Any = None, pool: Any = None, model: Any = DEFAULT_MODEL, backend: Any = "transformers",
    backend_options: Any = None, language_mode: Any = "auto", pack: Any = None, family: Any = None,
    cache: Any = "default", max_retries: Any = 2, sampling: Mapping[str, Any] | None = None,
) -> list[str]:
    """Clashes between a ready ``judge=`` or ``pool=`` and the options that would build another engine, and
    else what `Judge` would refuse (with a pool, the model and backend are the pool's)."""
    problems = []
    if (pool is not None and not isinstance(pool, (str, JudgePool))) or (isinstance(pool, str) and not pool.strip()):
        problems.append(f"pool must be the name of a running judge pool (see `mr3 serve`) or a JudgePool; got {pool!r}")
    if pool is not None and (judge is not None or backend != "transformers" or backend_options):
        problems.append("pool= is the engine: drop judge=, backend= and backend_options= (the pool's replicas "
                        "were configured by `mr3 serve`)")
    if judge is not None and not isinstance(judge, Judge):
        problems.append(f"judge must be a Judge, e.g. Judge('smollm2-135m', backend='transformers'); "
                        f"got {type(judge).__name__}")
    elif judge is not None and judge.backend is None:
        problems.append("judge= was built with backend=None (rendering and keys only); build it with an engine")
    if judge is not None:
        given = [k for k, v in (("backend_options", backend_options), ("pack", pack), ("family", family)) if v]
        given += list(sampling or {})
        if given:
            problems.append(f"judge=... already carries its engine and settings; drop {', '.join(given)} "
                            "or build the Judge with them")
    else:
        engine = {} if pool is not None else {"model": model, "backend": backend}
        problems += judge_problems(**engine, backend_options=backend_options, language_mode=language_mode, pack=pack,
                                   family=family, cache=cache, max_retries=max_retries, **(sampling or {}))
    return problems
