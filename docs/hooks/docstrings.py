"""Griffe extension for the API reference: the docstrings' own layout, made readable as Markdown.

The docstrings are in the Hugging Face style: arguments as ``name (`type`): text`` lines with indented
continuations, and examples as bare ``>>>`` lines. Markdown would run the argument lines into one
paragraph and read ``>>>`` as nested quotes, so for the site (the docstrings are not changed):

- each run of lines from a ``>>>`` line to the next blank line is wrapped in a ``pycon`` fence;
- each unindented argument line starts a list item, the name in bold; an unindented line after it is
  still that item's text unless the item's last line ended a sentence.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

# `name (`type`...):` at the start of an unindented line; `*args` / `**kwargs` included.
ARGUMENT = re.compile(r"^(\*{0,2}[A-Za-z_]\w*) (\(`[^`]+`[^)]*\):)")


def readable(text: str) -> str:
    out: list[str] = []
    fence: str | None = None  # the indentation of an open doctest fence
    in_code = False  # inside a fence the docstring wrote itself
    in_list = False
    for line in text.splitlines():
        stripped = line.lstrip()
        if fence is None and stripped.startswith("```"):
            in_code = not in_code
        if in_code:
            out.append(line)
            continue
        if fence is None and stripped.startswith(">>>"):
            fence = line[: len(line) - len(stripped)]
            if out and out[-1].strip():
                out.append("")
            out.append(f"{fence}```pycon")
        elif fence is not None and not stripped:
            out.append(f"{fence}```")
            fence = None
        elif fence is None:
            match = ARGUMENT.match(line)
            if match:
                if not in_list and out and out[-1].strip():
                    out.append("")
                line = f"- **{match.group(1)}** {match.group(2)}{line[match.end():]}"
                in_list = True
            elif not stripped:
                in_list = False
            elif in_list and not line.startswith(" ") and out[-1].rstrip().endswith((".", "!", "?")):
                out.append("")  # a paragraph after the list, not part of its last item
                in_list = False
        out.append(line)
    if fence is not None:
        out.append(f"{fence}```")
    return "\n".join(out)


class DocstringLayout(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = readable(obj.docstring.value)
