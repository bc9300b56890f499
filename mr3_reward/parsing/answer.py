"""Finding the answer in the text after ``</think>``: the newest object with a score, else a regex read."""

from __future__ import annotations

from mr3_reward.parsing.fallback import _regex_answer, _ScoreKeys
from mr3_reward.parsing.objects import _answer_in, _Found
from mr3_reward.parsing.spans import _DECODER, _MAX_TOP_SPANS, _NOT_PARSED, _brace_spans, _Budget, _load_span, _Span


def _from_span(text: str, span: _Span, budget: _Budget) -> tuple[_Found | None, bool]:
    """(the answer in this span or None, whether the span parsed at all)."""
    obj, how = _load_span(text, span, budget)
    if obj is _NOT_PARSED:
        return None, False
    if not isinstance(obj, dict):  # e.g. a Python set literal "{'A'}": not an answer object
        return None, False
    return _answer_in(obj, how), True


def _whole_object(text: str) -> _Found | None:
    """The common case, read without scanning: the answer is exactly one JSON object holding a score. Any
    other text (prose around it, several objects, broken JSON) goes the long way, which finds the same
    object when this finds one."""
    stripped = text.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")):
        return None
    try:
        obj, end = _DECODER.raw_decode(stripped)  # no whitespace around it to skip: it was stripped
    except Exception:  # ValueError, RecursionError on deep nesting, MemoryError
        return None
    if end != len(stripped):  # more after the first object: the long way
        return None
    return _answer_in(obj, "json") if isinstance(obj, dict) else None


def _find_answer(text: str) -> tuple[_Found | None, bool]:
    """(the last answer in ``text``, whether ``text`` says "score" at all).

    The answer is the newest object with a ``score`` key, else the last ``score: value``.
    """
    found = _whole_object(text)
    if found is not None:
        return found, True
    keys = _ScoreKeys(text)
    if not keys.positions:
        return None, False
    budget = _Budget()
    examined = 0
    for span in reversed(_brace_spans(text)):
        if not keys.any_in(span.start, span.end):
            continue  # reasoning-like prose or an object without a score: cannot be the answer
        examined += 1
        if examined > _MAX_TOP_SPANS:
            break
        found, parsed = _from_span(text, span, budget)
        if found is not None:
            return found, True
        if parsed:
            continue  # a well-formed object without a score is not the answer; look further back
        # Prose or broken JSON in braces may still wrap a complete answer object: try the nested
        # spans, newest (latest-ending) first, then read the span with the regex.
        stack = [c for c in span.children if keys.any_in(c.start, c.end)]
        while stack and budget.parses > 0:
            child = stack.pop()
            found, parsed = _from_span(text, child, budget)
            if found is not None:
                return found, True
            if not parsed:
                stack.extend(c for c in child.children if keys.any_in(c.start, c.end))
        found = _regex_answer(keys, span.start, span.end, inside_object=True)
        if found is not None:
            return found, True
    return _regex_answer(keys, 0, len(text), inside_object=False), True
