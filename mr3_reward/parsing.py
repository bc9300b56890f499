"""Reading a judge's generation into a `Judgment`.

mR3 thinks inside ``<think> … </think>`` and then answers with a small object such as
``{"explanation": "...", "score": "Assistant A"}``. The reference implementation splits on the last
``</think>``, tries ``json.loads(answer)["score"]`` and otherwise a ``score: value`` regex. This module
does the same and recovers more: fenced or prose-wrapped objects, Python-dict quoting, several answer
objects, numbers and booleans as scores, unescaped quotes inside the explanation, and label spelling
differences. It never raises on model text and stays linear-time on hostile input, because a reward
function runs on every rollout of a training job and one odd generation must not stop it.
"""

from __future__ import annotations

import ast
import bisect
import functools
import json
import math
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mr3_reward.types import THINK_CLOSE, THINK_OPEN, Failure, Judgment, Rubric

__all__ = ["parse_judgment", "normalize_label"]

# Bounds that keep one call well under a millisecond on normal answers and bounded on hostile ones.
_MAX_TOP_SPANS = 64  # outermost {...} spans examined, newest first; older ones are prose or reasoning
_MAX_PARSE_ATTEMPTS = 96  # strict JSON/Python parses per call (each is linear in the span, C speed)
_MAX_AST_ATTEMPTS = 8  # ast.parse is ~20x slower than the C JSON scanner, so it gets a smaller share
_MAX_AST_CHARS = 20_000  # ast.parse on large or deep input is slow and raises RecursionError/MemoryError
_MAX_SCAN_SPECIALS = 60_000  # braces/quotes left to the Python-level scan loop, counted from the end
_SCAN_CHUNK = 4096
_MAX_OBJECT_NODES = 10_000  # nodes visited when looking for a nested "score" key

_DECODER = json.JSONDecoder(strict=False)  # strict=False: models put raw newlines/tabs in strings

# Inside an object, a string may only start where JSON/Python syntax allows one: after "{", "[", ","
# or ":" (plus whitespace). That keeps apostrophes in words ("it's") from opening a string. It also
# bounds the work: an opening quote is never escaped, so only the last opener of each quote kind can
# fail to close, and a failed attempt (a scan to the end) happens at most twice per call. Possessive
# quantifiers keep the string patterns free of backtracking.
_OBJECT_TOKEN = re.compile(
    r"""\{|\}|(?<=[{\[,:])\s*+(?:"[^"\\]*+(?:\\.[^"\\]*+)*+"|'[^'\\]*+(?:\\.[^'\\]*+)*+')""",
    re.DOTALL,
)

# `score: value` without a parseable object around it. The key may be quoted or in markdown bold
# ("**Score:** B"); the value is quoted (any text up to the closing quote on the same line) or bare
# (up to a comma, brace, quote or line end). The key word is found first with a case-insensitive
# literal (C speed, unlike a pattern that begins with a lookbehind), then the rest is matched right
# after it; bounded repetitions and possessive quantifiers keep both linear.
_SCORE_WORD = re.compile("[sS][cC][oO][rR][eE]")
_AFTER_SCORE_WORD = re.compile(
    r"""[*"'`]{0,3}+\s*+[:=\uff1a]\**+\s*+"""
    r"""(?:"([^"\n]{0,200})"|'([^'\n]{0,200})'|([^\s"'{}\[\],][^\n,{}\[\]"]{0,200}))"""
)
_EXPLANATION_WORD = re.compile("[eE][xX][pP][lL][aA][nN][aA][tT][iI][oO][nN]")
_AFTER_EXPLANATION_WORD = re.compile(r"""[*"'`]{0,3}+\s*+[:=\uff1a]\**+\s*+""")
_KEY_DECORATION = "*\"'`"

# Characters that decorate a label without changing it: quotes, markdown emphasis, brackets, a final
# full stop ("Assistant A." / "**4**" / "(C)").
_LABEL_DECORATION = "\"'`*.()[]<>:;,!"


# --------------------------------------------------------------------------------------------------
# Labels


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
    label_tuple = _coerce_labels(labels)
    if not label_tuple:
        return None
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


# --------------------------------------------------------------------------------------------------
# Finding answer objects


class _Span:
    """A balanced ``{...}`` region: ``text[start:end]``, with the balanced regions directly inside it."""

    __slots__ = ("start", "end", "children")

    def __init__(self, start: int, end: int, children: list[_Span]) -> None:
        self.start = start
        self.end = end
        self.children = children


def _scan_start(text: str) -> int:
    """Where the brace scan begins: late enough that at most _MAX_SCAN_SPECIALS braces/quotes remain.

    The scan is a Python loop over those characters (about 1 µs each), so a megabyte of ``{`` would
    take a second.
    The answer is at the end of the text, so the tail is the part worth scanning; counting with
    ``str.count`` (C speed) finds how much tail fits the budget.
    """
    total = 0
    end = len(text)
    while end > 0:
        start = max(0, end - _SCAN_CHUNK)
        total += (
            text.count("{", start, end)
            + text.count("}", start, end)
            + text.count('"', start, end)
            + text.count("'", start, end)
        )
        if total > _MAX_SCAN_SPECIALS:
            return end
        end = start
    return 0


def _brace_spans(text: str) -> list[_Span]:
    """The outermost balanced ``{...}`` spans of ``text``, in order, each with its nested spans.

    One left-to-right pass. Quotes are tracked only inside braces (prose quotes are not JSON), so a
    ``}`` inside an explanation string does not close the object. Braces left open (prose such as
    "a set {x" or a truncated object) do not hide the complete objects after them: every closed pair
    is recorded, and a pair that closes around earlier ones adopts them as children.
    """
    pos = _scan_start(text)
    end = len(text)
    open_at: list[int] = []
    closed: list[_Span] = []  # closed spans not yet known to sit inside another closed span
    while pos < end:
        if not open_at:
            i = text.find("{", pos, end)
            if i < 0:
                break
            open_at.append(i)
            pos = i + 1
            continue
        m = _OBJECT_TOKEN.search(text, pos, end)
        if m is None:
            break
        pos = m.end()
        c = text[m.start()]
        if c == "{":
            open_at.append(m.start())
        elif c == "}":
            start = open_at.pop()
            children: list[_Span] = []
            while closed and closed[-1].start > start:
                children.append(closed.pop())
            children.reverse()
            closed.append(_Span(start, pos, children))
        # else: a complete string token, skipped whole
    return closed


class _JsonNames(ast.NodeTransformer):
    """Lets a Python-quoted dict use JSON's ``true``/``false``/``null`` too (models mix the two)."""

    _NAMES = {"true": True, "false": False, "null": None, "none": None}

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in self._NAMES:
            return ast.copy_location(ast.Constant(self._NAMES[node.id]), node)
        return node


def _python_literal(source: str) -> object:
    # Only literals are evaluated: ast.literal_eval rejects calls, attributes, names and operators
    # other than unary/complex arithmetic, so nothing from the model is ever executed.
    tree = ast.parse(source, mode="eval")
    return ast.literal_eval(_JsonNames().visit(tree))


@dataclass
class _Budget:
    parses: int = _MAX_PARSE_ATTEMPTS
    asts: int = _MAX_AST_ATTEMPTS


@dataclass(frozen=True)
class _Found:
    value: object  # the raw score value, before normalization
    explanation: str | None
    parsed_with: str  # "json", "python_literal" or "regex"


_NOT_PARSED = object()


def _load_span(text: str, span: _Span, budget: _Budget) -> tuple[object, str]:
    """The object a span holds, parsed as JSON or else as a Python literal; _NOT_PARSED if neither."""
    if budget.parses <= 0:
        return _NOT_PARSED, ""
    budget.parses -= 1
    try:
        # raw_decode parses in place (no copy of a possibly huge span) and stops at the object's end.
        obj, _ = _DECODER.raw_decode(text, span.start)
        return obj, "json"
    except Exception:  # ValueError, RecursionError on deep nesting, MemoryError
        pass
    if span.end - span.start <= _MAX_AST_CHARS and budget.asts > 0:
        budget.asts -= 1
        try:
            return _python_literal(text[span.start : span.end]), "python_literal"
        except Exception:  # SyntaxError, ValueError, RecursionError, MemoryError, ...
            pass
    return _NOT_PARSED, ""


def _is_key(key: object, name: str) -> bool:
    return isinstance(key, str) and key.strip().casefold() == name


def _score_holder(obj: object) -> tuple[dict, object] | None:
    """The dict with a ``score`` key (any case) in a parsed object and that key, nearest the top first.

    The answer is normally the top-level object; models sometimes wrap it (``{"result": {...}}``).
    """
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


def _from_span(text: str, span: _Span, budget: _Budget) -> tuple[_Found | None, bool]:
    """(the answer in this span or None, whether the span parsed at all)."""
    obj, how = _load_span(text, span, budget)
    if obj is _NOT_PARSED:
        return None, False
    if not isinstance(obj, dict):  # e.g. a Python set literal "{'A'}": not an answer object
        return None, False
    holder = _score_holder(obj)
    if holder is None:
        return None, True
    mapping, key = holder
    return _Found(mapping[key], _explanation_of(mapping), how), True


class _BareValue(str):
    """An unquoted regex capture: may carry trailing words after the label."""


# In a broken object read by regex, the explanation may be followed by other keys before "score"
# ("x", "confidence": 0.9, "score": ...): its closing quote is the one followed by ", key:".
_NEXT_KEY_AFTER = {q: re.compile(q + r"""\s*+,\s*+["']?\w++["']?\s*+:""") for q in "\"'"}


def _unquote(value: str) -> str:
    """The contents of a quoted explanation read by regex, with JSON escapes undone where possible."""
    if len(value) >= 2 and value[0] in "\"'":
        quote = value[0]
        next_key = _NEXT_KEY_AFTER[quote].search(value, 1)
        if next_key is not None:
            value = value[1 : next_key.start()]
        else:
            value = value[1:-1] if value.endswith(quote) else value[1:]
    if "\\" in value:
        try:
            decoded = json.loads(f'"{value}"', strict=False)
            if isinstance(decoded, str):
                value = decoded
        except Exception:
            pass
    return value.strip()


def _is_word_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def _key_start(text: str, word_at: int, lo: int) -> int:
    """Where a key found at ``word_at`` starts, including up to 3 quote/emphasis characters."""
    start = word_at
    while start > lo and word_at - start < 3 and text[start - 1] in _KEY_DECORATION:
        start -= 1
    return start


class _ScoreKeys:
    """Positions of the word "score" (any case) in a text, so that spans and ranges without one are
    skipped in O(log n): no answer can come from text that never says "score"."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.positions = [m.start() for m in _SCORE_WORD.finditer(text)]

    def any_in(self, lo: int, hi: int) -> bool:
        i = bisect.bisect_left(self.positions, lo)
        return i < len(self.positions) and self.positions[i] + 5 <= hi

    def last_match(self, lo: int, hi: int) -> tuple[int, re.Match[str]] | None:
        """(key start, value match) of the last ``score: value`` inside ``text[lo:hi]``."""
        text = self.text
        i = bisect.bisect_right(self.positions, hi - 5)
        while i > 0:
            i -= 1
            at = self.positions[i]
            if at < lo:
                break
            if at > 0 and _is_word_char(text[at - 1]):  # "subscore", "final_score"
                continue
            m = _AFTER_SCORE_WORD.match(text, at + 5, hi)
            if m is not None:
                return _key_start(text, at, lo), m
        return None


def _explanation_around(
    text: str, lo: int, hi: int, key_start: int, value_end: int, *, inside_object: bool
) -> str | None:
    """The value of the ``explanation`` key nearest before the score key, else the first after the
    score's value, read as text: it runs to the score key, or the object's end, or the line's end."""
    before = after = None
    for m in _EXPLANATION_WORD.finditer(text, lo, hi):
        at = m.start()
        if at > 0 and _is_word_char(text[at - 1]):
            continue
        tail = _AFTER_EXPLANATION_WORD.match(text, m.end(), hi)
        if tail is None:
            continue
        if tail.end() <= key_start:
            before = tail
        elif at >= value_end:
            after = tail
            break
    if before is not None:
        value = text[before.end() : key_start]
    elif after is not None:
        stop = hi if inside_object else text.find("\n", after.end(), hi)
        value = text[after.end() : hi if stop < 0 else stop].rstrip()
        if inside_object and value.endswith("}"):
            value = value[:-1]
    else:
        return None
    return _unquote(value.strip().rstrip(",").strip()) or None


def _regex_answer(keys: _ScoreKeys, lo: int, hi: int, *, inside_object: bool) -> _Found | None:
    """The last ``score: value`` in ``text[lo:hi]``, with an explanation read the same way.

    Used on an object that did not parse (unquoted keys, unescaped quotes in the explanation, a
    missing comma) and, last of all, on the whole answer for brace-less answers.
    """
    hit = keys.last_match(lo, hi)
    if hit is None:
        return None
    key_start, m = hit
    quoted = m.group(1) if m.group(1) is not None else m.group(2)
    # A bare value may run on into prose ("score: 4 out of 7"); mark it so the caller can fall back
    # to its first word when the whole does not match a label.
    value: object = quoted if quoted is not None else _BareValue(m.group(3).strip())
    explanation = _explanation_around(keys.text, lo, hi, key_start, m.end(), inside_object=inside_object)
    return _Found(value, explanation, "regex")


def _whole_object(text: str) -> _Found | None:
    """The common case, read without scanning: the answer is exactly one JSON object holding a score. Any
    other text (prose around it, several objects, broken JSON) goes the long way, which finds the same
    object when this finds one."""
    stripped = text.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")):
        return None
    try:
        obj = _DECODER.decode(stripped)
    except Exception:  # ValueError, RecursionError on deep nesting, MemoryError
        return None
    holder = _score_holder(obj) if isinstance(obj, dict) else None
    if holder is None:
        return None
    mapping, key = holder
    return _Found(mapping[key], _explanation_of(mapping), "json")


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


# --------------------------------------------------------------------------------------------------
# The judgment


def _strip_open_tag(text: str) -> str:
    stripped = text.lstrip()
    return stripped[len(THINK_OPEN) :] if stripped.startswith(THINK_OPEN) else text


def parse_judgment(
    text: str,
    labels: Sequence[str] | Rubric,
    prefix: str = "",
    *,
    truncated: bool = False,
) -> Judgment:
    """Read a judge's generation into a `Judgment`, never raising on what the model wrote.

    The answer is what follows the last ``</think>``; JSON-like text in the reasoning is ignored.
    The answer object may be plain, fenced (```` ```json ````), Python-quoted, wrapped in prose or
    repeated (the last object with a ``score`` key wins); failing that, a ``score: value`` pattern is
    used. Without any ``</think>`` the whole generation is searched (small models that do not know
    think tags), unless the generation was cut off by the token limit.

    Failures set ``score=None`` and ``failure`` to a `Failure` value: ``no_answer`` (empty generation
    or nothing after ``</think>``), ``bad_json`` (an answer without a readable score),
    ``label_not_in_rubric`` (a score that is not one of the labels; the value read is in
    ``meta["raw_score"]``) and ``truncated`` (``truncated=True`` and no valid score found).

    Args:
        text (`str`): the generated text only, as the engine returned it (kept as ``raw``).
        labels (`Sequence[str]` or `Rubric`): the valid score labels.
        prefix (`str`, *optional*, defaults to `""`): assistant text that was part of the prompt,
            normally ``"<think>"`` plus an optional forcing sentence; it starts the reasoning.
        truncated (`bool`, *optional*, defaults to `False`): whether generation stopped at the token
            limit. An unfinished thought is then reported as ``truncated`` rather than searched.

    Returns:
        `Judgment`: ``score`` is a label from ``labels`` or ``None``, and exactly one of ``score`` and
        ``failure`` is set. ``meta["parsed_with"]`` says how the score was read (``"json"``,
        ``"python_literal"`` or ``"regex"``).

    Raises:
        `ValueError`: ``labels`` is empty. `TypeError`: ``text`` is not a string. Both are caller bugs.

    Example:

    >>> j = parse_judgment(
    ...     '\\nBoth are polite; A answers the question.</think>\\n'
    ...     '{"explanation": "A is on topic.", "score": "Assistant A"}',
    ...     ["Assistant A", "Assistant B"],
    ...     prefix="<think>Okay, I have to think explicitly.",
    ... )
    >>> j.score, j.failure, j.explanation
    ('Assistant A', None, 'A is on topic.')
    >>> j.reasoning
    'Okay, I have to think explicitly.\\nBoth are polite; A answers the question.'
    >>> parse_judgment("Let me check.</think>\\n", ["true", "false"]).failure
    'no_answer'
    >>> parse_judgment("</think>{'score': 8}", [str(i) for i in range(1, 8)]).failure
    'label_not_in_rubric'
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_judgment needs the generated text as a str; got {type(text).__name__}")
    label_tuple = _coerce_labels(labels)
    if not label_tuple:
        raise ValueError("parse_judgment needs the rubric's labels; got none")
    prefix = prefix or ""

    prompt_thought = _strip_open_tag(prefix)
    generated = _strip_open_tag(text)

    def failed(failure: Failure, reasoning: str = "", **extra: Any) -> Judgment:
        if truncated:  # no usable score because generation was cut off: that is the cause to report
            failure = Failure.TRUNCATED
        return Judgment(
            score=None,
            failure=failure.value,
            explanation=extra.pop("explanation", None),
            reasoning=reasoning,
            raw=text,
            meta=extra,
        )

    close = generated.rfind(THINK_CLOSE)
    delimited = True  # whether we know where the answer starts
    if close >= 0:
        reasoning = (prompt_thought + generated[:close]).strip()
        answer = generated[close + len(THINK_CLOSE) :]
    elif THINK_CLOSE in prompt_thought:
        # The prompt closed the thinking itself (no-thinking mode): everything generated is the answer.
        reasoning = prompt_thought[: prompt_thought.rfind(THINK_CLOSE)].strip()
        answer = generated
    elif truncated:
        # Cut off mid-thought: any object in it is reasoning, not an answer.
        return failed(Failure.TRUNCATED, (prompt_thought + generated).strip())
    else:
        # No think tags at all: search everything, as the reference does.
        reasoning = ""
        answer = generated
        delimited = False

    if not answer.strip():
        return failed(Failure.NO_ANSWER, reasoning)

    found, says_score = _find_answer(answer)
    if found is None:
        attempted = delimited or says_score or "{" in answer
        return failed(Failure.BAD_JSON if attempted else Failure.NO_ANSWER, reasoning)

    raw_value = str(found.value) if isinstance(found.value, _BareValue) else found.value
    score = normalize_label(raw_value, label_tuple)
    if score is None and isinstance(found.value, _BareValue):
        words = found.value.split(maxsplit=1)
        if len(words) > 1:
            score = normalize_label(words[0], label_tuple)
    if score is None:
        return failed(
            Failure.LABEL_NOT_IN_RUBRIC,
            reasoning,
            explanation=found.explanation,
            raw_score=raw_value,
            parsed_with=found.parsed_with,
        )
    return Judgment(
        score=score,
        failure=None,
        explanation=found.explanation,
        reasoning=reasoning,
        raw=text,
        meta={"parsed_with": found.parsed_with},
    )
