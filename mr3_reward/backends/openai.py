"""An OpenAI-compatible server (``vllm serve``, SGLang, TGI, ...) as the judge's engine, over HTTP.

Why these choices:

* **The raw completions endpoint with our rendered text.** The chat endpoint would apply the server's idea
  of the chat template; mR3 needs the model's template with thinking enabled plus the ``<think>``/forcing
  prefix, exactly as `chat_text` renders it. So the prompt is rendered here, with the model's tokenizer,
  and sent to ``/v1/completions`` as text.
* **Concurrency, not sequence.** Every request of a call is in flight at once (up to ``max_concurrency``),
  so the server's continuous batching sees a full batch; a hand-written loop that awaits each sample
  before sending the next leaves it decoding one sequence at a time.
* **Errors are data.** Connection failures, timeouts, 429 and 5xx are retried with exponential backoff;
  other 4xx (unknown model, prompt too long, bad key) are not, since repeating them cannot help. Whatever
  is left becomes that item's ``finish_reason="error"`` with a message naming the server and the fix, and
  the judge turns it into a typed ``engine_error``.
* **The API key stays in the environment.** It is read from ``api_key_env`` when a call opens its client,
  never stored on the backend, and scrubbed from any message that would echo it.

What is sent and how answers and errors are read is `mr3_reward.backends.openai_wire`. The ``openai``
package is imported inside the class: ``pip install 'mr3-reward[openai]'``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from mr3_reward.backends.base import ChatPrompt, Generation, GenerationRequest, chat_text
from mr3_reward.backends.hf import continuation_ids, engine_error, load_tokenizer, token_ids
from mr3_reward.backends.openai_wire import (
    explain_failure, request_fields, score_fields, scored, served_context, to_generation,
)

__all__ = ["OpenAIBackend"]


def _import_openai() -> Any:
    try:
        import openai
    except ImportError as exc:
        raise ImportError("backend 'openai' needs the openai extra: pip install 'mr3-reward[openai]'") from exc
    return openai


def _option_problems(model: Any, base_url: Any, max_concurrency: Any, timeout_s: Any, max_retries: Any,
                     backoff_s: Any, label_logprobs: Any, api_key_env: Any) -> list[str]:
    """Every problem with `OpenAIBackend`'s options, in one list."""
    problems = []
    if not isinstance(model, str) or not model.strip():
        problems.append(f"model must be the served model's name, got {model!r}")
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        problems.append(f"base_url must be an http(s) URL such as 'http://127.0.0.1:8000/v1', got {base_url!r}")
    if not isinstance(max_concurrency, int) or max_concurrency < 1:
        problems.append(f"max_concurrency must be a positive integer, got {max_concurrency!r}")
    if not isinstance(timeout_s, (int, float)) or timeout_s <= 0:
        problems.append(f"timeout_s must be > 0, got {timeout_s!r}")
    if not isinstance(max_retries, int) or max_retries < 0:
        problems.append(f"max_retries must be an integer >= 0, got {max_retries!r}")
    if not isinstance(backoff_s, (int, float)) or backoff_s < 0:
        problems.append(f"backoff_s must be >= 0, got {backoff_s!r}")
    if not isinstance(label_logprobs, int) or label_logprobs < 0:
        problems.append(f"label_logprobs must be an integer >= 0 (0 = off), got {label_logprobs!r}")
    if api_key_env is not None and (not isinstance(api_key_env, str) or not api_key_env):
        problems.append(f"api_key_env must be the name of an environment variable or None, got {api_key_env!r}")
    return problems


class OpenAIBackend:
    """Generate through an OpenAI-compatible completions endpoint, all requests of a call concurrently; an
    `EngineInfo` and, against a vLLM server, `Constrains` (regular expressions through its structured outputs,
    continuations scored from its ``prompt_logprobs``).

    Args:
        model (`str`):
            The model name the server serves (``vllm serve ... --served-model-name``); also, unless
            ``tokenizer`` is given, the alias, folder or hub id whose tokenizer renders the prompts.
        base_url (`str`):
            The API root, e.g. ``http://127.0.0.1:8000/v1``.
        tokenizer (`str` or tokenizer, *optional*):
            A local model folder, alias or hub id (resolved like ``model``), or a loaded tokenizer, whose chat
            template renders the prompts. It must be the served model's: the template decides what it sees.
        api_key_env (`str`, *optional*, defaults to `"OPENAI_API_KEY"`):
            The environment variable holding the API key, if the server wants one. Its value is read when a
            call starts and never kept, logged or shown; servers without keys get a placeholder.
        max_concurrency (`int`, *optional*, defaults to 64):
            Requests in flight at once per call.
        timeout_s (`float`, *optional*, defaults to 600):
            Seconds one request may take (a long reasoning trace is minutes on a busy server).
        max_retries (`int`, *optional*, defaults to 3):
            Extra attempts after a connection error, timeout, 429 or 5xx; 4xx errors are never retried.
        backoff_s (`float`, *optional*, defaults to 0.5):
            The first retry's delay; each later one doubles it (plus up to 25% jitter, so retries of a large
            batch do not arrive together).
        label_logprobs (`int`, *optional*, defaults to 0):
            Top alternatives per token to ask for (``logprobs=k``) to compute `Generation.label_logprobs` for
            soft rewards; 0 (off) by default because the server then sends k alternatives for every token of
            the reasoning trace. OpenAI's own API allows at most 5, vLLM 20 unless started with more.
        sampling_extensions (`bool`, *optional*, defaults to `True`):
            Send the fields the OpenAI schema lacks but vLLM and SGLang accept: ``top_k`` and ``min_p`` (the mR3
            decoding), ``skip_special_tokens=False``/``spaces_between_special_tokens=False`` (text kept as the
            other backends return it), ``add_special_tokens=False`` (the chat template wrote them) and, with stop
            strings, ``include_stop_str_in_output``. Turn off for a server that rejects unknown fields.
        extra_body (`dict`, *optional*):
            More request fields, sent as they are (they win over the fields above).
        revision (`str`, *optional*):
            Revision of the tokenizer's hub model; also recorded in cache keys.

    Attributes:
        model_id (`str`): ``model``.
        base_url (`str`): the API root.
        max_model_len (`int | None`): the server's context, when its ``/models`` listing reports one (vLLM
            does); used to cap ``max_tokens`` the way an in-process engine does, and to refuse over-long
            prompts without a request.

    Example:

    ```python
    backend = OpenAIBackend("smollm2-135m", "http://127.0.0.1:8000/v1")
    from mr3_reward.judge import Judge
    Judge("smollm2-135m", backend=backend).judge(requests)
    ```
    """

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        tokenizer: Any = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        max_concurrency: int = 64,
        timeout_s: float = 600,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        label_logprobs: int = 0,
        sampling_extensions: bool = True,
        extra_body: dict[str, Any] | None = None,
        revision: str | None = None,
    ) -> None:
        problems = _option_problems(model, base_url, max_concurrency, timeout_s, max_retries, backoff_s,
                                    label_logprobs, api_key_env)
        if problems:
            raise ValueError("invalid OpenAIBackend options: " + "; ".join(problems))

        self._openai = _import_openai()
        self.model_id = model
        self.base_url = base_url.rstrip("/")
        self.revision = revision
        self.api_key_env = api_key_env
        self.max_concurrency = max_concurrency
        self.timeout_s = float(timeout_s)
        self.max_retries = max_retries
        self.backoff_s = float(backoff_s)
        self.label_logprobs = label_logprobs
        self.sampling_extensions = bool(sampling_extensions)
        self.extra_body = dict(extra_body or {})
        self.tokenizer = load_tokenizer(tokenizer, model, revision, user="OpenAIBackend")
        self.max_model_len: int | None = None
        self._probed = False

    def __repr__(self) -> str:
        # The key's variable name is shown, never its value.
        return (
            f"OpenAIBackend({self.model_id!r}, base_url={self.base_url!r}, api_key_env={self.api_key_env!r}, "
            f"max_concurrency={self.max_concurrency})"
        )

    # ----------------------------------------------------------------------------------------------------

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Generate one `Generation` per request, in order; see `agenerate`.

        Runs the requests on a private event loop, or on a worker thread's loop when this thread already runs
        one (inside a notebook or an async trainer), so it is safe to call from anywhere.
        """
        return _run(self.agenerate(requests))

    def score_continuations(self, items: Sequence[tuple[ChatPrompt, str]]) -> list[float | None]:
        """For each ``(prompt, continuation)``, the summed log-probability of the continuation's tokens right
        after the prompt (`Constrains`); see `ascore_continuations`. Safe to call from anywhere, as `generate`."""
        return _run(self.ascore_continuations(items))

    async def ascore_continuations(self, items: Sequence[tuple[ChatPrompt, str]]) -> list[float | None]:
        """Score every item concurrently (at most ``max_concurrency`` in flight), each as a token-id prompt (the
        prompt's ids as `generate` renders it, then the continuation's, tokenized alone) whose ``prompt_logprobs``
        the server reports: a vLLM server. None for an item the server refused (too long) or that failed."""
        todo = [(i, *built) for i, built in enumerate(continuation_ids(self.tokenizer, items)) if built is not None]
        scores: list[float | None] = [None] * len(items)
        if not todo:
            return scores
        answers = await self._concurrently(
            lambda client, limit: [_call(self, client, limit, score_fields(self, ids), len(ids)) for _, ids, _ in todo])
        for (i, ids, start), answer in zip(todo, answers):
            scores[i] = None if isinstance(answer, str) else scored(answer, ids, start)
        return scores

    async def agenerate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Send every request concurrently (at most ``max_concurrency`` in flight); one `Generation` each.

        Returns:
            `list[Generation]`: ``finish_reason`` ``"stop"``, ``"length"`` (``max_tokens`` or the server's
            context reached) or ``"error"`` with a message naming the server and what to change; token counts
            from the server's ``usage``.
        """
        results: list[Generation | None] = [None] * len(requests)
        todo: list[tuple[int, str, int]] = []
        for i, req in enumerate(requests):
            try:
                text = chat_text(self.tokenizer, req.prompt)
                n_tokens = self._count(text)
            except Exception as exc:  # a template or tokenizer problem belongs to this item only
                results[i] = engine_error(f"could not build the prompt: {type(exc).__name__}: {exc}")
                continue
            todo.append((i, text, n_tokens))
        if todo:
            done = await self._concurrently(
                lambda client, limit: [_complete(self, client, limit, text, n, requests[i]) for i, text, n in todo])
            for (i, _, _), generation in zip(todo, done):
                results[i] = generation
        return [g if g is not None else engine_error("internal error: no result") for g in results]

    def count_tokens(self, prompt: ChatPrompt) -> int:
        """Tokens ``prompt`` takes by the local tokenizer (chat template and prefix included); the judge uses
        it to fit long inputs to ``max_model_len`` once the server has reported it."""
        return self._count(chat_text(self.tokenizer, prompt))

    def _count(self, text: str) -> int:
        return len(token_ids(self.tokenizer, text))

    def observe(self, stats: Mapping[str, int]) -> None:
        """The server keeps no statistics of its callers: nothing to do."""

    # ----------------------------------------------------------------------------------------------------

    def _client(self) -> Any:
        # A client per call: its connection pool belongs to the event loop of that call, and `generate` runs
        # each call on a fresh loop. Retries are ours (the client's would hide what failed and how often).
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        return self._openai.AsyncOpenAI(
            base_url=self.base_url, api_key=key or "EMPTY", timeout=self.timeout_s, max_retries=0
        )

    async def _concurrently(self, calls: Callable[[Any, asyncio.Semaphore], list[Awaitable[Any]]]) -> list[Any]:
        """Await ``calls(client, limit)`` together on one client, at most ``max_concurrency`` in flight."""
        async with self._client() as client:
            await self._probe(client)
            return await asyncio.gather(*calls(client, asyncio.Semaphore(self.max_concurrency)))

    async def _probe(self, client: Any) -> None:
        """Read the server's context once from ``/models`` (vLLM reports ``max_model_len`` there)."""
        if self._probed:
            return
        try:
            listing = await client.models.list()
        except Exception:
            return  # unreachable or not listed: the requests themselves will say so, with retries
        self._probed = True
        value = served_context(listing, self.model_id)
        if value is not None:
            self.max_model_len = value


async def _complete(backend: OpenAIBackend, client: Any, limit: asyncio.Semaphore, text: str, n_tokens: int,
                    request: GenerationRequest) -> Generation:
    """One generation request, sent with the retries, as a `Generation`."""
    answer = await _call(backend, client, limit, request_fields(backend, text, n_tokens, request), n_tokens)
    if isinstance(answer, str):
        return engine_error(answer, prompt_tokens=n_tokens)
    try:
        return to_generation(backend, answer, request, n_tokens)
    except Exception as exc:  # a malformed answer
        return engine_error(explain_failure(backend, exc, 1, n_tokens)[1], prompt_tokens=n_tokens)


async def _call(backend: OpenAIBackend, client: Any, limit: asyncio.Semaphore, fields: dict[str, Any] | str,
                n_tokens: int) -> Any:
    """The server's answer to one ``completions.create``, after up to ``backend.max_retries`` retries with
    backoff; or the failure as a message (``fields`` may already be one: a request that cannot be sent)."""
    if isinstance(fields, str):
        return fields
    attempts = backend.max_retries + 1
    failure = ""
    for attempt in range(attempts):
        if attempt:
            delay = backend.backoff_s * 2 ** (attempt - 1)
            await asyncio.sleep(delay * (1 + 0.25 * random.random()))
        try:
            async with limit:
                return await client.completions.create(**fields)
        except Exception as exc:  # a server error, or a malformed answer: `explain_failure` tells them apart
            retry, failure = explain_failure(backend, exc, attempts, n_tokens)
            if not retry:
                return failure
    return failure


def _run(coroutine: Any) -> Any:
    """Run ``coroutine`` to its end from sync code: on a private event loop, or on a worker thread's loop when
    this thread already runs one."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
