"""`Judgment`: the judge's verdict on one request, and the record the result cache keeps of it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

__all__ = ["Judgment"]


@dataclass(frozen=True)
class Judgment:
    """The judge's verdict on one request.

    score (`str | None`): the normalized rubric label, or ``None`` when the judge could not judge.
    failure (`str | None`): a `Failure` value when ``score`` is None.
    explanation (`str | None`): the explanation from the answer object, when there is one.
    reasoning (`str`): the thinking text (forcing sentence included), without the ``<think>`` tags.
    raw (`str`): the generated text as the engine returned it.
    """

    score: str | None
    failure: str | None = None
    explanation: str | None = None
    reasoning: str = ""
    raw: str = ""
    attempts: int = 1
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Forged template-header lines and chat-control tokens found in user text and escaped before the
    # judge saw them (see `mr3_reward.templates.neutralize`).
    neutralized_lines: int = 0
    # True when responses were cut to fit the judge's input limit (`Judge(max_input_tokens=...)`).
    truncated_input: bool = False
    # The probability of each rubric label at the score position, renormalized over the labels (constrained
    # verdicts always have them; free ones where the engine reports label log-probabilities). Soft rewards use them.
    label_probs: Mapping[str, float] | None = field(default=None, compare=False, hash=False)
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def ok(self) -> bool:
        return self.score is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe record with every field."""
        record = dict(vars(self))
        record["meta"] = dict(self.meta)  # the two mappings are copied: the record must not alias the judgment
        if self.label_probs is not None:
            record["label_probs"] = dict(self.label_probs)
        return record

    def to_record(self) -> dict[str, Any]:
        """`to_dict` without the fields at their defaults, and with the reasoning as its place in ``raw``
        (``reasoning_at``: [start, end]) when ``raw`` holds it as written: what the result cache stores
        (`from_dict` restores both), so each stored judgment is smaller to encode and to write. A judge's
        reasoning is most of its output: written once instead of twice, the record is about half as big."""
        record = self.to_dict()
        for name, default in _LEFT_OUT_AT.items():
            value = record[name]
            if type(value) is type(default) and value == default:  # a 0 is not the default False, nor False 0
                del record[name]
        reasoning = record.get("reasoning")
        if reasoning is not None and (start := self.raw.find(reasoning)) >= 0:
            del record["reasoning"]
            record["reasoning_at"] = [start, start + len(reasoning)]
        meta = record.pop("meta")
        if meta:
            record["meta"] = meta
        return record

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Judgment:
        """The judgment of a `to_dict` or `to_record` record (names that are not fields are ignored; a
        ``reasoning_at`` that does not fit ``raw`` leaves the reasoning empty)."""
        values = {k: v for k, v in record.items() if k in _FIELD_NAMES}
        at = record.get("reasoning_at")
        if at is not None and "reasoning" not in values:
            raw = values.get("raw")
            if (type(at) is list and len(at) == 2 and all(type(i) is int for i in at) and isinstance(raw, str)
                    and 0 <= at[0] <= at[1] <= len(raw)):
                values["reasoning"] = raw[at[0]:at[1]]
        return cls(**values)

    def with_(self, **changes: Any) -> Judgment:
        """A copy with ``changes`` (field names of `Judgment`): `dataclasses.replace`."""
        return replace(self, **changes)


_FIELD_NAMES = frozenset(f.name for f in fields(Judgment))
# The fields `to_record` leaves out at their defaults (an empty meta is left out too).
_LEFT_OUT_AT = {f.name: f.default for f in fields(Judgment)
                if f.name in ("failure", "explanation", "reasoning", "attempts", "neutralized_lines",
                              "truncated_input", "label_probs")}
