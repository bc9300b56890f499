"""Judge: render -> generate -> parse, batched, re-sampling only the items that failed."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mr3_reward.backends.base import Backend, Generation, GenerationRequest
from mr3_reward.cache import JudgmentCache, cache_key, digest_parts
from mr3_reward.parsing import parse_judgment
from mr3_reward.templates import LanguageMode, RenderedPrompt, Renderer, RubricPack
from mr3_reward.types import Failure, JudgeRequest, Judgment, Sampling

# The documented default for real use; it loads from the Hugging Face hub where a network exists.
DEFAULT_MODEL = "rubricreward/mR3-Qwen3-4B-en-prompt-en-thinking"
BACKENDS = ("transformers", "vllm", "openai", "fake")


def make_backend(backend: str | Backend, model: str, **options: Any) -> Backend:
    """Build a backend by name (imports stay lazy), or pass an instance through."""
    if not isinstance(backend, str):
        if not isinstance(backend, Backend):
            raise TypeError(f"backend must be a name ({', '.join(BACKENDS)}) or an object with model_id and "
                            f"generate(requests); got {type(backend).__name__}")
        return backend
    if backend == "transformers":
        from mr3_reward.backends.transformers import TransformersBackend

        return TransformersBackend(model, **options)
    if backend == "vllm":
        from mr3_reward.backends.vllm import VLLMBackend

        return VLLMBackend(model, **options)
    if backend == "openai":
        if "base_url" not in options:
            raise ValueError("backend 'openai' needs the server's URL: backend_options={'base_url': "
                             "'http://127.0.0.1:8000/v1'} (the model name is the one the server serves)")
        from mr3_reward.backends.openai import OpenAIBackend

        return OpenAIBackend(model, **options)
    if backend == "fake":
        from mr3_reward.backends.fake import FakeBackend

        return FakeBackend(model_id=model, **options)
    raise ValueError(f"unknown backend {backend!r}; use one of: {', '.join(BACKENDS)}")


def open_cache(cache: str | Path | JudgmentCache | None) -> JudgmentCache | None:
    """``None`` -> no cache; ``"default"`` -> the per-user file; a path or ``":memory:"``; or an instance."""
    if cache is None or isinstance(cache, JudgmentCache):
        return cache
    if isinstance(cache, (str, Path)):
        return JudgmentCache(None if str(cache) == "default" else cache)
    raise TypeError(f"cache must be None, 'default', a path, ':memory:' or a JudgmentCache; got {type(cache).__name__}")


def judgment_from_generation(gen: Generation, rendered: RenderedPrompt) -> Judgment:
    """One engine output -> a `Judgment`: an engine error becomes a typed failure, text is parsed against
    the rendered prompt's labels and prefix, and label log-probabilities are kept for soft rewards."""
    if gen.finish_reason == "error":
        return Judgment(score=None, failure=Failure.ENGINE_ERROR.value, raw=gen.text,
                        meta={"error": gen.error or "unknown engine error"})
    j = parse_judgment(gen.text, rendered.labels, rendered.prompt.prefix, truncated=gen.finish_reason == "length")
    if gen.label_logprobs and j.ok:
        j = dataclasses.replace(j, meta={**j.meta, "label_logprobs": dict(gen.label_logprobs)})
    return j


class Judge:
    """An mR3 judge: turns `JudgeRequest`s into `Judgment`s.

    model (`str`): a hub id (default ``rubricreward/mR3-Qwen3-4B-en-prompt-en-thinking``), a local
        directory or an alias (``smollm2-135m``, ``tiny-random``); its suffix sets the language mode.
    backend (`str | Backend`): ``"transformers"`` (default) or a backend instance.
    language_mode (`str`): ``"auto"`` or one of `LanguageMode`'s values.
    pack (`str`, *optional*): an official rubric pack directory; family (`str`): a template in it.
    sampling (`Sampling`, *optional*): decoding; keyword overrides such as ``max_tokens=512`` also work.
    max_retries (`int`): how many times a failed item is re-sampled with a new seed.
    backend_options (`dict`): passed to the backend's constructor when ``backend`` is a name.
    cache (`str | JudgmentCache`, *optional*): a result cache: ``"default"`` (a per-user SQLite file), a
        path, ``":memory:"`` or a `JudgmentCache`; None (the default here) turns caching off.

    >>> judge = Judge(model="fake", backend="fake")
    >>> [j.score for j in judge.judge([JudgeRequest(task="binary", prompt="2+2?", responses=("4",))])]
    ['true']
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        backend: str | Backend = "transformers",
        language_mode: str | LanguageMode = "auto",
        pack: str | Path | RubricPack | None = None,
        family: str | None = None,
        sampling: Sampling | None = None,
        max_retries: int = 2,
        neutralize_headers: bool = True,
        backend_options: dict[str, Any] | None = None,
        cache: str | Path | JudgmentCache | None = None,
        **sampling_overrides: Any,
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self._config_digest: str | None = None
        self.sampling = (sampling or Sampling()).with_(**sampling_overrides)
        self.backend = make_backend(backend, model, **(backend_options or {}))
        self.model_id = getattr(self.backend, "model_id", model)
        self.renderer = Renderer(
            model_id=self.model_id, language_mode=language_mode, pack=pack, family=family,
            neutralize_headers=neutralize_headers,
        )
        self.max_retries = max_retries
        self.cache = open_cache(cache)
        self.last_stats: dict[str, int] = {}

    @property
    def sampling(self) -> Sampling:
        return self._sampling

    @sampling.setter
    def sampling(self, value: Sampling) -> None:
        # Sampling (the seed included) is part of every cache key: forget the digest built from the old one.
        self._sampling = value
        self._config_digest = None

    @property
    def language_mode(self) -> LanguageMode:
        return self.renderer.mode

    def config_key(self) -> dict[str, Any]:
        """Everything about this judge that changes a verdict, for cache keys and output metadata."""
        return {
            "model": self.model_id,
            "revision": getattr(self.backend, "revision", None),
            **self.renderer.key(),
            "sampling": dataclasses.asdict(self.sampling),
        }

    def render(self, request: JudgeRequest) -> RenderedPrompt:
        return self.renderer.render(request)

    def _key(self, rendered: RenderedPrompt) -> str:
        # The rendered bytes carry the rubric, language, responses and their order; the config digest
        # carries model, revision, template version, language mode and sampling (seed included).
        if self._config_digest is None:
            self._config_digest = cache_key(self.config_key())
        p = rendered.prompt
        return digest_parts(self._config_digest, p.system, p.user, p.prefix, *rendered.labels)

    def judge(
        self,
        requests: Sequence[JudgeRequest],
        *,
        progress: Callable[[int], None] | None = None,
    ) -> list[Judgment]:
        """Judge every request; one `Judgment` per request, in order.

        Identical requests in a call are judged once; results found in the cache cost no engine call
        (their ``meta["cached"]`` is True). All remaining items of a round go to the backend in one call
        so it can batch them; the items that failed (no score) are re-sampled with the next seed, up to
        ``max_retries`` times. ``progress(n)`` is called as items reach their final judgment.
        ``self.last_stats`` describes the call (requests, cache hits, duplicates, items sent to the engine).
        """
        requests = list(requests)
        for i, r in enumerate(requests):
            if not isinstance(r, JudgeRequest):
                raise TypeError(f"requests[{i}] is a {type(r).__name__}, not a JudgeRequest")
        rendered = [self.render(r) for r in requests]
        keys = [self._key(r) for r in rendered]
        found = self.cache.get_many(list(dict.fromkeys(keys))) if self.cache is not None else {}
        first: dict[str, int] = {}  # key -> the index that gets judged
        for i, k in enumerate(keys):
            if k not in found:
                first.setdefault(k, i)
        fresh = self._generate([rendered[i] for i in first.values()], progress)
        by_key = {k: j for k, j in zip(first, fresh)}
        if self.cache is not None:
            # Engine errors are transient: never cache them, so the next call tries again.
            self.cache.put_many({k: j.to_dict() for k, j in by_key.items() if j.failure != Failure.ENGINE_ERROR.value})
        out = []
        for k in keys:
            if k in found:
                record = found[k]
                out.append(Judgment.from_dict({**record, "meta": {**(record.get("meta") or {}), "cached": True}}))
            else:
                out.append(by_key[k])
        hits = sum(k in found for k in keys)
        if progress and len(keys) > len(first):  # cache hits and duplicates are done without the engine
            progress(len(keys) - len(first))
        self.last_stats = {
            "requests": len(keys), "cache_hits": hits, "duplicates": len(keys) - hits - len(first),
            "engine_items": len(first),
        }
        observe = getattr(self.backend, "observe", None)  # a shared pool collects its clients' statistics
        if observe is not None:
            observe(self.last_stats)
        return out

    def _generate(self, rendered: list[RenderedPrompt], progress: Callable[[int], None] | None) -> list[Judgment]:
        results: list[Judgment | None] = [None] * len(rendered)
        spent: list[tuple[int, int]] = [(0, 0)] * len(rendered)
        pending = list(range(len(rendered)))
        for attempt in range(self.max_retries + 1):
            if not pending:
                break
            sampling = self.sampling
            if attempt and sampling.seed is not None:
                sampling = sampling.with_(seed=sampling.seed + attempt)
            gens = self.backend.generate([GenerationRequest(rendered[i].prompt, sampling) for i in pending])
            if len(gens) != len(pending):
                raise RuntimeError(f"backend {self.model_id!r} returned {len(gens)} generations for {len(pending)} requests")
            still = []
            last = attempt == self.max_retries
            for i, gen in zip(pending, gens):
                p, c = spent[i]
                spent[i] = (p + gen.prompt_tokens, c + gen.completion_tokens)
                j = judgment_from_generation(gen, rendered[i])
                results[i] = dataclasses.replace(
                    j, attempts=attempt + 1, prompt_tokens=spent[i][0], completion_tokens=spent[i][1],
                    neutralized_lines=rendered[i].neutralized_lines,
                )
                if j.ok or last:
                    if progress:
                        progress(1)
                else:
                    still.append(i)
            pending = still
        return [j for j in results if j is not None]

    def judge_one(self, request: JudgeRequest) -> Judgment:
        return self.judge([request])[0]
