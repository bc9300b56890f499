"""Scoring per mode: rows in, a reward and a note per row out (see the table in `mr3_reward.reward`).

Every mode starts from `screen`, which settles the rows that need no judgment (not text, empty, a dataset
cell that cannot be used: `cell_problems`); the scorers then judge the rest in one judge call each (group mode:
one per round of its scheme):

- `score_single` (pointwise, binary): one judgment per completion, normalized by `mr3_reward.scoring`;
- `score_reference` (reference, strength): the completion against the row's reference, in both orders;
- `score_group` (group): the completions of one prompt against each other, round by round as the group scheme
  pairs them (one judge call per round; round robin, the default, is one round), a win rate or strength each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any

from mr3_reward.debias import PairVerdict, judge_pairs
from mr3_reward.reward.options import REFERENCE_MODES, RewardConfig
from mr3_reward.reward.rows import group_key, reference_text, stable_prompt_id
from mr3_reward.reward.schemes import Tournament, play
from mr3_reward.scoring import single_value
from mr3_reward.templates import DEFAULT_LABELS
from mr3_reward.types import JudgeRequest, Judgment, Rubric, label_problem

log = logging.getLogger("mr3_reward.reward")


@dataclass
class Batch:
    """One call's rows and what is known about them so far; `screen` makes it and a scorer fills it in.

    valid (`list[int]`): the rows that go to the judge; the others already have their reward and note.
    """

    rows: list[dict[str, Any]]
    rewards: list[float | None]
    notes: list[str]
    valid: list[int]
    judgments: list[Judgment] = field(default_factory=list)
    verdicts: list[PairVerdict] = field(default_factory=list)


def screen(rows: list[dict[str, Any]], config: RewardConfig) -> Batch:
    """Settle the rows that are not judged: a non-text completion (None), an empty one (the mode's minimum),
    a row with a bad dataset cell (None, with a warning and a note naming the column; see `cell_problems`)."""
    batch = Batch(rows, [None] * len(rows), [""] * len(rows), [])
    for i, row in enumerate(rows):
        if row["completion"] is None:
            batch.notes[i] = f"not judged: completion is a {row['completion_type']}, not text"
        elif not row["completion"].strip():
            batch.rewards[i] = -1.0 if config.mode == "strength" else 0.0
            batch.notes[i] = "empty completion: minimum reward"
        elif problems := cell_problems(row, config):
            # A bad cell in one dataset row is that row's typed failure, not a crash in the middle of a step.
            batch.notes[i] = "not judged: " + "; ".join(problems)
            log.warning("MR3Reward %s: row %d not judged: %s", config.name, i, "; ".join(problems))
        else:
            batch.valid.append(i)
    return batch


def cell_problems(row: dict[str, Any], config: RewardConfig) -> list[str]:
    """What is wrong with a row's dataset cells: one ``"<column> column: <problem>"`` per bad cell, the column
    named as the dataset names it (``columns=`` applied). An empty cell (None) takes the reward's default.

    >>> from mr3_reward.reward.options import reward_config
    >>> cell_problems({"language": 5, "id": [1]}, reward_config())  # doctest: +NORMALIZE_WHITESPACE
    ["language column: a language code such as 'en' (or empty for the reward's 'en'), got 5",
     'id column: an id must be a string or an integer (it picks the rubric variant), got list']
    """
    return [f"{config.columns[role]} column: {problem}" for role, check in CELL_CHECKS.items()
            if role in row and (problem := check(row[role], config)) is not None]


def _rubric_cell(value: Any, config: RewardConfig) -> str | None:
    if value is None:
        return None
    try:
        return label_problem(config.task, Rubric.coerce(value).labels, scored=True)
    except (TypeError, ValueError) as e:
        return str(e)


def _reference_cell(value: Any, config: RewardConfig) -> str | None:
    if value is None:
        return (f"no reference answer in this row; mode={config.mode!r} compares each completion with it"
                if config.mode in REFERENCE_MODES else None)
    if reference_text(value) is None:
        return f"a reference answer must be text (or a number), got {type(value).__name__}"
    return None


def _language_cell(value: Any, config: RewardConfig) -> str | None:
    if value is None or value == "" or (isinstance(value, str) and value.strip()):
        return None
    return f"a language code such as 'en' (or empty for the reward's {config.language!r}), got {_shown(value)}"


def _task_description_cell(value: Any, config: RewardConfig) -> str | None:
    if value is None or isinstance(value, str):
        return None
    return f"a task description must be text (or empty for the reward's), got {type(value).__name__}"


def _id_cell(value: Any, config: RewardConfig) -> str | None:
    if value is None or isinstance(value, str) or (isinstance(value, Integral) and not isinstance(value, bool)):
        return None
    return f"an id must be a string or an integer (it picks the rubric variant), got {type(value).__name__}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"a {type(value).__name__}"


# One check per role of `COLUMNS`: the cell's value -> what is wrong with it, or None.
CELL_CHECKS: dict[str, Callable[[Any, RewardConfig], str | None]] = {
    "rubric": _rubric_cell, "reference": _reference_cell, "language": _language_cell,
    "task_description": _task_description_cell, "id": _id_cell,
}


def request_for(
    row: Mapping[str, Any], config: RewardConfig, responses: tuple[str, ...], reference: str | None = None
) -> JudgeRequest:
    """The judge request for a row: its own rubric, task description and language, else the reward's.

    config (`RewardConfig`): the reward's task and defaults (``task``, ``rubric``, ``task_description``, ``language``).
    responses (`tuple[str, ...]`): what is judged: the completion, or the two sides of a pair.
    reference (`str`, *optional*): a reference answer shown to the judge.

    The row's cells have passed `screen`: a cell left empty takes the reward's default.
    """
    return JudgeRequest(
        task=config.task,
        prompt=row["prompt"],
        responses=responses,
        rubric=row.get("rubric") or config.rubric,
        task_description=row.get("task_description") or config.task_description,
        language=row.get("language") or config.language,
        reference=reference,
        # One id per prompt: every completion of a prompt sees the same rubric variant.
        id=str(row["id"]) if row.get("id") is not None else stable_prompt_id(row["prompt"]),
    )


def pair_reward(p: float | None, config: RewardConfig) -> float | None:
    """The reward for a preference ``p`` in [0, 1]: ``p`` itself, or the signed margin ``2p - 1`` in strength mode."""
    if p is None:
        return None
    if config.mode == "strength":
        return 2 * p - 1
    return p


def score_single(judge: Any, config: RewardConfig, batch: Batch) -> None:
    """Pointwise and binary: one judgment per completion (shown with the row's reference if it has one)."""
    rows = batch.rows
    requests = []
    for i in batch.valid:
        requests.append(request_for(rows[i], config, (rows[i]["completion"],), reference_text(rows[i].get("reference"))))
    batch.judgments = judge.judge(requests)
    for i, j, request in zip(batch.valid, batch.judgments, requests):
        # Rows whose rubric does not fit the mode never get here (see `screen`).
        labels = request.rubric.labels if request.rubric is not None else DEFAULT_LABELS[request.task]
        batch.rewards[i] = single_value(j, config.task, labels, soft=config.soft)
        batch.notes[i] = f"{j.score}: {j.explanation or ''}".strip() if j.ok else f"not judged: {j.failure}"


def score_reference(judge: Any, config: RewardConfig, batch: Batch) -> None:
    """Reference and strength: each completion against its row's reference; an identical one is a tie.

    A row without a usable reference never gets here (see `screen`)."""
    rows, todo = batch.rows, []
    references = {i: reference_text(rows[i]["reference"]) for i in batch.valid}
    for i in batch.valid:
        if references[i] == rows[i]["completion"]:
            batch.rewards[i] = pair_reward(0.5, config)
            batch.notes[i] = "identical to the reference: tie"
        else:
            todo.append(i)
    _judge(judge, config, batch, [(rows[i], rows[i]["completion"], references[i]) for i in todo])
    for i, v in zip(todo, batch.verdicts):
        batch.rewards[i] = pair_reward(v.p_first, config)
        batch.notes[i] = verdict_note(v)


def score_group(judge: Any, config: RewardConfig, batch: Batch) -> None:
    """Group: the completions of one prompt (see `group_key`) meet as ``config.group_scheme`` pairs them
    (`mr3_reward.reward.schemes`), every group of the batch in lockstep: one judge call per round. The reward is
    the scheme's rating, in [0, 1]: the win rate (round robin, opponents) or the Bradley-Terry strength.

    Empty completions play and lose to every real one; a completion that is not text, or whose row has a bad
    dataset cell (see `screen`), plays no match and keeps its None. Identical completions tie without a judgment.
    """
    rows, valid = batch.rows, set(batch.valid)
    empty = {i for i, row in enumerate(rows) if row["completion"] is not None and not row["completion"].strip()}
    playing = valid | empty
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(group_key(row), []).append(i)
    # A fixed schedule keeps every row seated (today's pairs exactly); an adaptive one seats only the rows that
    # play, so that no round is spent on a match that cannot be played.
    fixed = config.group_scheme in ("round_robin", "opponents")
    tournaments = [Tournament(config.group_scheme, members if fixed else [i for i in members if i in playing],
                              opponents=config.group_opponents) for members in groups.values()]
    verdicts: list[PairVerdict] = []
    judgments: list[Judgment] = []
    met: set[int] = set()  # rows that were given a match

    def judge_round(pairs: list[tuple[int, int]]) -> list[float | None]:
        met.update(i for pair in pairs for i in pair)
        results = [settled_result(a, b, rows, valid, playing) for a, b in pairs]
        todo = [k for k, (a, b) in enumerate(pairs) if results[k] is None and a in valid and b in valid]
        _judge(judge, config, batch, [(rows[a], rows[a]["completion"], rows[b]["completion"])
                                      for a, b in (pairs[k] for k in todo)])
        verdicts.extend(batch.verdicts)
        judgments.extend(batch.judgments)
        for k, v in zip(todo, batch.verdicts):
            results[k] = v.p_first
        return results

    rewards = play(tournaments, judge_round)
    batch.verdicts, batch.judgments = verdicts, judgments
    for t, reward in zip(tournaments, rewards):
        for i in t.members:
            if i in reward:
                batch.rewards[i] = pair_reward(reward[i], config)
                batch.notes[i] = group_note(t, i, reward[i])
            elif i in valid:
                batch.notes[i] = ("not judged: every comparison failed" if i in met
                                  else "not judged: no other completion of this prompt in the batch")


def settled_result(a: int, b: int, rows: list[dict[str, Any]], valid: set[int], playing: set[int]) -> float | None:
    """The result of a match that needs no judgment (the preference for ``a``), or None: an empty completion
    loses to a real one (two empty ones tie), identical completions tie; a row that does not play has no result."""
    if a in valid and b in valid:
        return 0.5 if rows[a]["completion"] == rows[b]["completion"] else None
    if a in playing and b in playing:
        return 0.5 if (a in valid) == (b in valid) else (1.0 if a in valid else 0.0)
    return None


def group_note(tournament: Tournament, i: int, reward: float) -> str:
    """What the completions table shows for a group reward: the record, and the strength it gave."""
    scores = [p if a == i else 1 - p for a, b, p in tournament.results if i in (a, b)]
    record = f"{sum(scores):g}/{len(scores)}"
    return f"win rate {record}" if tournament.rating == "win_rate" else f"strength {reward:.2f} (won {record})"


def _judge(judge: Any, config: RewardConfig, batch: Batch, pairs: Sequence[tuple[dict, str, str]]) -> None:
    """Judge (row, first, second) pairs, in both orders with ``debias="both"``, all in one judge call."""
    requests = [request_for(row, config, (first, second)) for row, first, second in pairs]
    batch.verdicts = judge_pairs(judge, requests, both=config.debias == "both", on_disagree=config.on_disagree,
                                 soft=config.soft)
    batch.judgments = [j for v in batch.verdicts for j in (v.forward, v.backward) if j is not None]


def verdict_note(v: PairVerdict) -> str:
    """What the completions table shows for a pair verdict: the preference, whether the orders agree, why."""
    if v.p_first is None:
        return f"not judged: {v.forward.failure}"
    parts = [f"p={v.p_first:.2f}"]
    if v.consistent is not None:
        parts.append("consistent" if v.consistent else "orders disagree")
    if v.forward.explanation:
        parts.append(v.forward.explanation)
    return "; ".join(parts)


# The in-process scorer of each mode (group mode across ranks is `mr3_reward.reward.groups`).
SCORERS: dict[str, Callable[[Any, RewardConfig, Batch], None]] = {
    "pointwise": score_single, "binary": score_single,
    "reference": score_reference, "strength": score_reference,
    "group": score_group,
}
