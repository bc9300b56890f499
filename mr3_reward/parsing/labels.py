"""Matching a raw score value to one of the rubric's labels, forgiving spelling but never guessing."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mr3_reward.types import Rubric

# Characters that decorate a label without changing it: quotes, markdown emphasis, brackets, a final
# full stop ("Assistant A." / "**4**" / "(C)").
_LABEL_DECORATION = "\"'`*.()[]<>:;,!"


@dataclass(frozen=True)
class _LabelIndex:
    exact: frozenset[str]
    by_key: dict[str, str | None]  # None marks a key two labels share: ambiguous, so never matched
    by_compact: dict[str, str | None]
    by_number: dict[float, str | None]
    by_alias: dict[str, str]
    longest: int


def _key(text: str) -> str:
    """Case-, padding- and decoration-insensitive form of a label."""
    return " ".join(" ".join(text.split()).strip(_LABEL_DECORATION).split()).casefold()


def _compact(key: str) -> str:
    return key.replace(" ", "").replace("_", "").replace("-", "")


def _as_number(key: str) -> float | None:
    # float() accepts "4.0", "04", "4e0" and non-ASCII digits ("٤", "４") alike; long strings are not
    # labels and would only cost time.
    if not key or len(key) > 64:
        return None
    try:
        number = float(key)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _add(mapping: dict, key: Any, label: str) -> None:
    if key in mapping and mapping[key] != label:
        mapping[key] = None
    else:
        mapping[key] = label


@functools.lru_cache(maxsize=256)
def _label_index(labels: tuple[str, ...]) -> _LabelIndex:
    by_key: dict[str, str | None] = {}
    by_compact: dict[str, str | None] = {}
    by_number: dict[float, str | None] = {}
    for label in labels:
        key = _key(label)
        _add(by_key, key, label)
        _add(by_compact, _compact(key), label)
        number = _as_number(key)
        if number is not None:
            _add(by_number, number, label)
    # The judge is told to answer "Assistant A" but sometimes writes just "A". Only alias when the
    # bare letter is not itself a label (in multiple choice, "A" means option A).
    by_alias: dict[str, str] = {}
    for label in labels:
        key = _key(label)
        if key.startswith("assistant "):
            suffix = key[len("assistant ") :]
            if suffix and suffix not in by_key:
                by_alias[suffix] = label
    return _LabelIndex(frozenset(labels), by_key, by_compact, by_number, by_alias, max(map(len, labels)))


def _coerce_labels(labels: Sequence[str] | Rubric) -> tuple[str, ...]:
    if type(labels) is tuple:
        for label in labels:  # a loop, not all(<generator>): this runs once per judgment
            if type(label) is not str:
                break
        else:
            return labels  # already what is asked for: a rendered prompt's labels
    if isinstance(labels, Rubric):
        labels = labels.labels
    if isinstance(labels, str):
        # A bare string is a sequence of characters: "true" would silently become ("t","r","u","e").
        raise TypeError(f"labels must be a sequence of label strings or a Rubric, not the string {labels!r}")
    return tuple(str(label) for label in (labels or ()))


def _value_to_text(value: object) -> str | None:
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "true" if value else "false"
    if isinstance(value, int):
        try:
            return str(value)
        except ValueError:  # more digits than int->str conversion allows; no label is that long
            return None
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return str(int(value))
        return str(value)
    if isinstance(value, str):
        return value
    return None


def normalize_label(value: object, labels: Sequence[str] | Rubric) -> str | None:
    """Map a raw score value to one of the rubric's labels.

    Matches, in order: the exact label; the label ignoring case, surrounding whitespace, quotes,
    markdown emphasis, brackets and a final full stop; the label ignoring spaces, ``_`` and ``-``;
    the same number (``4``, ``4.0``, ``"6.0"``, ``"٤"``); and a bare suffix of an ``Assistant X`` label
    (``"A"`` -> ``"Assistant A"``) when that suffix is not a label itself. A spelling two labels share
    matches neither.

    Args:
        value (`object`): the score as read from the answer: a string, number, boolean or anything else.
        labels (`Sequence[str]` or `Rubric`): the valid labels.

    Returns:
        `str | None`: the matching label, or ``None`` when the value is not one of the labels.

    Example:

    >>> normalize_label(" assistant a ", ["Assistant A", "Assistant B"])
    'Assistant A'
    >>> normalize_label(4.0, [str(i) for i in range(1, 8)])
    '4'
    >>> normalize_label(True, ["true", "false"])
    'true'
    >>> print(normalize_label("Assistant C", ["Assistant A", "Assistant B"]))
    None
    """
    return _match(value, _coerce_labels(labels))


def _match(value: object, label_tuple: tuple[str, ...]) -> str | None:
    """`normalize_label` over labels already coerced to a tuple of strings."""
    if not label_tuple:
        return None
    if type(value) is str and value in label_tuple:  # the label as written: the common case
        return value
    text = _value_to_text(value)
    if text is None:
        return None
    index = _label_index(label_tuple)
    if text in index.exact:
        return text
    if len(text) > 4 * index.longest + 64:  # far longer than any label spelling; skip the work
        return None
    key = _key(text)
    if not key:
        return None
    found = index.by_key.get(key)
    if found is None:
        found = index.by_compact.get(_compact(key))
    if found is None:
        number = _as_number(key)
        if number is not None:
            found = index.by_number.get(number)
    if found is None:
        found = index.by_alias.get(key)
    return found
