"""A bad dataset cell is that row's typed failure (issue #9, defect 2): every per-row column (the roles of
`COLUMNS`: rubric, reference, language, task_description, id) behaves like ``rubric`` does. The row's
reward is None (TRL masks it), the verdict column and a warning name the column and the problem, and the
other rows of the batch are judged; the call never raises.
"""

from __future__ import annotations

import pytest

from mr3_reward.backends.fake import FakeBackend
from mr3_reward.judge import Judge
from mr3_reward.reward import COLUMNS, MR3Reward
from mr3_reward.reward.modes import CELL_CHECKS

# One bad value per column, each in its own row; the rows without a bad cell must be judged.
BAD = {
    "rubric": 5,
    "reference": ["4"],
    "language": 123,
    "task_description": {"text": "judge"},
    "id": [7],
}
PROBLEM = {  # what the note must say about each bad cell
    "rubric": "a rubric must be a Rubric",
    "reference": "a reference answer must be text (or a number), got list",
    "language": "a language code such as 'en'",
    "task_description": "a task description must be text",
    "id": "an id must be a string or an integer",
}
GOOD = {"rubric": None, "reference": "4", "language": "de", "task_description": None, "id": "q1"}
MODES = ["pointwise", "binary", "reference", "strength", "group"]


def batch(columns=COLUMNS):
    """Two good rows, then one row per bad column, then a good row; all completions of one prompt."""
    bad_rows = list(BAD)
    n = len(bad_rows) + 3
    cells = {role: [GOOD[role]] * n for role in COLUMNS}
    for k, role in enumerate(bad_rows):
        cells[role][2 + k] = BAD[role]
    completions = [f"answer {i}" for i in range(n)]  # distinct, so group mode judges real pairs
    return ["What is 2+2?"] * n, completions, {columns[role]: values for role, values in cells.items()}, bad_rows


@pytest.mark.parametrize("mode", MODES)
def test_one_bad_cell_per_column_fails_exactly_those_rows(mode, caplog):
    prompts, completions, columns, bad_rows = batch()
    logged = {}
    reward = MR3Reward(judge=Judge(backend=FakeBackend()), mode=mode)
    rewards = reward(prompts, completions, **columns, log_extra=lambda k, v: logged.__setitem__(k, list(v)))
    bad = {2 + k: role for k, role in enumerate(bad_rows)}
    notes = logged["mr3_verdict"]
    for i, r in enumerate(rewards):
        if i in bad:
            role = bad[i]
            assert r is None, (i, role)
            assert notes[i].startswith(f"not judged: {role} column: ") and PROBLEM[role] in notes[i], notes[i]
        else:
            assert isinstance(r, float), (i, notes[i])
    warned = " ".join(rec.getMessage() for rec in caplog.records if rec.name == "mr3_reward.reward")
    for role in bad_rows:
        assert f"{role} column: {PROBLEM[role]}" in warned, role


def test_the_note_names_the_dataset_column_a_role_is_mapped_to():
    columns = {**COLUMNS, "language": "lang", "reference": "answer"}
    prompts, completions, cells, _ = batch(columns)
    logged = {}
    reward = MR3Reward(judge=Judge(backend=FakeBackend()), mode="reference",
                       columns={"language": "lang", "reference": "answer"})
    rewards = reward(prompts, completions, **cells, log_extra=lambda k, v: logged.__setitem__(k, list(v)))
    assert rewards[3] is None and logged["mr3_verdict"][3].startswith("not judged: answer column: ")
    assert rewards[4] is None and logged["mr3_verdict"][4].startswith("not judged: lang column: ")


def test_every_bad_cell_of_a_row_is_named():
    reward = MR3Reward(judge=Judge(backend=FakeBackend()), mode="binary")
    logged = {}
    out = reward(["q", "q"], ["a", "b"], language=[5, "en"], id=[[1], 2],
                 log_extra=lambda k, v: logged.__setitem__(k, list(v)))
    assert out[0] is None and out[1] == 1.0
    assert "language column:" in logged["mr3_verdict"][0] and "id column:" in logged["mr3_verdict"][0]


def test_empty_cells_take_the_rewards_defaults():
    backend = FakeBackend()
    reward = MR3Reward(judge=Judge(backend=backend), mode="binary", language="fr")
    # None and "" are empty cells (a dataset's missing values): the reward's language, the task's text, a
    # prompt-derived id. Integer ids and numeric references are used as text.
    out = reward(["q"] * 4, ["a", "b", "c", "d"], language=[None, "", "de", "fr"],
                 task_description=[None, "", "Judge it.", None], id=[None, 3, "x", None], reference=[None, 4, 4.5, "4"])
    assert out == [1.0] * 4 and backend.items == 4


@pytest.mark.parametrize("mode", ["reference", "strength"])
def test_a_missing_reference_is_a_bad_cell_in_the_modes_that_need_one(mode):
    logged = {}
    reward = MR3Reward(judge=Judge(backend=FakeBackend()), mode=mode)
    out = reward(["q"] * 3, ["a", "b", "c"], reference=[None, "r", 4],
                 log_extra=lambda k, v: logged.__setitem__(k, list(v)))
    assert out[0] is None and None not in out[1:]
    assert logged["mr3_verdict"][0].startswith("not judged: reference column: no reference answer in this row")


def test_a_whole_batch_of_bad_cells_gives_none_without_an_engine_call():
    backend = FakeBackend()
    reward = MR3Reward(judge=Judge(backend=backend), mode="group")
    assert reward(["q"] * 3, ["a", "b", "c"], language=[1, 2, 3]) == [None] * 3
    assert backend.items == 0


def test_every_column_role_has_one_cell_check():
    assert list(CELL_CHECKS) == list(COLUMNS)
