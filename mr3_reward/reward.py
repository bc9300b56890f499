"""MR3Reward: an mR3 judge as a TRL reward function (GRPO, RLOO, Online DPO) or for a custom loop.

    trainer = GRPOTrainer(model=..., reward_funcs=[MR3Reward(model="rubricreward/mR3-Qwen3-4B-en-prompt-en-thinking",
                                                             mode="pointwise")], ...)

Modes and their rewards (``p`` is the combined preference for the completion, see `mr3_reward.debias`):

| mode        | judge task                 | reward                                                        | judgments per completion |
|-------------|----------------------------|---------------------------------------------------------------|--------------------------|
| pointwise   | pointwise 1..N             | (score - min) / (max - min), in [0, 1]                        | 1                        |
| binary      | binary true/false          | 1.0 for true, 0.0 for false (with a ``reference`` if given)    | 1                        |
| reference   | pairwise vs ``reference``  | p, in [0, 1] (1 = better than the reference)                   | 2 (both orders)          |
| strength    | 1-7 vs ``reference``       | 2p - 1, a signed margin in [-1, 1]                            | 2 (both orders)          |
| group       | pairwise within the group  | mean p over its comparisons = win rate, ties count 1/2        | see below                |

In ``group`` mode the completions of one prompt (GRPO's ``num_generations``, found by prompt identity)
are compared pairwise: round robin costs n(n-1)/2 pairs per group of n, ``group_opponents=k`` compares
each completion with the next k in the group (n*k pairs once k < n/2); each pair costs 2
judgments with ``debias="both"`` (the default for pairwise modes), 1 with ``"none"``.

`None` is returned for a completion the judge could not judge after its retries (TRL masks it), and
for a completion that is not a string. An empty completion gets the mode's minimum reward without a
judgment. Identical completions in a pair are a tie without a judgment.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mr3_reward.backends.base import Backend
from mr3_reward.backends.ray_pool import JudgePool  # Ray itself is imported only when a pool is used
from mr3_reward.cache import JudgmentCache
from mr3_reward.debias import DEBIAS, ON_DISAGREE, PairVerdict, combine, consistency, pair_schedule, swapped
from mr3_reward.judge import DEFAULT_MODEL, Judge
from mr3_reward.types import JudgeRequest, Judgment, Rubric, Sampling, TaskKind

MODES: dict[str, tuple[TaskKind, ...]] = {
    "pointwise": (TaskKind.POINTWISE,),
    "binary": (TaskKind.BINARY,),
    "reference": (TaskKind.PAIRWISE, TaskKind.PREFERENCE_STRENGTH),
    "strength": (TaskKind.PREFERENCE_STRENGTH,),
    "group": (TaskKind.PAIRWISE, TaskKind.PREFERENCE_STRENGTH),
}
PAIR_MODES = ("reference", "strength", "group")
log = logging.getLogger("mr3_reward.reward")
# Logical inputs read from dataset columns, and the column each is read from by default.
COLUMNS = {"rubric": "rubric", "reference": "reference", "language": "language",
           "task_description": "task_description", "id": "id"}
# Keyword arguments TRL passes that are not dataset columns.
_TRL_KWARGS = {"completion_ids", "trainer_state", "log_extra", "log_metric", "environments"}


def text_of_prompt(prompt: Any) -> str:
    """Plain-text prompts pass through; a conversation becomes its user text (or a role-tagged transcript)."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, Sequence) and all(isinstance(m, Mapping) for m in prompt):
        turns = [m for m in prompt if m.get("role") != "system"]
        if len(turns) == 1:
            return _content(turns[0])
        return "".join(f"<{m.get('role', 'user')}>\n{_content(m)}\n</{m.get('role', 'user')}>\n" for m in turns)
    raise TypeError(f"a prompt must be a string or a list of chat messages, got {type(prompt).__name__}")


def _content(message: Mapping[str, Any]) -> str:
    content = message.get("content", "")
    if isinstance(content, list):  # multimodal-style content parts: keep the text parts
        return "".join(part.get("text", "") for part in content if isinstance(part, Mapping))
    return content if isinstance(content, str) else str(content)


def text_of_completion(completion: Any) -> str | None:
    """A string, or the assistant text of a conversational completion; None if it is neither."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion and all(isinstance(m, Mapping) for m in completion):
        return "".join(_content(m) for m in completion if m.get("role", "assistant") == "assistant")
    return None


def _rebuildable(backend: Any) -> bool:
    """A backend named by a string, or a pool client (it reconnects by name), is rebuilt after unpickling
    instead of pickling a loaded model."""
    return isinstance(backend, (str, JudgePool))


def stable_prompt_id(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class MR3Reward:
    """An mR3 judge as a reward function: ``__call__(prompts, completions, **kwargs) -> list[float | None]``.

    model (`str`): hub id, local dir or alias of the judge (ignored when ``judge`` is given).
    judge (`Judge`, *optional*): a ready judge; then model/backend/cache/sampling options must not be given.
    backend (`str | Backend`): ``"transformers"`` (default), ``"vllm"``, ``"openai"``, ``"fake"`` or an instance.
    pool (`str | JudgePool`, *optional*): judge with a running Ray judge pool (``"mr3-judges"``, see
        ``mr3 serve``) instead of a local engine; its model is the pool's.
    mode (`str`): ``pointwise`` (default), ``binary``, ``reference``, ``strength`` or ``group`` (table above).
    task (`str`, *optional*): the judge task; defaults from the mode.
    rubric (`dict | Rubric`, *optional*): a fixed rubric; a ``rubric`` dataset column overrides it per row.
    task_description (`str`, *optional*): likewise, overridden by a ``task_description`` column.
    language (`str`): the default language code when no ``language`` column is present.
    language_mode, pack, family: rendering options, see `Judge`.
    cache (`str | JudgmentCache | None`): ``"default"`` (a per-user SQLite file, the default), a path,
        ``":memory:"``, or None to turn caching off.
    debias (`str`, *optional*): ``"both"`` judges pairs in both orders; default ``"both"`` for pairwise modes.
    on_disagree (`str`): ``"tie"``, ``"mean"`` or ``"first"`` when the two orders disagree.
    soft (`bool`): use the engine's label probabilities where it reports them (hard verdicts otherwise).
    group_opponents (`int`, *optional*): in group mode, compare each completion with k others only.
    group_size (`int`, *optional*): with ``pool=`` in group mode, the number of completions per prompt
        (GRPO's ``num_generations``): ranks that hold parts of one group gather it through the pool and it is
        judged once, whole (`mr3_reward.groups`). rank (`int`, *optional*): this process's rank (default:
        the ``RANK`` environment variable). group_timeout_s (`float`): how long to wait for a group's other
        parts before judging the part held here.
    columns (`dict`, *optional*): read a logical input from another column, e.g. ``{"reference": "answer"}``.
    name (`str`): the reward's name in TRL logs (``rewards/<name>/mean``) and the completions table.
    max_tokens etc.: any `Sampling` field overrides the mR3 default.

    >>> reward = MR3Reward(model="fake", backend="fake", mode="binary", cache=None)
    >>> reward(["What is 2+2?"], ["4"])
    [1.0]
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        judge: Judge | None = None,
        backend: str | Backend = "transformers",
        pool: str | JudgePool | None = None,
        mode: str = "pointwise",
        task: str | TaskKind | None = None,
        rubric: Rubric | Mapping[str, str] | str | None = None,
        task_description: str | None = None,
        language: str = "en",
        language_mode: str = "auto",
        pack: str | Path | None = None,
        family: str | None = None,
        cache: str | Path | JudgmentCache | None = "default",
        debias: str | None = None,
        on_disagree: str = "tie",
        soft: bool = False,
        group_opponents: int | None = None,
        group_size: int | None = None,
        rank: int | None = None,
        group_timeout_s: float = 120.0,
        columns: Mapping[str, str] | None = None,
        name: str = "mr3",
        max_retries: int = 2,
        backend_options: Mapping[str, Any] | None = None,
        **sampling: Any,
    ) -> None:
        problems: list[str] = []
        if mode not in MODES:
            problems.append(f"unknown mode {mode!r}; use one of: {', '.join(MODES)}")
            task_kind = None
        else:
            try:
                task_kind = TaskKind.parse(task) if task is not None else MODES[mode][0]
            except ValueError as e:
                problems.append(str(e))
                task_kind = None
            if task_kind is not None and task_kind not in MODES[mode]:
                allowed = ", ".join(t.value for t in MODES[mode])
                problems.append(f"mode={mode!r} needs task {allowed}; got task={task_kind.value!r}")
        if debias is None:
            debias = "both" if mode in PAIR_MODES else "none"
        if debias not in DEBIAS:
            problems.append(f"debias must be one of {DEBIAS}, got {debias!r}")
        elif debias == "both" and mode not in PAIR_MODES:
            problems.append(f"debias='both' needs a pairwise mode (reference, strength, group); got mode={mode!r}")
        if on_disagree not in ON_DISAGREE:
            problems.append(f"on_disagree must be one of {ON_DISAGREE}, got {on_disagree!r}")
        if group_opponents is not None and (mode != "group" or not isinstance(group_opponents, int) or group_opponents < 1):
            problems.append("group_opponents must be a positive int and needs mode='group'")
        if group_size is not None and (mode != "group" or pool is None or isinstance(group_size, bool)
                                       or not isinstance(group_size, int) or group_size < 2):
            problems.append("group_size (completions per prompt, e.g. GRPO's num_generations) must be an int >= 2 "
                            "and needs mode='group' and pool=... (the ranks meet through the pool)")
        if not isinstance(group_timeout_s, (int, float)) or group_timeout_s <= 0:
            problems.append(f"group_timeout_s must be > 0 seconds, got {group_timeout_s!r}")
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
            problem = rubric_problem(fixed_rubric, _rubric_mode(mode, task_kind))
            if problem:
                problems.append(problem)
        if pool is not None and (judge is not None or backend != "transformers" or backend_options):
            problems.append("pool= is the engine: drop judge=, backend= and backend_options= (the pool's replicas "
                            "were configured by `mr3 serve`)")
        if judge is not None:
            given = [k for k, v in (("backend_options", backend_options), ("pack", pack), ("family", family)) if v]
            given += list(sampling)
            if given:
                problems.append(f"judge=... already carries its engine and settings; drop {', '.join(given)} "
                                "or build the Judge with them")
        if not isinstance(name, str) or not name.isidentifier():
            problems.append(f"name must be an identifier-like string (it names TRL log columns), got {name!r}")
        if problems:
            raise ValueError("invalid MR3Reward: " + "; ".join(problems))

        self.mode = mode
        self.task = task_kind
        self.rubric = fixed_rubric
        self.task_description = task_description
        self.language = language
        self.debias = debias
        self.on_disagree = on_disagree
        self.soft = soft
        self.group_opponents = group_opponents
        self.group_size = group_size
        self.group_timeout_s = float(group_timeout_s)
        rank = int(os.environ.get("RANK", "0")) if rank is None else rank
        self._part = f"{rank:06d}-{os.getpid()}"  # unique per process, and ordered by rank
        self._board: Any = None
        self._step = 0
        self._calls = 0
        self.columns = {**COLUMNS, **(columns or {})}
        self.__name__ = name
        self._explicit_columns = set(columns or {})
        if pool is not None:
            backend = pool if isinstance(pool, JudgePool) else JudgePool.connect(pool)
        if judge is None:
            self._judge_args: dict[str, Any] | None = dict(
                model=model, backend=backend, language_mode=language_mode, pack=pack, family=family,
                cache=cache, max_retries=max_retries, backend_options=dict(backend_options or {}), **sampling,
            )
            judge = Judge(**self._judge_args)
        else:
            self._judge_args = None
        self.judge = judge
        self.last_metrics: dict[str, float] = {}

    # -- pickling: rebuild the judge from its arguments instead of pickling a loaded model -------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if self._judge_args is not None and _rebuildable(self._judge_args.get("backend")):
            state["judge"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.judge is None:
            self.judge = Judge(**self._judge_args)

    def __repr__(self) -> str:
        return f"MR3Reward(model={self.judge.model_id!r}, mode={self.mode!r}, debias={self.debias!r})"

    # -- the TRL contract ---------------------------------------------------------------------------
    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        """Rewards for ``completions`` (one per item; None where the judge could not judge).

        prompts (`list[str]` or `list[list[dict]]`): plain text or conversations, one per completion.
        completions (`list[str]` or `list[list[dict]]`): the policy's outputs.
        kwargs: dataset columns (one value per completion) plus TRL's ``log_extra`` / ``log_metric``.
        """
        start = time.perf_counter()
        rows = self._rows(prompts, completions, kwargs)
        # Which generation batch this is: ranks must agree on it to meet on a group (TRL's global step).
        step = getattr(kwargs.get("trainer_state"), "global_step", None)
        self._step = self._calls if step is None else step
        self._calls += 1
        rewards, notes, judgments, verdicts = self._score(rows)
        self._log(kwargs, rewards, notes, judgments, verdicts, time.perf_counter() - start)
        return rewards

    async def acall(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        """The same as calling the reward, without blocking the event loop (the judge runs in a thread),
        so other async reward functions and the judge overlap."""
        return await asyncio.to_thread(self.__call__, prompts, completions, **kwargs)

    # -- input handling --------------------------------------------------------------------------------
    def _rows(self, prompts: Sequence[Any], completions: Sequence[Any], kwargs: Mapping[str, Any]) -> list[dict]:
        if isinstance(prompts, (str, bytes)) or isinstance(completions, (str, bytes)):
            raise TypeError("prompts and completions must be lists (one item per completion), not single strings")
        for name, value in (("prompts", prompts), ("completions", completions)):
            if not isinstance(value, Sequence):
                raise TypeError(f"{name} must be a list with one item per completion, got {type(value).__name__}")
        prompts, completions = list(prompts), list(completions)
        if len(prompts) != len(completions):
            raise ValueError(f"got {len(prompts)} prompts and {len(completions)} completions; pass one prompt "
                             "per completion (repeat a prompt for each of its completions)")
        n = len(completions)
        columns: dict[str, list[Any]] = {}
        for role, col in self.columns.items():
            if col in kwargs and col not in _TRL_KWARGS:
                values = kwargs[col]
                if not isinstance(values, (list, tuple)) or len(values) != n:
                    raise ValueError(f"column {col!r} must be a list with one value per completion ({n}); "
                                     f"got {type(values).__name__} of length {len(values) if hasattr(values, '__len__') else '?'}")
                columns[role] = list(values)
            elif role in self._explicit_columns:
                present = sorted(k for k in kwargs if k not in _TRL_KWARGS)
                raise KeyError(f"columns={{{role!r}: {col!r}}} but the batch has no {col!r} column; "
                               f"columns present: {', '.join(present) or 'none'}")
        if self.mode in ("reference", "strength") and "reference" not in columns:
            present = sorted(k for k in kwargs if k not in _TRL_KWARGS)
            raise KeyError(f"mode={self.mode!r} compares each completion with a reference answer, but the batch has "
                           f"no {self.columns['reference']!r} column (columns present: {', '.join(present) or 'none'}); "
                           "add the column to the dataset or map it with columns={'reference': '<column>'}")
        rows = []
        for i in range(n):
            row = {role: values[i] for role, values in columns.items()}
            row["prompt"] = text_of_prompt(prompts[i])
            row["completion"] = text_of_completion(completions[i])
            row["completion_type"] = type(completions[i]).__name__
            rows.append(row)
        return rows

    def _request(self, row: Mapping[str, Any], responses: tuple[str, ...], reference: str | None) -> JudgeRequest:
        rubric = row.get("rubric") or self.rubric
        return JudgeRequest(
            task=self.task,
            prompt=row["prompt"],
            responses=responses,
            rubric=rubric,
            task_description=row.get("task_description") or self.task_description,
            language=row.get("language") or self.language,
            reference=reference,
            # One id per prompt: every completion of a prompt sees the same rubric variant.
            id=str(row["id"]) if row.get("id") is not None else stable_prompt_id(row["prompt"]),
        )

    # -- scoring -----------------------------------------------------------------------------------------
    def _score(self, rows: list[dict]) -> tuple[list[float | None], list[str], list[Judgment], list[PairVerdict]]:
        n = len(rows)
        rewards: list[float | None] = [None] * n
        notes = [""] * n
        valid = []
        for i, row in enumerate(rows):
            if row["completion"] is None:
                notes[i] = f"not judged: completion is a {row['completion_type']}, not text"
            elif not row["completion"].strip():
                rewards[i] = -1.0 if self.mode == "strength" else 0.0
                notes[i] = "empty completion: minimum reward"
            elif (problem := self._row_rubric_problem(row.get("rubric"))) is not None:
                # A bad rubric in one dataset row is that row's typed failure, not a crash in the middle of a step.
                notes[i] = f"not judged: rubric column: {problem}"
                log.warning("MR3Reward %s: row %d not judged: rubric column: %s", self.__name__, i, problem)
            else:
                valid.append(i)
        if self.mode in ("pointwise", "binary"):
            return (*self._score_single(rows, valid, rewards, notes), [])
        if self.mode == "group":
            return self._score_group(rows, valid, rewards, notes)
        return self._score_reference(rows, valid, rewards, notes)

    def _score_single(self, rows, valid, rewards, notes):
        requests = []
        for i in valid:
            reference = rows[i].get("reference")
            requests.append(self._request(rows[i], (rows[i]["completion"],), str(reference) if reference is not None else None))
        scales = [self._scale(r) for r in requests]
        judgments = self.judge.judge(requests)
        for i, j, scale in zip(valid, judgments, scales):
            rewards[i] = self._single_reward(j, scale)
            notes[i] = f"{j.score}: {j.explanation or ''}".strip() if j.ok else f"not judged: {j.failure}"
        return rewards, notes, judgments

    def _single_reward(self, j: Judgment, scale: tuple[float, float] | None) -> float | None:
        if not j.ok:
            return None
        logprobs = j.meta.get("label_logprobs") if self.soft else None
        if self.mode == "binary":
            if logprobs and "true" in logprobs and "false" in logprobs:
                pt, pf = math.exp(logprobs["true"]), math.exp(logprobs["false"])
                return pt / (pt + pf)
            return 1.0 if j.score == "true" else 0.0
        lo, hi = scale
        if logprobs:
            probs = {float(k): math.exp(v) for k, v in logprobs.items() if _is_number(k)}
            total = sum(probs.values())
            if total > 0:
                return (sum(v * p for v, p in probs.items()) / total - lo) / (hi - lo)
        return (float(j.score) - lo) / (hi - lo)

    def _row_rubric_problem(self, value: Any) -> str | None:
        if value is None:
            return None
        try:
            return rubric_problem(Rubric.coerce(value), _rubric_mode(self.mode, self.task))
        except (TypeError, ValueError) as e:
            return str(e)

    def _scale(self, request: JudgeRequest) -> tuple[float, float] | None:
        """The numeric range of the rubric a pointwise request is judged on (None for other modes)."""
        if self.mode != "pointwise":
            return None
        from mr3_reward.templates import DEFAULT_LABELS

        rubric = request.rubric  # rows with a rubric that does not fit the mode never get here (see _score)
        return numeric_scale(rubric.labels if rubric is not None else DEFAULT_LABELS[TaskKind.POINTWISE])

    def _pairs_verdicts(self, pairs: list[tuple[dict, str, str, str | None]]) -> list[PairVerdict]:
        """Judge (row, first, second) pairs in one or both orders, all in one judge call."""
        requests = [self._request(row, (a, b), None) for row, a, b, _ in pairs]
        batch = requests + ([swapped(r) for r in requests] if self.debias == "both" else [])
        judgments = self.judge.judge(batch)
        fwd, bwd = judgments[: len(requests)], judgments[len(requests):]
        return [
            combine(f, bwd[k] if bwd else None, self.task, on_disagree=self.on_disagree, soft=self.soft)
            for k, f in enumerate(fwd)
        ]

    def _score_reference(self, rows, valid, rewards, notes):
        todo = []
        for i in valid:
            ref = rows[i]["reference"]
            if not isinstance(ref, str):
                notes[i] = f"not judged: reference is a {type(ref).__name__}, not text"
            elif ref == rows[i]["completion"]:
                rewards[i] = self._pair_reward(0.5)
                notes[i] = "identical to the reference: tie"
            else:
                todo.append(i)
        verdicts = self._pairs_verdicts([(rows[i], rows[i]["completion"], rows[i]["reference"], None) for i in todo])
        judgments = []
        for i, v in zip(todo, verdicts):
            rewards[i] = self._pair_reward(v.p_first)
            notes[i] = _verdict_note(v)
            judgments += [v.forward] + ([v.backward] if v.backward else [])
        return rewards, notes, judgments, verdicts

    def _pair_reward(self, p: float | None) -> float | None:
        if p is None:
            return None
        return 2 * p - 1 if self.mode == "strength" else p

    def _score_group(self, rows, valid, rewards, notes):
        if self.group_size is not None:
            return self._score_group_across_ranks(rows, valid, rewards, notes)
        return self._score_group_here(rows, valid, rewards, notes)

    def _score_group_here(self, rows, valid, rewards, notes):
        groups: dict[str, list[int]] = {}
        for i in range(len(rows)):
            groups.setdefault(_group_key(rows[i]), []).append(i)
        valid_set = set(valid)
        # Rows that play: judged ones, and empty completions (which lose to any real one). Text that could
        # not be read, or a row whose rubric does not fit the mode, plays no match and keeps its None.
        playing = valid_set | {i for i, row in enumerate(rows)
                               if row["completion"] is not None and not row["completion"].strip()}
        pairs: list[tuple[int, int]] = []
        for members in groups.values():
            pairs += pair_schedule(members, self.group_opponents)
        scores: dict[int, list[float]] = {i: [] for i in range(len(rows))}
        to_judge = []
        for a, b in pairs:
            ca, cb = rows[a]["completion"], rows[b]["completion"]
            if a not in valid_set or b not in valid_set:
                if a in playing and b in playing:
                    pa = 0.5 if (a in valid_set) == (b in valid_set) else (1.0 if a in valid_set else 0.0)
                    scores[a].append(pa)
                    scores[b].append(1 - pa)
            elif ca == cb:
                scores[a].append(0.5)
                scores[b].append(0.5)
            else:
                to_judge.append((a, b))
        verdicts = self._pairs_verdicts([(rows[a], rows[a]["completion"], rows[b]["completion"], None) for a, b in to_judge])
        judgments = []
        for (a, b), v in zip(to_judge, verdicts):
            judgments += [v.forward] + ([v.backward] if v.backward else [])
            if v.p_first is not None:
                scores[a].append(v.p_first)
                scores[b].append(1 - v.p_first)
        for i in range(len(rows)):
            if i not in playing:
                continue
            if scores[i]:
                rewards[i] = self._pair_reward(sum(scores[i]) / len(scores[i]))
                notes[i] = f"win rate {sum(scores[i]):g}/{len(scores[i])}"
            elif i in valid_set:
                alone = all(i not in pair for pair in pairs)
                notes[i] = ("not judged: no other completion of this prompt in the batch" if alone
                            else "not judged: every comparison failed")
        return rewards, notes, judgments, verdicts

    def _score_group_across_ranks(self, rows, valid, rewards, notes):
        """Group mode with ``group_size``: post each group's rows here to the pool's board, judge the groups
        this rank leads (whole) or could not complete (the part held here), take the others' results."""
        import ray

        from mr3_reward.groups import board

        if self._board is None:
            self._board = board(self.judge.backend.name)
        valid_set = set(valid)
        local: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            local.setdefault(_group_key(row), []).append(i)
        key = {g: f"{self._step}:{hashlib.sha256(g.encode('utf-8')).hexdigest()[:24]}" for g in local}
        posted = {g: [dict(rows[i], valid=i in valid_set, reward=rewards[i], note=notes[i]) for i in idx]
                  for g, idx in local.items()}
        ray.get([self._board.offer.remote(key[g], self._part, posted[g], self.group_size) for g in local])
        gathered = ray.get([self._board.gather.remote(key[g], self.group_timeout_s) for g in local])

        # Everything judged here (groups led here, and incomplete groups) goes to the judge in one call.
        batch: list[dict] = []
        spans = []  # (group, {part: (start, count)})
        follow = []
        for g, parts in zip(local, gathered):
            if parts is None:
                log.warning("MR3Reward %s: group %s has fewer than %d completions after %g s; judging the %d held "
                            "here", self.__name__, key[g], self.group_size, self.group_timeout_s, len(local[g]))
                parts = {self._part: posted[g]}
            elif min(parts) != self._part:
                follow.append(g)
                continue
            offsets = {}
            for part in sorted(parts):
                offsets[part] = (len(batch), len(parts[part]))
                batch += parts[part]
            spans.append((g, offsets))
        sub_rewards = [r["reward"] for r in batch]
        sub_notes = [r["note"] for r in batch]
        judgments: list[Judgment] = []
        verdicts: list[PairVerdict] = []
        if batch:
            _, _, judgments, verdicts = self._score_group_here(
                batch, [k for k, r in enumerate(batch) if r["valid"]], sub_rewards, sub_notes)
        for g, offsets in spans:
            # Published even for a part judged alone after a timeout: a rank whose part arrived too late then
            # finds a result without its part (its rows stay None, with a note) instead of waiting.
            self._board.publish.remote(key[g], {p: (sub_rewards[s:s + n], sub_notes[s:s + n])
                                                for p, (s, n) in offsets.items()}, self._part)
            s, n = offsets[self._part]
            for i, k in zip(local[g], range(s, s + n)):
                rewards[i], notes[i] = sub_rewards[k], sub_notes[k]
        for g in follow:
            result = ray.get(self._board.fetch.remote(key[g], self._part, 10 * self.group_timeout_s))
            if result is None:
                log.warning("MR3Reward %s: no result for group %s from its leader", self.__name__, key[g])
                for i in local[g]:
                    if i in valid_set:
                        notes[i] = "not judged: the rank leading this group published no result"
                continue
            for i, r, note in zip(local[g], *result):
                rewards[i], notes[i] = r, note
        return rewards, notes, judgments, verdicts

    # -- logging ----------------------------------------------------------------------------------------
    def _log(self, kwargs, rewards, notes, judgments, verdicts, seconds: float) -> None:
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
        self.last_metrics = metrics
        log_metric: Callable[[str, float], None] | None = kwargs.get("log_metric")
        log_extra: Callable[[str, list], None] | None = kwargs.get("log_extra")
        if callable(log_metric):
            for key, value in metrics.items():
                log_metric(f"{self.__name__}/{key}", value)
        if callable(log_extra):
            log_extra(f"{self.__name__}_verdict", notes)


class AsyncMR3Reward(MR3Reward):
    """`MR3Reward` with an ``async __call__``: TRL's GRPO/RLOO trainers run it on their async reward loop,
    overlapping it with other async reward functions."""

    async def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:  # type: ignore[override]
        return await asyncio.to_thread(MR3Reward.__call__, self, prompts, completions, **kwargs)

    async def acall(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        return await self(prompts, completions, **kwargs)


# -- helpers ---------------------------------------------------------------------------------------------
def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except (TypeError, ValueError):
        return False


def numeric_scale(labels: Sequence[str]) -> tuple[float, float]:
    values = [float(x) for x in labels]
    return min(values), max(values)


def _group_key(row: Mapping[str, Any]) -> str:
    """Completions of one prompt (same reference and rubric) form a group."""
    return json.dumps([row["prompt"], row.get("reference"), row.get("rubric")], sort_keys=True, default=str)


def _rubric_mode(mode: str, task: TaskKind | None) -> str:
    """The mode whose labels a rubric must have: a reference mode judged as preference strength needs 1..7."""
    return "strength" if task == TaskKind.PREFERENCE_STRENGTH else mode


def rubric_problem(rubric: Rubric, mode: str) -> str | None:
    labels = rubric.labels
    if mode == "pointwise":
        if not all(_is_number(x) for x in labels) or len(labels) < 2:
            return f"a pointwise rubric needs two or more numeric labels (e.g. '1'..'5'); got {list(labels)}"
    elif mode == "binary":
        if set(labels) != {"true", "false"}:
            return f"a binary rubric needs exactly the labels 'true' and 'false'; got {list(labels)}"
    elif mode == "strength":
        if sorted(labels) != [str(k) for k in range(1, 8)]:
            return f"a strength rubric needs the labels '1'..'7'; got {list(labels)}"
    elif not {"Assistant A", "Assistant B"} <= set(labels):
        return f"a pairwise rubric needs the labels 'Assistant A' and 'Assistant B' (optionally 'Tie'); got {list(labels)}"
    return None


def _verdict_note(v: PairVerdict) -> str:
    if v.p_first is None:
        return f"not judged: {v.forward.failure}"
    parts = [f"p={v.p_first:.2f}"]
    if v.consistent is not None:
        parts.append("consistent" if v.consistent else "orders disagree")
    if v.forward.explanation:
        parts.append(v.forward.explanation)
    return "; ".join(parts)


__all__ = ["AsyncMR3Reward", "MR3Reward", "MODES", "Sampling"]
