"""The score and explanation a parsed answer object holds, and the record both readings return."""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

from mr3_reward.parsing.spans import _MAX_OBJECT_NODES


class _Found(NamedTuple):  # a tuple: made once per judgment, so it should cost little
    value: object  # the raw score value, before normalization
    explanation: str | None
    parsed_with: str  # "json", "python_literal" or "regex"


def _is_key(key: object, name: str) -> bool:
    return key == name or (isinstance(key, str) and key.strip().casefold() == name)


def _score_holder(obj: object) -> tuple[dict, object] | None:
    """The dict with a ``score`` key (any case) in a parsed object and that key, nearest the top first.

    The answer is normally the top-level object; models sometimes wrap it (``{"result": {...}}``).
    """
    if isinstance(obj, dict):  # the common case, without the queue: the answer is the top-level object
        keys = [k for k in obj if _is_key(k, "score")]
        if keys:
            return obj, keys[-1]
    queue: deque[object] = deque([obj])
    visited = 0
    while queue and visited < _MAX_OBJECT_NODES:
        node = queue.popleft()
        visited += 1
        if isinstance(node, dict):
            keys = [k for k in node if _is_key(k, "score")]
            if keys:
                return node, keys[-1]
            queue.extend(node.values())
        elif isinstance(node, (list, tuple)):
            queue.extend(node)
    return None


def _explanation_of(holder: dict) -> str | None:
    keys = [k for k in holder if _is_key(k, "explanation")]
    if not keys:
        return None
    value = holder[keys[-1]]
    if value is None:
        return None
    if not isinstance(value, str):
        try:
            value = str(value)
        except Exception:  # an int past the int->str digit limit, or nesting too deep for repr
            return None
    return value.strip()


# The answer as the models are trained to write it: exactly these two keys.
_TRAINED_KEYS = frozenset({"explanation", "score"})


def _answer_in(obj: dict, parsed_with: str) -> _Found | None:
    """The answer a parsed dict holds, or ``None`` when no ``score`` key is in it."""
    if obj.keys() == _TRAINED_KEYS:  # the common case, read directly (what the general reading gives)
        explanation = obj["explanation"]
        if type(explanation) is str:
            return _Found(obj["score"], explanation.strip(), parsed_with)
    holder = _score_holder(obj)
    if holder is None:
        return None
    mapping, key = holder
    return _Found(mapping[key], _explanation_of(mapping), parsed_with)
