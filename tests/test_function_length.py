"""No function in `mr3_reward` or `training` is over 70 lines (docstring included): a longer one is several
steps that deserve names. Read from the source with `ast`, nested functions counted on their own too."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 70


def long_functions(source: str, limit: int = MAX_LINES) -> list[tuple[str, int, int]]:
    """(name, first line, length) of every function in ``source`` longer than ``limit`` lines."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > limit:
                found.append((node.name, node.lineno, length))
    return found


def test_the_check_sees_a_long_function():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    assert long_functions(f"def f():\n{body}\n") == [("f", 1, MAX_LINES + 1)]
    assert long_functions("def g():\n    return 1\n") == []


def test_no_function_is_over_70_lines():
    too_long = [f"{path.relative_to(REPO)}:{line} {name} ({length} lines)"
                for root in ("mr3_reward", "training") for path in sorted((REPO / root).rglob("*.py"))
                for name, line, length in long_functions(path.read_text(encoding="utf-8"))]
    assert not too_long, "split these into named steps:\n" + "\n".join(too_long)
