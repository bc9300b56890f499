"""`Judgment`: the judge's verdict on one request, and the record the result cache keeps of it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from mr3_reward.frozen import built

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
        record = dict(self.__dict__)
        record["meta"] = dict(self.meta)  # the two mappings are copied: the record must not alias the judgment
        if self.label_probs is not None:
            record["label_probs"] = dict(self.label_probs)
        return record

    def to_record(self) -> dict[str, Any]:
        """`to_dict` without the fields at their defaults, and with the reasoning as its place in ``raw``
        (``reasoning_at``: [start, end]) when ``raw`` holds it as written: what the result cache stores
        (`from_dict` restores both), so each stored judgment is smaller to encode and to write. A judge's
        reasoning is most of its output: written once instead of twice, the record is about half as big."""
        record = self.__dict__.copy()
        for name, default in _DEFAULT_ITEMS:
            if record[name] is default:
                del record[name]
        reasoning = record.get("reasoning")
        if reasoning is not None and (start := self.raw.find(reasoning)) >= 0:
            del record["reasoning"]
            record["reasoning_at"] = [start, start + len(reasoning)]
        meta = record.pop("meta")
        if meta:
            record["meta"] = dict(meta)  # the two mappings are copied: the record must not alias the judgment
        label_probs = record.get("label_probs")
        if label_probs is not None:
            record["label_probs"] = dict(label_probs)
        return record

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Judgment:
        """The judgment of a `to_dict` or `to_record` record (names that are not fields are ignored; a
        ``reasoning_at`` that does not fit ``raw`` leaves the reasoning empty)."""
        fields = {k: v for k, v in record.items() if k in _JUDGMENT_FIELDS}
        at = record.get("reasoning_at")
        if at is not None and "reasoning" not in fields:
            raw = fields.get("raw")
            if (type(at) is list and len(at) == 2 and all(type(i) is int for i in at) and isinstance(raw, str)
                    and 0 <= at[0] <= at[1] <= len(raw)):
                fields["reasoning"] = raw[at[0]:at[1]]
        return cls(**fields)

    @classmethod
    def of(cls, **values: Any) -> Judgment:
        """``Judgment(**values)`` for the hot path (``score`` defaults to None here): the same object, built
        without the frozen ``__init__``'s per-field setting (a Judgment has nothing to check on construction).
        Unknown names are refused."""
        values.setdefault("meta", {})  # a fresh dict per judgment, as the dataclass default gives
        return _BLANK._copy(values)

    @staticmethod
    def from_fields(values: dict[str, Any]) -> Judgment:
        """`of` for the package's hot path (parsing, the judge's memory of recent judgments), which passes only
        field names and always ``meta``: the names are not checked here."""
        return built(Judgment, {**_BLANK.__dict__, **values})

    def with_(self, **changes: Any) -> Judgment:
        """A copy with ``changes`` (field names of `Judgment`), like `dataclasses.replace` but without its
        per-call field introspection and frozen-field setting: this runs once per judgment on the hot path,
        and a Judgment has nothing to check in ``__init__``."""
        return self._copy(changes)

    def _copy(self, changes: dict[str, Any]) -> Judgment:
        if not changes.keys() <= _JUDGMENT_FIELDS:
            raise TypeError(f"Judgment has no field(s) {sorted(changes.keys() - _JUDGMENT_FIELDS)}")
        copy = object.__new__(Judgment)
        values = copy.__dict__
        values.update(self.__dict__)
        values.update(changes)
        return copy


# Computed once: `dataclasses.fields` is slow enough to show in the per-judgment overhead.
_JUDGMENT_FIELDS = frozenset(f.name for f in fields(Judgment))
_BLANK = Judgment(score=None)  # every field at its default, for `Judgment.of`
# The defaults `to_record` leaves out, compared by identity (small ints, None, booleans, "" are singletons;
# ``is`` keeps 0 and False apart; a value that is equal but not identical is merely written). An empty meta
# is left out too.
_DEFAULT_ITEMS = (("failure", None), ("explanation", None), ("reasoning", ""), ("attempts", 1),
                  ("neutralized_lines", 0), ("truncated_input", False), ("label_probs", None))
