"""What `OpenAIBackend` sends to an OpenAI-compatible server and how it reads what comes back: the
completion request's fields (stop strings and regular expressions included), a scoring request's fields and
its answer (vLLM's ``prompt_logprobs``), the served context from ``/models``, an answer as a `Generation`
(label log-probabilities included), and a failure as a message that names the server and the fix.

Each function takes the backend whose settings apply, as a `Server` (``base_url``, ``model_id``, sampling
options, the name of the API key's variable); the key's value is read only to scrub it from messages.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from mr3_reward.backends.base import Generation, GenerationRequest
from mr3_reward.backends.hf import context_problem, engine_error
from mr3_reward.backends.label_logprobs import MAX_TAIL_TOKENS, label_logprobs, request_labels
from mr3_reward.backends.vllm_outputs import continuation_logprob
from mr3_reward.types import THINK_CLOSE

__all__ = ["Server", "explain_failure", "request_fields", "score_fields", "scored", "served_context", "to_generation"]

_MAX_MESSAGE = 400  # characters of a server's error text kept in an item's error


class Server(Protocol):
    """The settings of one OpenAI-compatible server that shape its requests and messages; `OpenAIBackend` is
    one. Declared here, so that this module needs nothing from the backend that calls it."""

    model_id: str
    base_url: str
    max_model_len: int | None
    label_logprobs: int
    sampling_extensions: bool
    extra_body: dict[str, Any]
    api_key_env: str | None
    timeout_s: float


def request_fields(backend: Server, text: str, n_tokens: int, request: GenerationRequest) -> dict[str, Any] | str:
    """The ``completions.create`` fields for the rendered ``text`` (``n_tokens`` long) of ``request``, or why it
    cannot be sent (a prompt that leaves no room in the server's context).

    Stop strings go out as ``stop`` with vLLM's ``include_stop_str_in_output`` (the text keeps the one that
    stopped it, as every backend returns it; with ``sampling_extensions`` off the server decides); a regular
    expression as vLLM's ``structured_outputs`` field, always, since a server that ignored it would decode
    unconstrained.
    """
    problem = _context(backend, n_tokens)
    if problem:
        return problem
    sampling = request.sampling
    max_tokens = sampling.max_tokens
    if backend.max_model_len is not None:
        # vLLM refuses max_tokens above its context instead of stopping there; capping gives what an
        # in-process engine does: the generation ends at the context with finish_reason "length".
        max_tokens = min(max_tokens, backend.max_model_len - n_tokens)
    fields: dict[str, Any] = {
        "model": backend.model_id,
        "prompt": text,
        "max_tokens": max_tokens,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "n": 1,
    }
    if sampling.seed is not None:
        fields["seed"] = sampling.seed
    if backend.label_logprobs:
        fields["logprobs"] = backend.label_logprobs
    if request.stop:
        fields["stop"] = list(request.stop)
    extra: dict[str, Any] = {}
    if backend.sampling_extensions:
        extra = {
            "top_k": sampling.top_k if sampling.top_k > 0 else -1,
            "min_p": sampling.min_p,
            "skip_special_tokens": False,
            "spaces_between_special_tokens": False,
            # The template wrote the special tokens: the server must not add a BOS of its own (as `encode`).
            "add_special_tokens": False,
            **({"include_stop_str_in_output": True} if request.stop else {}),
        }
    if request.regex:
        extra["structured_outputs"] = {"regex": request.regex}
    extra.update(backend.extra_body)
    if extra:
        fields["extra_body"] = extra
    return fields


def score_fields(backend: Server, ids: list[int]) -> dict[str, Any] | str:
    """The ``completions.create`` fields that score the token-id prompt ``ids`` (`Constrains.score_continuations`):
    one greedy token, and vLLM's ``prompt_logprobs=0`` (each prompt token's log-probability); or why it cannot
    be sent."""
    problem = _context(backend, len(ids))
    if problem:
        return problem
    return {"model": backend.model_id, "prompt": ids, "max_tokens": 1, "temperature": 0.0, "n": 1,
            "extra_body": {"prompt_logprobs": 0, **backend.extra_body}}


def scored(response: Any, ids: list[int], start: int) -> float | None:
    """The continuation's summed log-probability from a `score_fields` answer (``prompt_logprobs``), or None."""
    choices = getattr(response, "choices", None) or []
    steps = getattr(choices[0], "prompt_logprobs", None) if choices else None
    return continuation_logprob(steps, ids, start)


def _context(backend: Server, n_tokens: int) -> str | None:
    if backend.max_model_len is None:
        return None
    return context_problem(
        n_tokens, backend.max_model_len, context="the server's context", at=f" at {backend.base_url}",
        fix="shorten the input or start the server with a larger --max-model-len",
    )


def served_context(listing: Any, model_id: str) -> int | None:
    """The context ``/models`` reports for ``model_id`` (vLLM lists ``max_model_len``), or None."""
    context = None
    for entry in getattr(listing, "data", None) or []:
        if getattr(entry, "id", None) == model_id:
            extra = getattr(entry, "model_extra", None) or {}
            value = extra.get("max_model_len", getattr(entry, "max_model_len", None))
            if isinstance(value, int) and value > 0:
                context = value
    return context


def to_generation(backend: Server, response: Any, request: GenerationRequest, n_tokens: int) -> Generation:
    """A completion answer as a `Generation`; one that did not finish is an engine error."""
    choices = getattr(response, "choices", None) or []
    if not choices:
        return engine_error(f"the server at {backend.base_url} returned no completion", prompt_tokens=n_tokens)
    choice = choices[0]
    reason = choice.finish_reason
    usage = getattr(response, "usage", None)
    prompt_tokens = getattr(usage, "prompt_tokens", None) or n_tokens
    completion_tokens = getattr(usage, "completion_tokens", None) or 0
    if reason not in ("stop", "length"):
        return engine_error(
            f"the server at {backend.base_url} ended the generation with finish_reason={reason!r}",
            prompt_tokens=prompt_tokens,
        )
    text = choice.text or ""
    return Generation(
        text=text,
        finish_reason=reason,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        label_logprobs=_label_logprobs(choice, text, request) if backend.label_logprobs else None,
    )


def _label_logprobs(choice: Any, text: str, request: GenerationRequest) -> dict[str, float] | None:
    logprobs = getattr(choice, "logprobs", None)
    prompt, labels = request.prompt, request_labels(request)
    if logprobs is None or not labels or THINK_CLOSE not in prompt.prefix + text:
        return None
    tokens = list(logprobs.tokens or [])[-MAX_TAIL_TOKENS:]
    chosen = list(logprobs.token_logprobs or [])[-MAX_TAIL_TOKENS:]
    top = list(logprobs.top_logprobs or [])[-MAX_TAIL_TOKENS:]
    if not (len(tokens) == len(chosen) == len(top)):
        return None
    alternatives = [
        [(token, lp)] + [(alt, alp) for alt, alp in (options or {}).items()]
        for token, lp, options in zip(tokens, chosen, top)
        if lp is not None
    ]
    if len(alternatives) != len(tokens):
        return None
    return label_logprobs(text, tokens, alternatives, labels, prefix=prompt.prefix) or None


def explain_failure(backend: Server, exc: BaseException, attempts: int, n_tokens: int) -> tuple[bool, str]:
    """What an exception from one request means: (whether another attempt may help, the item's message).

    Connection errors, timeouts, 429 and 5xx are worth retrying; other HTTP errors (unknown model, prompt too
    long, bad key) and malformed answers are not.
    """
    import openai  # present: the backend that sent the request imported it

    base_url = backend.base_url
    if isinstance(exc, openai.APITimeoutError):
        return True, (
            f"no answer from {base_url} within timeout_s={backend.timeout_s:g} s, {attempts} attempt(s); "
            "raise timeout_s, lower max_tokens, or lower max_concurrency if the server is overloaded"
        )
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return True, (
            f"could not reach the OpenAI-compatible server at {base_url} "
            f"({type(cause).__name__}: {_scrub(backend, str(cause)) or 'connection failed'}), {attempts} attempt(s); "
            "start the server (e.g. `vllm serve MODEL --host 127.0.0.1 --port 8000`) or fix base_url"
        )
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status == 429 or status >= 500:
            return True, (
                f"the server at {base_url} answered HTTP {status} on each of {attempts} attempt(s): "
                f"{_server_message(backend, exc)}"
            )
        return False, _client_error(backend, exc, n_tokens)
    return False, f"unexpected answer from {base_url}: {type(exc).__name__}: {_scrub(backend, str(exc))[:_MAX_MESSAGE]}"


def _client_error(backend: Server, exc: Any, n_tokens: int) -> str:
    status, message = exc.status_code, _server_message(backend, exc)
    head = f"the server at {backend.base_url} rejected the request with HTTP {status}: {message}. "
    lowered = message.lower()
    if status == 404 or "does not exist" in lowered:
        return head + (
            f"It does not serve a model named {backend.model_id!r}: pass the served name (GET "
            f"{backend.base_url}/models lists them; vllm serve sets it with --served-model-name)"
        )
    if status in (401, 403):
        where = f"the {backend.api_key_env} environment variable" if backend.api_key_env else "api_key_env"
        return head + f"Authentication failed: put a valid API key in {where}"
    if "context length" in lowered or "input_tokens" in lowered or "too long" in lowered:
        return head + (
            f"The prompt ({n_tokens} tokens by the local tokenizer) does not fit the server's context: "
            "shorten the input, lower max_tokens, or start the server with a larger --max-model-len"
        )
    if "max_tokens" in lowered:
        return head + "Lower max_tokens, or start the server with a larger --max-model-len"
    return head + "Check the request options (sampling, extra_body) against what this server accepts"


def _server_message(backend: Server, exc: Any) -> str:
    body = getattr(exc, "body", None)
    message = None
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else None
        message = message or body.get("message") or body.get("detail")
    return _scrub(backend, str(message or getattr(exc, "message", "") or exc))[:_MAX_MESSAGE]


def _scrub(backend: Server, text: str) -> str:
    key = os.environ.get(backend.api_key_env) if backend.api_key_env else None
    if key and len(key) >= 4:
        text = text.replace(key, "***")
    return text
