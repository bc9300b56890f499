"""A TRL batch as rows: prompts, completions and dataset columns in, one plain dict per completion out.

TRL passes ``prompts`` and ``completions`` (text or chat messages) and every dataset column as a keyword
argument holding one value per completion. A row keys each value by its logical role (``rubric``,
``reference``, ``language``, ``task_description``, ``id``; see `COLUMNS`), so a dataset with other column
names maps them once (``columns={"reference": "answer"}``) and the scoring never sees column names.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Any

# Logical inputs read from dataset columns, and the column each is read from by default.
COLUMNS = {"rubric": "rubric", "reference": "reference", "language": "language",
           "task_description": "task_description", "id": "id"}
# Keyword arguments TRL passes that are not dataset columns (so no role may be read from them).
TRL_KWARGS = {"completion_ids", "trainer_state", "log_extra", "log_metric", "environments"}


def text_of_prompt(prompt: Any) -> str:
    """Plain-text prompts pass through; a conversation becomes its user text (or a role-tagged transcript).

    >>> text_of_prompt([{"role": "system", "content": "be brief"}, {"role": "user", "content": "2+2?"}])
    '2+2?'
    """
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
    """A string, or the assistant text of a conversational completion; None if it is neither.

    >>> text_of_completion([{"role": "assistant", "content": "4"}]), text_of_completion(4)
    ('4', None)
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion and all(isinstance(m, Mapping) for m in completion):
        return "".join(_content(m) for m in completion if m.get("role", "assistant") == "assistant")
    return None


def stable_prompt_id(text: str) -> str:
    """A short id that is the same in every process (Python's ``hash`` is salted per process)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def to_rows(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    kwargs: Mapping[str, Any],
    columns: Mapping[str, str],
    *,
    explicit: frozenset[str] = frozenset(),
    reference_mode: str | None = None,
) -> list[dict[str, Any]]:
    """One row per completion: ``prompt`` and ``completion`` as text plus one key per role found in ``kwargs``.

    prompts (`list[str]` or `list[list[dict]]`): one per completion.
    completions (`list[str]` or `list[list[dict]]`): the policy's outputs; one that is not text becomes None.
    kwargs (`dict`): the batch's dataset columns (TRL's own keyword arguments are skipped).
    columns (`dict[str, str]`): role -> column name, for every role.
    explicit (`frozenset[str]`): roles the user mapped by hand; their column must be in the batch.
    reference_mode (`str`, *optional*): the mode, when it compares with a reference: then the reference
        column must be in the batch (the error names the mode).

    >>> [row["reference"] for row in to_rows(["2+2?"], ["4"], {"answer": ["4"]}, {**COLUMNS, "reference": "answer"})]
    ['4']
    """
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
    present = sorted(k for k in kwargs if k not in TRL_KWARGS)
    values_of: dict[str, list[Any]] = {}
    for role, col in columns.items():
        if col in kwargs and col not in TRL_KWARGS:
            values = kwargs[col]
            if not isinstance(values, (list, tuple)) or len(values) != n:
                raise ValueError(f"column {col!r} must be a list with one value per completion ({n}); "
                                 f"got {type(values).__name__} of length {len(values) if hasattr(values, '__len__') else '?'}")
            values_of[role] = list(values)
        elif role in explicit:
            raise KeyError(f"columns={{{role!r}: {col!r}}} but the batch has no {col!r} column; "
                           f"columns present: {', '.join(present) or 'none'}")
    if reference_mode is not None and "reference" not in values_of:
        raise KeyError(f"mode={reference_mode!r} compares each completion with a reference answer, but the batch has "
                       f"no {columns['reference']!r} column (columns present: {', '.join(present) or 'none'}); "
                       "add the column to the dataset or map it with columns={'reference': '<column>'}")
    rows = []
    for i in range(n):
        row = {role: values[i] for role, values in values_of.items()}
        row["prompt"] = text_of_prompt(prompts[i])
        row["completion"] = text_of_completion(completions[i])
        row["completion_type"] = type(completions[i]).__name__
        rows.append(row)
    return rows


def reference_text(value: Any) -> str | None:
    """A ``reference`` cell as the judge sees it: text as it is, a number as its digits (a dataset of math
    answers often stores them as numbers); None for anything else, which `mr3_reward.reward.modes.screen`
    makes that row's typed failure.

    >>> reference_text("4"), reference_text(4), reference_text(None), reference_text(["4"])
    ('4', '4', None, None)
    """
    if isinstance(value, str):
        return value
    if isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value):
        return str(value)
    return None


def group_key(row: Mapping[str, Any]) -> str:
    """Completions of one prompt (same reference and rubric) form a group."""
    return json.dumps([row["prompt"], row.get("reference"), row.get("rubric")], sort_keys=True, default=str)
