"""The byte layout of an mR3 prompt: two chat messages and the assistant prefix, by concatenation.

Every template line after the first is indented by 4 spaces, inserted values are not re-indented, and
task families differ only in three whitespace joints, captured by `Layout`. `Texts` holds the words of
one template in one language; the user's data comes in as (header, value) sections.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mr3_reward.backends.base import ChatPrompt
from mr3_reward.types import THINK_OPEN

_INDENT = "    "


@dataclass(frozen=True)
class Layout:
    after_task: str = "\n\n" + _INDENT  # between the task description and the next header
    after_rubric: str = "\n\n" + _INDENT  # between the rubric block (newline-terminated) and the next header
    user_tail: str = _INDENT  # what follows the final "Your Response" header line


PAIR = Layout()  # pairwise, preference strength, our pointwise
CLASSIFY = Layout(after_rubric="\n" + _INDENT, user_tail=_INDENT * 2)  # harmfulness / toxicity
SOLUTION = Layout(after_task="\n" + _INDENT * 2 + "\n" + _INDENT)  # correctness of a math/code solution


@dataclass(frozen=True)
class Texts:
    """The localized words of one template: everything except the user's data."""

    system_line: str
    instruction: str  # the "Instruction" header word
    task_description: str
    tags: Mapping[str, str]  # input_tag, evaluation_rubric_tag, response_format_tag, your_response_tag, ...
    schema: Mapping[str, Any]
    forcing: str = ""  # the sentence after <think> for target-language thinking


def render_system(texts: Texts, layout: Layout, rubric_text: str | None) -> str:
    """The system message: system line, instruction, rubric block and response schema."""
    tags = texts.tags
    system = f"{texts.system_line}\n\n# {texts.instruction}\n{_INDENT}{texts.task_description}{layout.after_task}"
    if rubric_text is not None:
        system += f"# {tags['evaluation_rubric_tag']}\n{_INDENT}{rubric_text}{layout.after_rubric}"
    # The schema is shown as a Python dict repr (single quotes): that is what the models were trained on.
    return system + f"# {tags['response_format_tag']}\n\n{_INDENT}{dict(texts.schema)!r}"


def render_user(tags: Mapping[str, str], layout: Layout, sections: Sequence[tuple[str, str]]) -> str:
    """The user message: (header, value) sections in order, then the "Your Response" header."""
    user = "".join([f"# {header}\n{_INDENT}{value}\n\n{_INDENT}" for header, value in sections])
    return user + f"# {tags['your_response_tag']}\n{layout.user_tail}"


def render_messages(
    system: str,
    texts: Texts,
    layout: Layout,
    sections: Sequence[tuple[str, str]],
    *,
    force_thinking: bool,
) -> ChatPrompt:
    """The whole prompt from known parts: plain concatenation, nothing is formatted over user text.

    system (`str`): the system message, from `render_system` (a renderer memoizes it per template and rubric).
    sections (`Sequence[tuple[str, str]]`): (header, value) pairs of the user message, in order,
        before the final "Your Response" header.
    force_thinking (`bool`): start the reasoning with the template's forcing sentence (target-language
        thinking); the prefix is ``<think>`` either way.

    >>> texts = Texts("S.", "Instruction", "Judge.", {"your_response_tag": "Your Response"}, {})
    >>> render_messages("S.", texts, PAIR, [("Input", "2+2?")], force_thinking=False).user
    '# Input\\n    2+2?\\n\\n    # Your Response\\n    '
    """
    prefix = THINK_OPEN + texts.forcing if force_thinking else THINK_OPEN
    return ChatPrompt(system, render_user(texts.tags, layout, sections), prefix)
