"""The row every stage passes on: one thing to judge, its gold label and its language.

A training row is a `JudgeRequest` plus what training needs around it (the gold label, where it came
from, which official template family renders it). Rows live in Hugging Face datasets with the explicit
`ROW_FEATURES` schema, so a column that happens to be all ``None`` in one shard still has its real type
and shards concatenate.

Rubrics are stored as JSON text (a list of ``[label, description]`` pairs, in the order the judge sees
them): Arrow has no ordered-mapping type, and the order matters.

Rendering happens only through `mr3_reward.templates.Renderer`, with one renderer per
(language mode, template family): the teacher, the difficulty model and the student's SFT prompts all
come from the same code the judge uses at serving time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mr3_reward.templates import DEFAULT_LABELS, LanguageMode, RenderedPrompt, Renderer, RubricPack
from mr3_reward.types import JudgeRequest, Rubric, TaskKind

ROW_COLUMNS = (
    "id", "source", "task", "language", "prompt", "responses", "reference", "options", "gold", "family",
    "rubric", "task_description", "rubric_tgt", "task_description_tgt",
)

# Teacher outputs, one per (strategy, sample); see `training.distill`.
TRACE_FIELDS = {
    "strategy": "string",
    "sample": "int32",
    "score": "string",
    "failure": "string",
    "correct": "bool",
    "explanation": "string",
    "text": "string",
    "prompt_tokens": "int32",
    "completion_tokens": "int32",
}


def row_features(extra: Mapping[str, Any] | None = None):
    """The `datasets.Features` of a training row, plus ``extra`` columns (name -> feature)."""
    from datasets import Features, List, Value

    features = {name: Value("string") for name in ROW_COLUMNS}
    features["responses"] = List(Value("string"))
    features.update(extra or {})
    return Features(features)


def trace_feature(sequence: bool = True):
    """One trace (a struct), or a list of them (``List``: ``Sequence`` of a dict would store a dict of lists)."""
    from datasets import List, Value

    struct = {name: Value(kind) for name, kind in TRACE_FIELDS.items()}
    return List(struct) if sequence else struct


def to_dataset(rows: list[dict[str, Any]], extra: Mapping[str, Any] | None = None):
    """Rows -> a `datasets.Dataset` with the row schema (+ ``extra`` columns); unknown keys are dropped."""
    from datasets import Dataset

    features = row_features(extra)
    return Dataset.from_list([{k: row.get(k) for k in features} for row in rows], features=features)


def encode_rubric(rubric: Rubric | Mapping[str, str] | str | None) -> str | None:
    """A rubric as the JSON text stored in a row (ordered ``[label, description]`` pairs)."""
    if rubric is None:
        return None
    return json.dumps([list(e) for e in Rubric.coerce(rubric).entries], ensure_ascii=False)


def decode_rubric(text: str | None) -> Rubric | None:
    return None if text is None else Rubric(tuple((str(a), str(b)) for a, b in json.loads(text)))


def expected_labels(row: Mapping[str, Any]) -> tuple[str, ...]:
    """The labels a rubric for this row must have: the task's, plus any other gold label of the row
    (arena data adds ``Tie``)."""
    labels = DEFAULT_LABELS[TaskKind.parse(row["task"])]
    gold = row.get("gold")
    return labels if gold is None or gold in labels else (*labels, gold)


def to_request(row: Mapping[str, Any], mode: LanguageMode | str) -> JudgeRequest:
    """The `JudgeRequest` for a row under a language mode.

    With a target-language prompt, the row's translated rubric and task description are used when it
    has them (written by `training.rubrics`); otherwise the row's own.
    """
    mode = LanguageMode.parse(mode)
    tgt = mode.tgt_prompt and row["language"] != "en"
    rubric = row.get("rubric_tgt") if tgt and row.get("rubric_tgt") else row.get("rubric")
    task_description = (
        row.get("task_description_tgt") if tgt and row.get("task_description_tgt") else row.get("task_description")
    )
    return JudgeRequest(
        task=row["task"],
        prompt=row["prompt"],
        responses=tuple(row.get("responses") or ()),
        rubric=decode_rubric(rubric),
        task_description=task_description,
        language=row["language"],
        reference=row.get("reference"),
        options=row.get("options"),
        id=row["id"],
    )


class Renderers:
    """One `Renderer` per (language mode, template family), sharing one rubric pack.

    pack (`str | Path | RubricPack`, *optional*): an official rubric pack. Without one, the package's
        English templates render every row and a row's ``family`` is not used (it names a template
        *in a pack*); target-language prompts for non-English rows then fail with the renderer's message.

    The student must be served with the same settings: ``Judge(model, pack=pack, family=row_family)``.
    """

    def __init__(self, pack: str | Path | RubricPack | None = None) -> None:
        self.pack = pack if pack is None or isinstance(pack, RubricPack) else RubricPack(pack)
        self._by_key: dict[tuple[str, str | None], Renderer] = {}

    def get(self, mode: LanguageMode | str, family: str | None) -> Renderer:
        mode = LanguageMode.parse(mode)
        family = family if self.pack is not None else None
        key = (mode.value, family)
        if key not in self._by_key:
            self._by_key[key] = Renderer(language_mode=mode, pack=self.pack, family=family)
        return self._by_key[key]

    def render(self, row: Mapping[str, Any], mode: LanguageMode | str) -> RenderedPrompt:
        return self.get(mode, row.get("family")).render(to_request(row, mode))

    def check(self, rows: Iterable[Mapping[str, Any]], modes: Iterable[LanguageMode | str]) -> list[str]:
        """Render every row under every mode; the problems found (a bad configuration fails before any
        model time is spent)."""
        problems = []
        modes = [LanguageMode.parse(m) for m in modes]
        for row in rows:
            for mode in modes:
                try:
                    rendered = self.render(row, mode)
                except (ValueError, KeyError, FileNotFoundError) as exc:
                    problems.append(f"row {row['id']!r} ({row['language']}) under {mode.value}: {exc}")
                    continue
                if row.get("gold") not in rendered.labels:
                    problems.append(f"row {row['id']!r}: gold label {row.get('gold')!r} is not one of the rubric's "
                                    f"labels {list(rendered.labels)} under {mode.value}")
        return problems
