"""The narrow contract every engine implements, plus the one piece they all share: turning a
rendered prompt into the exact text the model sees."""

from __future__ import annotations

import warnings
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


# What a backend may declare about itself, each capability on its own: the judge reads every one a backend
# declares, whatever else it declares (`Judge`), and uses its default for each one it does not.


@runtime_checkable
class HasRevision(Protocol):
    """revision (`str | None`): the model revision the backend serves; part of every cache key, so a changed
    model never serves the judgments of the old one."""

    revision: str | None


@runtime_checkable
class HasContext(Protocol):
    """max_model_len (`int | None`): the backend's context in tokens (prompt plus generation), None when
    unknown; the judge fits long inputs to it."""

    max_model_len: int | None


@runtime_checkable
class CountsTokens(Protocol):
    """count_tokens(prompt): the tokens ``prompt`` takes in the backend's context, chat template included,
    counted with its own tokenizer; the judge fits long inputs by it (an estimate otherwise)."""

    def count_tokens(self, prompt: ChatPrompt) -> int: ...


@runtime_checkable
class Observes(Protocol):
    """observe(stats): the judge's statistics after each call (a shared pool aggregates its clients'; a local
    engine ignores them)."""

    def observe(self, stats: Mapping[str, int]) -> None: ...


@runtime_checkable
class EngineInfo(HasRevision, HasContext, CountsTokens, Observes, Protocol):
    """Every capability above at once, as each engine of this package declares them. The judge does not need
    all of them: it reads each of `HasRevision`, `HasContext`, `CountsTokens` and `Observes` on its own."""


@runtime_checkable
class _HasContextLength(Protocol):
    # The name `HasContext.max_model_len` had in an earlier README; read until the next minor version.
    context_length: int | None


class _RenamedContext:
    """A backend that declares its context as ``context_length``, read as `HasContext`."""

    def __init__(self, backend: _HasContextLength) -> None:
        self.backend = backend

    @property
    def max_model_len(self) -> int | None:
        return self.backend.context_length


def declared_context(backend: object) -> HasContext | None:
    """Where to read ``backend``'s context: the backend itself when it is a `HasContext`, or None when it
    declares none. A backend written against an earlier README declares ``context_length`` instead: it still
    works until the next minor version, with a `DeprecationWarning` that names ``max_model_len``.

    >>> class Old:
    ...     context_length = 4096
    >>> import warnings
    >>> with warnings.catch_warnings(record=True):
    ...     warnings.simplefilter("always")
    ...     declared_context(Old()).max_model_len
    4096
    """
    if isinstance(backend, HasContext):
        return backend
    if isinstance(backend, _HasContextLength):
        warnings.warn(f"{type(backend).__name__}.context_length is deprecated and will stop being read in the "
                      "next minor version: rename it to max_model_len (the HasContext capability)",
                      DeprecationWarning, stacklevel=3)
        return _RenamedContext(backend)
    return None


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
