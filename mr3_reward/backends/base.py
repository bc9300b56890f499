"""The narrow contract every engine implements, plus the one piece they all share: turning a
rendered prompt into the exact text the model sees."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from mr3_reward.types import THINK_OPEN, Sampling


@dataclass(frozen=True)
class ChatPrompt:
    """A rendered mR3 prompt: two chat messages plus the text appended after the generation prompt.

    system (`str`): the system message (system line + instruction, rubric and response format).
    user (`str`): the user message (input, material to judge, "Your Response" header).
    prefix (`str`): appended after the chat template's generation prompt: ``<think>`` plus, for
        target-language thinking, the forcing sentence. It is part of the prompt, not the generation.
    """

    system: str
    user: str
    prefix: str = THINK_OPEN

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to generate from.

    labels (`tuple[str, ...]`): the rendered rubric's score labels, in the order the judge saw them; engines
        that report label probabilities read them here.
    stop (`tuple[str, ...]`): strings that end the generation; the text returned includes the one that
        stopped it (the judge reads ``</think>`` that way). Every backend honours them.
    regex (`str`, *optional*): decode under this regular expression (a `Constrains` backend only).
    thinking_language (`str`): the language the judge reasons in; a budget-cut reasoning is closed with a
        sentence in it (`mr3_reward.phases`).
    """

    prompt: ChatPrompt
    sampling: Sampling
    labels: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    regex: str | None = None
    thinking_language: str = "en"


@dataclass(frozen=True)
class Generation:
    """What an engine returned for one request.

    finish_reason (`str`): ``"stop"`` (EOS or a stop string), ``"length"`` (hit max_tokens) or ``"error"``.
    error (`str | None`): a message when ``finish_reason == "error"``; the judge turns it into a typed failure.
    """

    text: str
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    # Log-probabilities of each score label at the position where the score was written, for engines
    # that can report them; `soft=True` rewards use them, everything else ignores them.
    label_logprobs: Mapping[str, float] | None = None
    # Tokens of the reasoning phase of a budgeted judgment (`mr3_reward.phases`); None for one free generation.
    thinking_tokens: int | None = None


@runtime_checkable
class Backend(Protocol):
    """An engine that turns prompts into generations.

    ``generate`` receives every request of a call at once so the engine can batch them; it returns one
    `Generation` per request, in order, and reports per-item problems as ``finish_reason="error"``
    instead of raising. Raising is reserved for problems that affect the whole call (bad config).
    """

    model_id: str

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]: ...


@runtime_checkable
class EngineInfo(Protocol):
    """The optional capability a backend may declare, all of it or none: what the judge reads from it.

    A backend with every member below is an ``EngineInfo`` (``isinstance`` checks that); the judge reads
    these through this protocol only, and uses its defaults for a backend that is not one.

    revision (`str | None`): the model revision it serves; part of every cache key.
    max_model_len (`int | None`): its context in tokens (prompt plus generation), None when unknown; the
        judge fits long inputs to it.
    count_tokens(prompt): the tokens ``prompt`` takes in its context, chat template included, counted
        with its own tokenizer.
    observe(stats): the judge's statistics after each call (a shared pool aggregates its clients'; a local
        engine ignores them).
    """

    revision: str | None
    max_model_len: int | None

    def count_tokens(self, prompt: ChatPrompt) -> int: ...

    def observe(self, stats: Mapping[str, int]) -> None: ...


@runtime_checkable
class Constrains(Protocol):
    """The capability constrained verdicts need (`mr3_reward.phases`): ``generate`` honours
    `GenerationRequest.regex` through the engine's own structured-output support, and the engine scores
    given continuations.

    score_continuations(items): for each ``(prompt, continuation)``, the log-probability the model gives
    ``continuation`` right after ``prompt`` (chat template and prefix included), summed over its tokens,
    or None where the engine failed for that item. Called once per batch, with every label of every item.
    """

    def score_continuations(self, items: Sequence[tuple[ChatPrompt, str]]) -> list[float | None]: ...


@runtime_checkable
class RunsPhases(Protocol):
    """A backend that runs budgeted and constrained judgments (`mr3_reward.phases`) next to its engine, as a
    Ray pool's replicas do: each phase is then one call on the replica's engine, and nothing crosses the
    network between phases. ``generate_in_phases`` takes requests whose sampling may ask for a budget or
    constrained verdicts, and returns one finished `Generation` per request.
    """

    def generate_in_phases(self, requests: Sequence[GenerationRequest]) -> list[Generation]: ...


def chat_text(tokenizer: Any, prompt: ChatPrompt) -> str:
    """The exact prompt text: the model's own chat template (thinking enabled) + the assistant prefix.

    ``enable_thinking`` is what Qwen3 templates read; templates that do not know it ignore it.
    """
    text = tokenizer.apply_chat_template(
        prompt.messages(), tokenize=False, add_generation_prompt=True, enable_thinking=True
    )
    return text + prompt.prefix
