"""Our own English templates, one per task: usable with no external data.

They follow the mR3 format (`layout`) with words written for this project; an official rubric pack
(`packs`) brings the reference's words in 30+ languages instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mr3_reward.templates.layout import PAIR, SOLUTION, Layout, Texts
from mr3_reward.types import TaskKind

SYSTEM_LINE_EN = "You are Qwen3, an AI assistant that reasons, thinks, and answers strictly in English."
FORCING_EN = (
    "Okay, I have to think explicitly and provide my answer in English. I will carefully examine all "
    "provided information and evaluate it according to the given rubric, then respond in the required format."
)

EN_TAGS = {
    "input_tag": "Input (User's Prompt)",
    "evaluation_rubric_tag": "Evaluation Rubric",
    "response_format_tag": "Response Format",
    "your_response_tag": "Your Response",
    "response_tag": "Response",
    "reference_tag": "Reference Answer",
    "options_tag": "Answer Options",
}
MULTIPLE_CHOICE_LABELS = ("A", "B", "C", "D")


def verdict_description(labels: Sequence[str]) -> str:
    """The schema's description of the score field: the labels it may take."""
    return "The verdict: one of " + ", ".join(f"'{x}'" for x in labels) + "."


def response_schema(explanation: str, labels: Sequence[str]) -> dict[str, Any]:
    """The answer object the judge writes: an explanation and a score that is one of ``labels``."""
    return {
        "type": "object",
        "properties": {
            "explanation": {"type": "string", "description": explanation},
            "score": {"type": "string", "description": verdict_description(labels), "enum": list(labels)},
        },
        "required": ["explanation", "score"],
    }


@dataclass(frozen=True)
class BuiltinTemplate:
    layout: Layout
    task_description: str
    rubrics: tuple[Mapping[str, str], ...]  # paraphrased variants, same labels
    explanation: str  # schema description of the explanation field
    response_headers: tuple[str, ...]  # headers of the response sections
    input_tag: str = EN_TAGS["input_tag"]

    @property
    def labels(self) -> tuple[str, ...]:
        """The score labels, in the order of the first rubric variant."""
        return tuple(self.rubrics[0]) if self.rubrics else MULTIPLE_CHOICE_LABELS

    @property
    def solution_tag(self) -> str | None:
        """The header of the one judged solution, for the solution layout."""
        return "Response" if self.layout is SOLUTION else None

    def texts(self) -> Texts:
        return Texts(
            system_line=SYSTEM_LINE_EN,
            instruction="Instruction",
            task_description=self.task_description,
            tags={**EN_TAGS, "input_tag": self.input_tag},
            schema=response_schema(self.explanation, self.labels),
            forcing=FORCING_EN,
        )


_FACTORS = "correctness, helpfulness, relevance, clarity and completeness"

BUILTIN: dict[TaskKind, BuiltinTemplate] = {
    TaskKind.PAIRWISE: BuiltinTemplate(
        layout=PAIR,
        task_description=(
            "Act as a fair and careful judge. Two assistants answered the same user prompt; decide which "
            "answer serves the user better. Weigh, in this order:\n\n"
            "- Correctness: look for factual errors, wrong reasoning or misleading claims.\n"
            "- Helpfulness: does the answer do what the user asked, and follow the instructions?\n"
            "- Relevance: is every part of the answer about the prompt?\n"
            "- Clarity: is it clear and free of padding and repetition?\n"
            "- Completeness: is anything important missing?\n\n"
            "Do not let the order of the answers, their length or the assistants' names sway you. "
            "Explain your choice briefly, then give the verdict from the rubric."
        ),
        rubrics=(
            {
                "Assistant A": f"Assistant A's answer is better overall, judged on {_FACTORS}, in that order.",
                "Assistant B": f"Assistant B's answer is better overall, judged on {_FACTORS}, in that order.",
            },
            {
                "Assistant A": f"Taking {_FACTORS} in turn, Assistant A gives the stronger answer.",
                "Assistant B": f"Taking {_FACTORS} in turn, Assistant B gives the stronger answer.",
            },
        ),
        explanation="A short comparison of the two answers along the factors above.",
        response_headers=("Assistant A", "Assistant B"),
    ),
    TaskKind.PREFERENCE_STRENGTH: BuiltinTemplate(
        layout=PAIR,
        task_description=(
            "Compare two candidate replies to the conversation below. Judge how well each one continues "
            "from the user's last message given the whole conversation, weighing helpfulness first, then "
            "correctness and completeness, then clarity. Say how strongly you prefer one reply, using the "
            "seven-point scale of the rubric."
        ),
        rubrics=(
            {
                "1": "Response 1 is much better than Response 2 (Response 1 >>> Response 2).",
                "2": "Response 1 is better than Response 2 (Response 1 >> Response 2).",
                "3": "Response 1 is slightly better than Response 2 (Response 1 > Response 2).",
                "4": "The two responses are about equally good (Response 1 == Response 2).",
                "5": "Response 2 is slightly better than Response 1 (Response 1 < Response 2).",
                "6": "Response 2 is better than Response 1 (Response 1 << Response 2).",
                "7": "Response 2 is much better than Response 1 (Response 1 <<< Response 2).",
            },
        ),
        explanation="A short comparison of the two responses: helpfulness, correctness and completeness, clarity.",
        response_headers=("Response 1", "Response 2"),
        input_tag="Input (Conversation)",
    ),
    TaskKind.POINTWISE: BuiltinTemplate(
        layout=PAIR,
        task_description=(
            "Rate how well the response below answers the user's prompt, on the scale of the rubric. "
            "Check correctness first, then whether it does what was asked, then clarity and completeness. "
            "If a reference answer is given, use it to check correctness."
        ),
        rubrics=(
            {
                "1": "The response is wrong, off-topic or unusable.",
                "2": "The response has major errors or misses most of the request.",
                "3": "The response is partly correct and useful but has clear gaps or errors.",
                "4": "The response is correct and useful, with only minor flaws.",
                "5": "The response is fully correct, complete, clear and exactly what was asked.",
            },
        ),
        explanation="A short justification of the rating.",
        response_headers=("Response",),
    ),
    TaskKind.BINARY: BuiltinTemplate(
        layout=SOLUTION,
        task_description=(
            "Decide whether the response below correctly and fully answers the user's prompt. "
            "If a reference answer is given, the response is correct only if it agrees with it."
        ),
        rubrics=({"true": "The response is correct.", "false": "The response is incorrect."},),
        explanation="A short justification of whether the response is correct.",
        response_headers=("Response",),
    ),
    TaskKind.MULTIPLE_CHOICE: BuiltinTemplate(
        layout=PAIR,
        task_description=(
            "Answer the multiple-choice question below: pick the single best option and explain briefly why."
        ),
        rubrics=(),
        explanation="A short explanation of why the chosen option is right.",
        response_headers=(),
        input_tag="Input Question",
    ),
}

DEFAULT_LABELS: dict[TaskKind, tuple[str, ...]] = {kind: t.labels for kind, t in BUILTIN.items()}
