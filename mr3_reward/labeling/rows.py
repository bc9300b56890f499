"""Input rows: any dataset source -> validated `LabelRow`s, every bad row reported at once with its place."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mr3_reward.data import iter_rows
from mr3_reward.errors import InputError
from mr3_reward.labeling.config import OPTIONAL_ROLES, LabelConfig
from mr3_reward.records import MAX_REPORTED, PROMPT_COLUMNS
from mr3_reward.reward import text_of_completion, text_of_prompt
from mr3_reward.types import Rubric, label_problem

# Two response columns looked for, in this order, when the input has no list column of responses.
PAIR_COLUMN_DEFAULTS = (("response_a", "response_b"), ("response_1", "response_2"))


@dataclass(frozen=True)
class LabelRow:
    """One input row, validated: a prompt (text or chat messages) and two or more responses.

    index (`int`): the 0-based position in the input; where (`str`): where to point an error (``file:line``).
    """

    index: int
    where: str
    prompt: Any
    responses: tuple[Any, ...]
    id: str | None = None
    language: str = "en"
    rubric: tuple[tuple[str, str], ...] | None = None
    reference: str | None = None
    task_description: str | None = None

    @property
    def prompt_text(self) -> str:
        return text_of_prompt(self.prompt)

    def response_text(self, i: int) -> str:
        return text_of_completion(self.responses[i]) or ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> LabelRow:
        rubric = record.get("rubric")
        return cls(**{**record, "responses": tuple(record["responses"]),
                      "rubric": tuple(tuple(e) for e in rubric) if rubric is not None else None})


def is_messages(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(m, Mapping) and "content" in m for m in value)


def _response_columns(keys: set[str], config: LabelConfig) -> tuple[str | None, tuple[str, ...]]:
    """(list column, separate columns): where the responses are, decided once for the whole input."""
    if config.responses_column is not None:
        return config.responses_column, ()
    if config.response_columns is not None:
        return None, config.response_columns
    if "responses" in keys:
        return "responses", ()
    for pair in PAIR_COLUMN_DEFAULTS:
        if set(pair) <= keys:
            return None, pair
    raise InputError("no responses found: add a 'responses' column (a list of 2 or more responses) or two columns "
                     "'response_a'/'response_b'; or name yours with --responses-column COL (a list column) or "
                     f"--response-columns A B [C ...]; columns present: {', '.join(sorted(keys)) or 'none'}")


def _row(index: int, where: str, raw: Any, config: LabelConfig, prompt_col: str, list_col: str | None,
         separate: tuple[str, ...]) -> LabelRow:
    """One raw row -> a `LabelRow`; raises ValueError naming the column and the fix."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"each row must be an object with named columns, got {type(raw).__name__}")
    problems: list[str] = []
    prompt = raw.get(prompt_col)
    if prompt_col not in raw:
        problems.append(f"missing column {prompt_col!r} (the prompt); name another with --prompt-column")
    elif isinstance(prompt, str) or is_messages(prompt):
        if not text_of_prompt(prompt).strip():
            problems.append(f"{prompt_col!r} is empty; every row needs a non-empty prompt")
    else:
        problems.append(f"{prompt_col!r} must be text or a list of chat messages, got {type(prompt).__name__}")
    responses = _responses(raw, config, list_col, separate, problems)
    values = _optional_values(raw, config, problems)
    if problems:
        raise ValueError("; ".join(problems))
    return LabelRow(index=index, where=where, prompt=prompt, responses=tuple(responses),
                    language=values.pop("language", None) or config.language, **values)


def _responses(raw: Mapping[str, Any], config: LabelConfig, list_col: str | None, separate: tuple[str, ...],
               problems: list[str]) -> list[Any] | None:
    """The row's responses (None when there are none to check), adding what is wrong with them to ``problems``."""
    if list_col is not None:
        if list_col not in raw:
            problems.append(f"missing column {list_col!r} (the responses); name another with --responses-column")
            return None
        responses = raw[list_col]
        if not isinstance(responses, (list, tuple)):
            problems.append(f"{list_col!r} must be a list of responses, got {type(responses).__name__}")
            return None
    else:
        absent = [c for c in separate if c not in raw]
        if absent:
            problems.append(f"missing column(s) {', '.join(map(repr, absent))} (responses); "
                            "name yours with --response-columns")
        responses = [raw.get(c) for c in separate]
    responses = list(responses)
    for i, r in enumerate(responses):
        if not (isinstance(r, str) or is_messages(r)):
            problems.append(f"response {i + 1} must be text or a list of chat messages, got {type(r).__name__}")
    if len(responses) < 2:
        problems.append(f"{len(responses)} response(s); a row needs at least 2 (a chosen and a rejected)")
    elif config.strategy == "pair" and len(responses) != 2:
        problems.append(f"the pair strategy takes exactly 2 responses, got {len(responses)}; use "
                        "--strategy best-worst or tournament for more")
    return responses


def _optional_values(raw: Mapping[str, Any], config: LabelConfig, problems: list[str]) -> dict[str, Any]:
    """The optional inputs present (id, language, rubric, ...), adding what is wrong with them to ``problems``."""
    values: dict[str, Any] = {}
    for role in OPTIONAL_ROLES:
        col = config.column(role)
        value = raw.get(col)
        if value is None:
            if role in config.columns and col not in raw:
                problems.append(f"missing column {col!r} (mapped to {role!r} with --column {role}={col})")
            continue
        if role == "id" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # HF datasets often number their rows
        if role == "rubric":
            try:
                rubric = Rubric.coerce(value)
            except (TypeError, ValueError) as e:
                problems.append(f"column {col!r}: {e}")
                continue
            problem = label_problem(config.task_kind, rubric.labels, scored=True)
            if problem:
                problems.append(f"column {col!r}: {problem}")
            value = rubric.entries
        elif not isinstance(value, str):
            problems.append(f"{col!r} must be text, got {type(value).__name__}")
            continue
        values[role] = value
    return values


def read_rows(source: str | Path, config: LabelConfig | None = None) -> list[LabelRow]:
    """Read and validate every row of ``source``, reporting every bad row at once (``file:line: problem``).

    source (`str | Path`): a ``.jsonl`` / ``.parquet`` file (or JSON, CSV), a folder written by ``save_to_disk``
        (or of data files), or a hub dataset id (read with ``datasets.load_dataset``; offline, only from the
        local cache); see `mr3_reward.data.iter_rows`.
    config (`LabelConfig`, *optional*): column names, split and strategy (``pair`` needs exactly 2 responses).
    """
    config = config or LabelConfig()
    raw_rows = list(iter_rows(source, config.split))
    if not raw_rows:
        raise InputError(f"input {str(source)!r} is empty: it needs one row per prompt")
    keys = set().union(*(r.keys() for _, r in raw_rows if isinstance(r, Mapping)))
    prompt_col = config.prompt_column or next((c for c in PROMPT_COLUMNS if c in keys), PROMPT_COLUMNS[0])
    list_col, separate = _response_columns(keys, config)
    rows, problems = [], []
    for i, (where, raw) in enumerate(raw_rows):
        try:
            rows.append(_row(i, where, raw, config, prompt_col, list_col, separate))
        except ValueError as e:
            problems.append(f"{where}: {e}")
    if not problems and len({isinstance(r.prompt, str) for r in rows}) > 1:
        problems.append(f"{str(source)!r}: {prompt_col!r} mixes text and chat messages; use one form for all rows "
                        "(the output's prompt/chosen/rejected follow it)")
    if problems:
        more = f"\n... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
        raise InputError(f"{len(problems)} bad row(s) in the input:\n" + "\n".join(problems[:MAX_REPORTED]) + more)
    return rows

