"""What the engines that render prompts with a Hugging Face tokenizer share: the token ids of a rendered
prompt, the context check, the per-item error result, and loading a tokenizer for a server engine.

Functions over a tokenizer object; transformers is imported only by `load_tokenizer`, when it loads one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mr3_reward.backends.base import ChatPrompt, Generation, chat_text
from mr3_reward.models import resolve

__all__ = ["context_problem", "continuation_ids", "encode", "engine_error", "load_tokenizer", "overflow", "token_ids"]


def engine_error(message: str, prompt_tokens: int = 0) -> Generation:
    """The result of a request the engine could not answer; the judge turns it into a typed failure.

    >>> g = engine_error("boom", prompt_tokens=3)
    >>> g.text, g.finish_reason, g.prompt_tokens, g.error
    ('', 'error', 3, 'boom')
    """
    return Generation(text="", finish_reason="error", prompt_tokens=prompt_tokens, error=message)


def token_ids(tokenizer: Any, text: str, **tokenizer_kwargs: Any) -> list[int]:
    """The token ids of ``text`` as rendered by `chat_text`.

    The chat template already wrote every special token (BOS included where the model has one); letting
    the tokenizer add them again would double the BOS of Llama-3/Qwen style tokenizers.

    Args:
        tokenizer: a Hugging Face tokenizer (callable, returning ``input_ids``).
        text (`str`): the rendered prompt text.
        tokenizer_kwargs: more arguments for the tokenizer call, e.g. ``verbose=False``.
    """
    return list(tokenizer(text, add_special_tokens=False, **tokenizer_kwargs)["input_ids"])


def encode(tokenizer: Any, prompt: ChatPrompt, **tokenizer_kwargs: Any) -> list[int]:
    """The token ids the model sees for ``prompt``: its chat template (thinking enabled) plus the assistant
    prefix, tokenized without adding special tokens; see `chat_text` and `token_ids`."""
    return token_ids(tokenizer, chat_text(tokenizer, prompt), **tokenizer_kwargs)


def continuation_ids(tokenizer: Any, items: Sequence[tuple[ChatPrompt, str]]) -> list[tuple[list[int], int] | None]:
    """What `Constrains.score_continuations` scores, for each ``(prompt, continuation)``: the prompt's ids as
    `encode` gives them (as ``generate`` sees it) followed by the continuation's own ids (tokenized alone, no
    special tokens), and the index where the continuation starts; None where the ids could not be built or
    the continuation has no tokens. Each distinct prompt is encoded once (a judgment scores every label
    after the same prompt).
    """
    encoded: dict[ChatPrompt, list[int]] = {}
    out: list[tuple[list[int], int] | None] = []
    for prompt, continuation in items:
        try:
            if prompt not in encoded:
                encoded[prompt] = encode(tokenizer, prompt)
            head, tail = encoded[prompt], token_ids(tokenizer, continuation)
        except Exception:  # a template or tokenizer problem belongs to this item only
            out.append(None)
            continue
        out.append((head + tail, len(head)) if tail else None)
    return out


def overflow(n_tokens: int, limit: int | None) -> str | None:
    """How a prompt of ``n_tokens`` meets a context of ``limit`` tokens: None when it leaves room to
    generate (or the context is unknown), else ``"fills"`` or ``"is longer than"``.

    >>> overflow(10, 12), overflow(12, 12), overflow(13, 12), overflow(13, None)
    (None, 'fills', 'is longer than', None)
    """
    if limit is None or n_tokens < limit:
        return None
    return "fills" if n_tokens == limit else "is longer than"


def context_problem(n_tokens: int, limit: int | None, *, context: str, fix: str, at: str = "") -> str | None:
    """Why a prompt of ``n_tokens`` cannot run in a context of ``limit`` tokens, or None when it can.

    Args:
        n_tokens (`int`): the prompt's tokens.
        limit (`int | None`): the context in tokens (prompt plus generation); None when unknown.
        context (`str`): whose context it is, e.g. ``"the engine's context"``.
        fix (`str`): what to change, e.g. ``"shorten the input or raise max_model_len"``.
        at (`str`, *optional*): where that context is, e.g. ``" at http://127.0.0.1:8000/v1"``.

    >>> context_problem(12, 12, context="the engine's context", fix="shorten the input")
    "prompt has 12 tokens and fills the engine's context of 12 tokens, leaving no room to generate; shorten the input"
    """
    room = overflow(n_tokens, limit)
    if room is None:
        return None
    return f"prompt has {n_tokens} tokens and {room} {context} of {limit} tokens{at}, leaving no room to generate; {fix}"


def load_tokenizer(tokenizer: Any, model: str, revision: str | None, *, user: str) -> Any:
    """The tokenizer that renders prompts for an engine that has none of its own (a server behind HTTP).

    Args:
        tokenizer (`str` or tokenizer, *optional*): a loaded tokenizer (passed through), or an alias, folder or
            hub id to load one from; None loads ``model``'s.
        model (`str`): the served model's name, used when ``tokenizer`` is None.
        revision (`str | None`): revision of a hub model.
        user (`str`): the engine that asks (``"OpenAIBackend"``), named in the error.

    Raises:
        TypeError: ``tokenizer`` is an object without ``apply_chat_template``.
        ValueError: no model could be found under that name (the message says what to pass instead).
    """
    if tokenizer is not None and not isinstance(tokenizer, str):
        if not hasattr(tokenizer, "apply_chat_template"):
            raise TypeError(
                f"tokenizer must be a model name/folder or a tokenizer with apply_chat_template; got "
                f"{type(tokenizer).__name__}"
            )
        return tokenizer
    name = tokenizer or model
    try:
        path = resolve(name, revision=revision)
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"{user} renders prompts with the served model's own tokenizer and chat template, and could "
            f"not find one for {name!r}: {exc}. Pass tokenizer= a local model folder, an alias or a hub id of "
            "the model the server runs"
        ) from exc
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)
