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

The ``openai`` package is imported inside the class: ``pip install 'mr3-reward[openai]'``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import random
from collections.abc import Sequence
from typing import Any

from mr3_reward.backends.base import ChatPrompt, Generation, GenerationRequest, chat_text
from mr3_reward.backends.label_logprobs import MAX_TAIL_TOKENS, label_logprobs, schema_labels
from mr3_reward.models import resolve
from mr3_reward.types import Sampling

__all__ = ["OpenAIBackend"]

_MAX_MESSAGE = 400  # characters of a server's error text kept in an item's error


def _import_openai() -> Any:
    try:
        import openai
    except ImportError as exc:
        raise ImportError("backend 'openai' needs the openai extra: pip install 'mr3-reward[openai]'") from exc
    return openai


def _error(message: str, prompt_tokens: int = 0) -> Generation:
    return Generation(text="", finish_reason="error", prompt_tokens=prompt_tokens, error=message)


def _load_tokenizer(tokenizer: Any, model: str, revision: str | None) -> Any:
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
            f"OpenAIBackend renders prompts with the served model's own tokenizer and chat template, and could "
            f"not find one for {name!r}: {exc}. Pass tokenizer= a local model folder, an alias or a hub id of "
            "the model the server runs"
        ) from exc
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


class OpenAIBackend:
    """Generate through an OpenAI-compatible completions endpoint, all requests of a call concurrently.

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
            decoding), and ``skip_special_tokens=False``/``spaces_between_special_tokens=False`` (text kept as
            the other backends return it). Turn off for a server that rejects unknown fields.
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
        self.tokenizer = _load_tokenizer(tokenizer, model, revision)
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
        coroutine = self.agenerate(requests)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(coroutine)
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, coroutine).result()

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
                results[i] = _error(f"could not build the prompt: {type(exc).__name__}: {exc}")
                continue
            todo.append((i, text, n_tokens))
        if todo:
            async with self._client() as client:
                await self._probe(client)
                limit = asyncio.Semaphore(self.max_concurrency)
                done = await asyncio.gather(
                    *(self._complete(client, limit, text, n, requests[i]) for i, text, n in todo)
                )
            for (i, _, _), generation in zip(todo, done):
                results[i] = generation
        return [g if g is not None else _error("internal error: no result") for g in results]

    def count_tokens(self, prompt: ChatPrompt) -> int:
        """Tokens ``prompt`` takes by the local tokenizer (chat template and prefix included); the judge uses
        it to fit long inputs to ``max_model_len`` once the server has reported it."""
        return self._count(chat_text(self.tokenizer, prompt))

    def _count(self, text: str) -> int:
        # The rendered text holds every special token already; adding them again would count a BOS twice.
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # ----------------------------------------------------------------------------------------------------

    def _client(self) -> Any:
        # A client per call: its connection pool belongs to the event loop of that call, and `generate` runs
        # each call on a fresh loop. Retries are ours (the client's would hide what failed and how often).
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        return self._openai.AsyncOpenAI(
            base_url=self.base_url, api_key=key or "EMPTY", timeout=self.timeout_s, max_retries=0
        )

    async def _probe(self, client: Any) -> None:
        """Read the server's context once from ``/models`` (vLLM reports ``max_model_len`` there)."""
        if self._probed:
            return
        try:
            listing = await client.models.list()
        except Exception:
            return  # unreachable or not listed: the requests themselves will say so, with retries
        self._probed = True
        for entry in getattr(listing, "data", None) or []:
            if getattr(entry, "id", None) == self.model_id:
                extra = getattr(entry, "model_extra", None) or {}
                value = extra.get("max_model_len", getattr(entry, "max_model_len", None))
                if isinstance(value, int) and value > 0:
                    self.max_model_len = value

    def _request_fields(self, text: str, n_tokens: int, sampling: Sampling) -> dict[str, Any] | str:
        max_tokens = sampling.max_tokens
        if self.max_model_len is not None:
            room = self.max_model_len - n_tokens
            if room < 1:
                return (
                    f"prompt has {n_tokens} tokens and {'fills' if room == 0 else 'is longer than'} the server's "
                    f"context of {self.max_model_len} tokens at {self.base_url}, leaving no room to generate; "
                    "shorten the input or start the server with a larger --max-model-len"
                )
            # vLLM refuses max_tokens above its context instead of stopping there; capping gives what an
            # in-process engine does: the generation ends at the context with finish_reason "length".
            max_tokens = min(max_tokens, room)
        fields: dict[str, Any] = {
            "model": self.model_id,
            "prompt": text,
            "max_tokens": max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "n": 1,
        }
        if sampling.seed is not None:
            fields["seed"] = sampling.seed
        if self.label_logprobs:
            fields["logprobs"] = self.label_logprobs
        extra: dict[str, Any] = {}
        if self.sampling_extensions:
            extra = {
                "top_k": sampling.top_k if sampling.top_k > 0 else -1,
                "min_p": sampling.min_p,
                "skip_special_tokens": False,
                "spaces_between_special_tokens": False,
            }
        extra.update(self.extra_body)
        if extra:
            fields["extra_body"] = extra
        return fields

    async def _complete(self, client: Any, limit: asyncio.Semaphore, text: str, n_tokens: int,
                        request: GenerationRequest) -> Generation:
        openai = self._openai
        fields = self._request_fields(text, n_tokens, request.sampling)
        if isinstance(fields, str):
            return _error(fields, prompt_tokens=n_tokens)
        attempts = self.max_retries + 1
        failure = ""
        for attempt in range(attempts):
            if attempt:
                delay = self.backoff_s * 2 ** (attempt - 1)
                await asyncio.sleep(delay * (1 + 0.25 * random.random()))
            try:
                async with limit:
                    response = await client.completions.create(**fields)
                return self._to_generation(response, request.prompt, n_tokens)
            except openai.APITimeoutError:
                failure = (
                    f"no answer from {self.base_url} within timeout_s={self.timeout_s:g} s, {attempts} attempt(s); "
                    "raise timeout_s, lower max_tokens, or lower max_concurrency if the server is overloaded"
                )
            except openai.APIConnectionError as exc:
                cause = exc.__cause__ or exc
                failure = (
                    f"could not reach the OpenAI-compatible server at {self.base_url} "
                    f"({type(cause).__name__}: {self._scrub(str(cause)) or 'connection failed'}), {attempts} attempt(s); "
                    "start the server (e.g. `vllm serve MODEL --host 127.0.0.1 --port 8000`) or fix base_url"
                )
            except openai.APIStatusError as exc:
                status = exc.status_code
                if status == 429 or status >= 500:
                    failure = (
                        f"the server at {self.base_url} answered HTTP {status} on each of {attempts} attempt(s): "
                        f"{self._server_message(exc)}"
                    )
                    continue
                return _error(self._client_error(exc, n_tokens), prompt_tokens=n_tokens)
            except Exception as exc:  # a malformed answer: not worth repeating
                return _error(
                    f"unexpected answer from {self.base_url}: {type(exc).__name__}: {self._scrub(str(exc))[:_MAX_MESSAGE]}",
                    prompt_tokens=n_tokens,
                )
        return _error(failure, prompt_tokens=n_tokens)

    def _client_error(self, exc: Any, n_tokens: int) -> str:
        status, message = exc.status_code, self._server_message(exc)
        head = f"the server at {self.base_url} rejected the request with HTTP {status}: {message}. "
        lowered = message.lower()
        if status == 404 or "does not exist" in lowered:
            return head + (
                f"It does not serve a model named {self.model_id!r}: pass the served name (GET "
                f"{self.base_url}/models lists them; vllm serve sets it with --served-model-name)"
            )
        if status in (401, 403):
            where = f"the {self.api_key_env} environment variable" if self.api_key_env else "api_key_env"
            return head + f"Authentication failed: put a valid API key in {where}"
        if "context length" in lowered or "input_tokens" in lowered or "too long" in lowered:
            return head + (
                f"The prompt ({n_tokens} tokens by the local tokenizer) does not fit the server's context: "
                "shorten the input, lower max_tokens, or start the server with a larger --max-model-len"
            )
        if "max_tokens" in lowered:
            return head + "Lower max_tokens, or start the server with a larger --max-model-len"
        return head + "Check the request options (sampling, extra_body) against what this server accepts"

    def _server_message(self, exc: Any) -> str:
        body = getattr(exc, "body", None)
        message = None
        if isinstance(body, dict):
            inner = body.get("error", body)
            message = inner.get("message") if isinstance(inner, dict) else None
            message = message or body.get("message") or body.get("detail")
        return self._scrub(str(message or getattr(exc, "message", "") or exc))[:_MAX_MESSAGE]

    def _scrub(self, text: str) -> str:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key and len(key) >= 4:
            text = text.replace(key, "***")
        return text

    def _to_generation(self, response: Any, prompt: ChatPrompt, n_tokens: int) -> Generation:
        choices = getattr(response, "choices", None) or []
        if not choices:
            return _error(f"the server at {self.base_url} returned no completion", prompt_tokens=n_tokens)
        choice = choices[0]
        reason = choice.finish_reason
        usage = getattr(response, "usage", None)
        prompt_tokens = getattr(usage, "prompt_tokens", None) or n_tokens
        completion_tokens = getattr(usage, "completion_tokens", None) or 0
        if reason not in ("stop", "length"):
            return _error(
                f"the server at {self.base_url} ended the generation with finish_reason={reason!r}",
                prompt_tokens=prompt_tokens,
            )
        text = choice.text or ""
        return Generation(
            text=text,
            finish_reason=reason,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            label_logprobs=self._label_logprobs(choice, text, prompt) if self.label_logprobs else None,
        )

    @staticmethod
    def _label_logprobs(choice: Any, text: str, prompt: ChatPrompt) -> dict[str, float] | None:
        logprobs = getattr(choice, "logprobs", None)
        labels = schema_labels(prompt)
        if logprobs is None or not labels or "</think>" not in prompt.prefix + text:
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
