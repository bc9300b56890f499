"""JSONL rows -> JudgeRequests, with errors that name the line, the column and the fix; Judgments -> the
records the commands write (`judgment_record`).

A row needs a prompt and, depending on the task, responses:

- ``prompt`` (or ``input`` / ``question``): the user's prompt, a string;
- ``responses``: a list of strings, or ``response_a`` + ``response_b``, or ``response``;
- optional: ``task``, ``id``, ``language``, ``rubric`` (object label -> description, or
  ``label: description`` lines), ``task_description``, ``reference``, ``options``.

With task ``auto`` the task follows the row: ``options`` -> multiple_choice, two responses -> pairwise,
one or none -> binary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mr3_reward.data import iter_jsonl  # re-exported: callers read JSONL from here
from mr3_reward.errors import InputError
from mr3_reward.types import JudgeRequest, Judgment, TaskKind

PROMPT_COLUMNS = ("prompt", "input", "question")
OPTIONAL_STR_COLUMNS = ("id", "language", "task_description", "reference", "options")
MAX_REPORTED = 20


def _responses(row: Mapping[str, Any]) -> tuple[list[Any] | None, str | None]:
    if "responses" in row:
        value = row["responses"]
        if not isinstance(value, list):
            return None, f"'responses' must be a list of strings, got {type(value).__name__}"
        return value, None
    if "response_a" in row or "response_b" in row:
        if not ("response_a" in row and "response_b" in row):
            return None, "a pair needs both 'response_a' and 'response_b'"
        return [row["response_a"], row["response_b"]], None
    if "response" in row:
        return [row["response"]], None
    return [], None


def _task(row: Mapping[str, Any], default: str, n_responses: int) -> TaskKind:
    task = row.get("task", default)
    if not isinstance(task, str):
        raise ValueError(f"'task' must be a string, got {type(task).__name__}")
    if task != "auto":
        return TaskKind.parse(task)
    if row.get("options") is not None:
        return TaskKind.MULTIPLE_CHOICE
    return TaskKind.PAIRWISE if n_responses == 2 else TaskKind.BINARY


def row_to_request(row: Any, default_task: str = "auto") -> JudgeRequest:
    """One row (a dict) -> a `JudgeRequest`; raises ValueError with the problem and the fix."""
    if not isinstance(row, dict):
        raise ValueError(f"each line must be a JSON object, got {type(row).__name__}")
    prompt_col = next((c for c in PROMPT_COLUMNS if c in row), None)
    if prompt_col is None:
        raise ValueError(f"missing the prompt: add a 'prompt' column (or {' / '.join(PROMPT_COLUMNS[1:])}); "
                         f"columns present: {', '.join(sorted(row)) or 'none'}")
    prompt = row[prompt_col]
    if not isinstance(prompt, str):
        raise ValueError(f"'{prompt_col}' must be a string, got {type(prompt).__name__}")
    if not prompt.strip():
        raise ValueError(f"'{prompt_col}' is empty; every row needs a non-empty prompt")
    responses, problem = _responses(row)
    if problem:
        raise ValueError(problem)
    for i, r in enumerate(responses or []):
        if not isinstance(r, str):
            raise ValueError(f"response {i + 1} must be a string, got {type(r).__name__}")
    for col in OPTIONAL_STR_COLUMNS:
        if row.get(col) is not None and not isinstance(row[col], str):
            raise ValueError(f"'{col}' must be a string, got {type(row[col]).__name__}")
    task = _task(row, default_task, len(responses or []))
    return JudgeRequest(
        task=task,
        prompt=prompt,
        responses=tuple(responses or ()),
        rubric=row.get("rubric"),
        task_description=row.get("task_description"),
        language=row.get("language") or "en",
        reference=row.get("reference"),
        options=row.get("options"),
        id=row.get("id"),
    )


def read_requests(path: str | Path, default_task: str = "auto") -> list[tuple[dict[str, Any], JudgeRequest]]:
    """Read a JSONL file into (row, request) pairs, reporting every bad line at once."""
    if default_task != "auto":
        TaskKind.parse(default_task)  # an unknown --task fails before any line is read
    out: list[tuple[dict[str, Any], JudgeRequest]] = []
    problems: list[str] = []
    for n, row in iter_jsonl(path, problems):  # bad JSON lines are reported with the others
        try:
            out.append((row, row_to_request(row, default_task)))
        except (ValueError, TypeError) as e:
            problems.append(f"{path}:{n}: {e}")
    if problems:
        more = f"\n... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
        raise InputError(f"{len(problems)} bad line(s) in the input:\n" + "\n".join(problems[:MAX_REPORTED]) + more)
    if not out:
        raise InputError(f"input file {str(path)!r} is empty: it needs one JSON object per line")
    return out


def judgment_record(judgment: Judgment, shown: Sequence[int] | None = None, *, meta: bool = True) -> dict[str, Any]:
    """One judgment as ``mr3 judge`` (each line's ``judgment``) and ``mr3 label`` (each of a row's ``judgments``)
    write it: `Judgment.to_dict`, every field, plus ``error``: the engine's message for a failure it caused
    (``meta["error"]``; None otherwise), kept at the top where scripts have read it.

    shown (`Sequence[int]`, *optional*): the indices of the row's responses in the order the judge saw them,
        written first as ``responses`` (labeling: which responses, in which order, a judgment is about).
    meta (`bool`): keep ``meta``. Labeling leaves it out: it holds what differs between two runs of one job
        (``cached``), so a resumed job would not write the bytes of an uninterrupted one, and values of any
        type the model wrote (``raw_score``), which one column of the output dataset cannot hold.

    >>> j = Judgment(score="5", raw='</think>{"score": "5"}', label_probs={"5": 1.0}, meta={"parsed_with": "json"})
    >>> record = judgment_record(j)
    >>> record == {**j.to_dict(), "error": None}
    True
    >>> list(judgment_record(j, [1], meta=False))[:3], "meta" in judgment_record(j, [1], meta=False)
    (['responses', 'score', 'failure'], False)
    """
    record = {} if shown is None else {"responses": list(shown)}
    record.update(judgment.to_dict())
    record["error"] = judgment.meta.get("error")
    if not meta:
        del record["meta"]
    return record
