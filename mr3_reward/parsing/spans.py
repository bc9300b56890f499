"""Finding balanced ``{...}`` spans and loading them as JSON or Python literals, within fixed budgets."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass

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
