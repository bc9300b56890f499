"""The data that flows through a judgment: rubric + request in, `Judgment` out.

Everything here is a frozen dataclass so it can be hashed, cached, pickled to Ray actors and
compared in tests. Validation happens in ``__post_init__`` and reports every problem at once. The verdict,
`Judgment`, is defined in `mr3_reward.judgment` and importable from here.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from mr3_reward.judgment import Judgment

__all__ = [
    "SEED_LIMIT", "THINK_CLOSE", "THINK_OPEN", "VERDICTS", "Failure", "JudgeRequest", "Judgment", "Rubric",
    "Sampling", "TaskKind", "label_problem",
]


# mR3 reasons between these tags; the answer follows the closing one.
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


class TaskKind(str, enum.Enum):
    """What the judge is asked to decide, and so which score labels are valid."""

    PAIRWISE = "pairwise"  # which of two responses is better: "Assistant A" / "Assistant B" (+ "Tie")
    PREFERENCE_STRENGTH = "preference_strength"  # 1-7 scale, 4 = equal (HelpSteer3 style)
    POINTWISE = "pointwise"  # one response scored 1..N (R3 style, N = 5 by default)
    BINARY = "binary"  # "true" / "false" (correctness, harmfulness, toxicity)
    MULTIPLE_CHOICE = "multiple_choice"  # "A".."D"

    @classmethod
    def parse(cls, value: str | TaskKind) -> TaskKind:
        if isinstance(value, TaskKind):
            return value
        aliases = {"pair": cls.PAIRWISE, "strength": cls.PREFERENCE_STRENGTH, "mcq": cls.MULTIPLE_CHOICE}
        key = str(value).strip().lower().replace("-", "_")
        if key in aliases:
            return aliases[key]
        try:
            return cls(key)
        except ValueError:
            known = ", ".join(t.value for t in cls)
            raise ValueError(f"unknown task {value!r}; use one of: {known}") from None

    @property
    def n_responses(self) -> tuple[int, int]:
        """(min, max) number of responses a request of this kind carries."""
        return {
            TaskKind.PAIRWISE: (2, 2),
            TaskKind.PREFERENCE_STRENGTH: (2, 2),
            TaskKind.POINTWISE: (1, 1),
            TaskKind.BINARY: (0, 1),  # 0: judge the prompt itself (e.g. "is this request harmful?")
            TaskKind.MULTIPLE_CHOICE: (0, 0),
        }[self]


class Failure(str, enum.Enum):
    """Why a judgment has no score. Typed so a training loop can count, retry and log them."""

    NO_ANSWER = "no_answer"  # nothing after the reasoning (or an empty generation)
    BAD_JSON = "bad_json"  # an answer is there but no score could be read from it
    LABEL_NOT_IN_RUBRIC = "label_not_in_rubric"  # a score was read but it is not one of the labels
    TRUNCATED = "truncated"  # generation hit max_tokens before an answer
    ENGINE_ERROR = "engine_error"  # the backend raised or returned an error for this item
    # The prompt cannot fit the judge's input limit even with every response cut (a huge prompt,
    # reference or rubric); no engine call was made. Never cached: a larger limit may fit it.
    INPUT_TOO_LONG = "input_too_long"


@dataclass(frozen=True)
class Rubric:
    """An ordered mapping of score label -> description.

    Order matters: it is the order the judge sees the labels in.

    >>> r = Rubric.from_mapping({"true": "The answer is right.", "false": "The answer is wrong."})
    >>> r.labels
    ('true', 'false')
    >>> print(r.render(), end="")
    true: The answer is right.
    false: The answer is wrong.
    """

    entries: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        problems = []
        if not self.entries:
            problems.append("a rubric needs at least one 'label: description' entry")
        seen: set[str] = set()
        for item in self.entries:
            if not (isinstance(item, tuple) and len(item) == 2 and all(isinstance(x, str) for x in item)):
                problems.append(f"rubric entry {item!r} is not a (label, description) pair of strings")
                continue
            label = item[0]
            if not label.strip():
                problems.append("a rubric label is empty")
            if label in seen:
                problems.append(f"rubric label {label!r} appears twice")
            seen.add(label)
        if problems:
            raise ValueError("invalid rubric: " + "; ".join(problems))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, str] | Iterable[tuple[str, str]]) -> Rubric:
        """Labels and descriptions from a dict or (label, description) pairs; numbers become strings."""
        items = mapping.items() if isinstance(mapping, Mapping) else mapping
        entries, problems = [], []
        for item in items:
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                problems.append(f"rubric entry {item!r} is not a (label, description) pair; "
                                "pass a dict such as {'true': 'The answer is right.', 'false': 'It is wrong.'}")
                continue
            label, desc = item
            for what, value in (("label", label), ("description", desc)):
                if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                    problems.append(f"rubric {what} {value!r} (for {label!r}) must be a string")
            entries.append((str(label), str(desc)))
        if problems:
            raise ValueError("invalid rubric: " + "; ".join(problems))
        return cls(tuple(entries))

    @classmethod
    def coerce(cls, value: Rubric | Mapping[str, str] | Sequence[tuple[str, str]] | str) -> Rubric:
        """Accept a Rubric, a dict, a list of pairs, or text with one ``label: description`` per line."""
        if isinstance(value, Rubric):
            return value
        if isinstance(value, str):
            return cls.from_text(value)
        if isinstance(value, Mapping) or isinstance(value, (list, tuple)):
            return cls.from_mapping(value)
        raise TypeError(f"a rubric must be a Rubric, a dict of label -> description or text; got {type(value).__name__}")

    @classmethod
    def from_text(cls, text: str) -> Rubric:
        entries = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            label, sep, desc = line.partition(":")
            if not sep:
                raise ValueError(f"rubric line {n} has no 'label: description' form: {line!r}")
            entries.append((label.strip(), desc.strip()))
        return cls(tuple(entries))

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(label for label, _ in self.entries)

    def render(self) -> str:
        """The rubric block as the judge sees it: one ``label: description`` line each, newline-terminated."""
        return "".join(f"{label}: {desc}\n" for label, desc in self.entries)


VERDICTS = ("free", "constrained")
# Every engine takes seeds below this: torch, vLLM and OpenAI-compatible servers hold them in 64 signed bits.
SEED_LIMIT = 2**63


@dataclass(frozen=True)
class Sampling:
    """Decoding parameters; the defaults are the ones recommended for mR3 models."""

    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 20
    min_p: float = 0.0
    max_tokens: int = 16384
    seed: int | None = 0
    # Budgeted reasoning (`mr3_reward.phases`): the most tokens the judge may think before ``</think>`` is
    # closed for it; None = unbounded (what the reference evaluated).
    thinking_budget: int | None = None
    # "free": the judge writes its own answer (today's parser reads it); "constrained": the answer is decoded
    # under the schema mR3 was trained on, with the score one of the rubric's labels.
    verdict: str = "free"
    # Constrained verdicts: the most tokens of the explanation.
    explanation_tokens: int = 128

    def __post_init__(self) -> None:
        problems = []

        def number(name: str, integer: bool = False) -> bool:
            value = getattr(self, name)
            kinds = (int,) if integer else (int, float)
            if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
                want = "an integer" if integer else "a finite number"
                problems.append(f"{name} must be {want}, got {value!r}")
                return False
            return True

        if number("temperature") and self.temperature < 0:
            problems.append(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if number("top_p") and not 0 < self.top_p <= 1:
            problems.append(f"top_p must be in (0, 1], got {self.top_p}")
        if number("top_k", integer=True) and (self.top_k < -1 or self.top_k == 0):
            problems.append(f"top_k must be -1 (off) or >= 1, got {self.top_k}")
        if number("min_p") and not 0 <= self.min_p <= 1:
            problems.append(f"min_p must be in [0, 1], got {self.min_p}")
        if number("max_tokens", integer=True) and self.max_tokens < 1:
            problems.append(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)
                                      or not 0 <= self.seed < SEED_LIMIT):
            problems.append(f"seed must be an integer or None (unseeded), from 0 to 2**63 - 1; got {self.seed!r}")
        if self.thinking_budget is not None and number("thinking_budget", integer=True):
            if self.thinking_budget < 1:
                problems.append(f"thinking_budget must be a positive number of tokens or None (unbounded), "
                                f"got {self.thinking_budget}")
            elif isinstance(self.max_tokens, int) and self.thinking_budget >= self.max_tokens:
                problems.append(f"thinking_budget ({self.thinking_budget}) must be below max_tokens "
                                f"({self.max_tokens}) to leave room for the answer; raise max_tokens or lower the budget")
        if not isinstance(self.verdict, str) or self.verdict not in VERDICTS:
            problems.append(f"verdict must be one of {', '.join(map(repr, VERDICTS))} (constrained: the answer is "
                            f"decoded under the rubric's labels), got {self.verdict!r}")
        if number("explanation_tokens", integer=True) and self.explanation_tokens < 1:
            problems.append(f"explanation_tokens (the cap on a constrained verdict's explanation) must be >= 1, "
                            f"got {self.explanation_tokens}")
        if problems:
            raise ValueError("invalid sampling: " + "; ".join(problems))

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def with_(self, **overrides: Any) -> Sampling:
        unknown = set(overrides) - set(self.field_names())
        if unknown:
            raise TypeError(f"unknown sampling field(s) {sorted(unknown)}; known: {', '.join(self.field_names())}")
        return replace(self, **overrides)


@dataclass(frozen=True)
class JudgeRequest:
    """One thing to judge.

    prompt (`str`): the user's prompt, conversation text, problem or question.
    responses (`tuple[str, ...]`): the material to judge; how many depends on ``task``
        (2 for pairwise and preference strength, 1 for pointwise, 0-1 for binary, 0 for multiple choice).
    rubric (`Rubric`, *optional*): labels and their descriptions; defaults to the task's built-in rubric.
    task_description (`str`, *optional*): what the judge is asked to do; defaults to the task's built-in text.
    language (`str`): the input's language code (e.g. ``"de"``); drives target-language prompts and thinking.
    reference (`str`, *optional*): a reference answer, shown to the judge when given.
    options (`str`, *optional*): answer options for multiple choice, one per line.
    id (`str`, *optional*): a stable sample id; picks the rubric variant deterministically.
    """

    task: TaskKind
    prompt: str
    responses: tuple[str, ...] = ()
    rubric: Rubric | None = None
    task_description: str | None = None
    language: str = "en"
    reference: str | None = None
    options: str | None = None
    id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "task", TaskKind.parse(self.task))
        if isinstance(self.responses, list):
            object.__setattr__(self, "responses", tuple(self.responses))
        if self.rubric is not None and not isinstance(self.rubric, Rubric):
            object.__setattr__(self, "rubric", Rubric.coerce(self.rubric))
        problems = []
        if not isinstance(self.prompt, str):
            problems.append(f"prompt must be a string, got {type(self.prompt).__name__}")
        if not isinstance(self.responses, tuple):
            problems.append(f"responses must be a list of strings, got {type(self.responses).__name__}")
        else:
            for i, r in enumerate(self.responses):
                if not isinstance(r, str):
                    problems.append(f"responses[{i}] must be a string, got {type(r).__name__}")
            lo, hi = self.task.n_responses
            if not lo <= len(self.responses) <= hi:
                want = str(lo) if lo == hi else f"{lo} to {hi}"
                problems.append(f"task {self.task.value!r} takes {want} response(s), got {len(self.responses)}")
        for name in ("task_description", "reference", "options", "id"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                problems.append(f"{name} must be a string or None, got {type(value).__name__}")
        if not isinstance(self.language, str) or not self.language.strip():
            problems.append(f"language must be a non-empty language code such as 'en', got {self.language!r}")
        if self.task is TaskKind.MULTIPLE_CHOICE and not self.options:
            problems.append("a multiple_choice request needs options (e.g. 'A. ...\\nB. ...')")
        if self.rubric is not None:
            problem = label_problem(self.task, self.rubric.labels)
            if problem:
                problems.append(problem)
        if problems:
            raise ValueError("invalid JudgeRequest: " + "; ".join(problems))


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except (TypeError, ValueError):
        return False


def label_problem(task: TaskKind, labels: Sequence[str], *, scored: bool = False) -> str | None:
    """What is wrong with a rubric's labels for ``task``, or None: the one place the label rules live.

    The two pairwise tasks are read by position, so the judge must be able to name each side. A custom
    rubric may rename the labels of single-response tasks, unless ``scored``: a reward or a labeler that
    turns the label into a number needs numeric pointwise labels and the binary labels 'true'/'false'.

    >>> label_problem(TaskKind.BINARY, ["yes", "no"]) is None
    True
    >>> label_problem(TaskKind.BINARY, ["yes", "no"], scored=True)
    "a binary rubric needs exactly the labels 'true' and 'false'; got ['yes', 'no']"
    """
    labels = list(labels)
    if task is TaskKind.PAIRWISE and not {"Assistant A", "Assistant B"} <= set(labels):
        return (f"a pairwise rubric needs the labels 'Assistant A' and 'Assistant B' (the names the judge sees; "
                f"add 'Tie' to allow ties); got {labels}")
    if task is TaskKind.PREFERENCE_STRENGTH and sorted(labels) != [str(k) for k in range(1, 8)]:
        return f"a preference_strength rubric needs the labels '1'..'7' (4 = equal); got {labels}"
    if scored and task is TaskKind.POINTWISE and (len(labels) < 2 or not all(_is_number(x) for x in labels)):
        return f"a pointwise rubric needs two or more numeric labels (e.g. '1'..'5'); got {labels}"
    if scored and task is TaskKind.BINARY and set(labels) != {"true", "false"}:
        return f"a binary rubric needs exactly the labels 'true' and 'false'; got {labels}"
    return None
