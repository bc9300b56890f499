"""Reading ``score: value`` by regex when no object around it parses, with the explanation beside it."""

from __future__ import annotations

import bisect
import json
import re

from mr3_reward.parsing.objects import _Found

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
