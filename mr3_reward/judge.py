"""Judge: render -> cache -> generate -> parse, batched, re-sampling only the items that failed.

The judge holds the configuration (model, language mode, sampling, cache, input limit) and renders and keys
requests; the judging loop it runs is `mr3_reward.judging.judge_together`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from mr3_reward.backends.base import (
    Backend,
    ChatPrompt,
    CountsTokens,
    EngineInfo,
    HasContext,
    HasRevision,
    Observes,
    declared_context,
)
from mr3_reward.backends.registry import make_backend
from mr3_reward.cache import JudgmentCache, cache_key, digest_parts
from mr3_reward.errors import ConfigError
from mr3_reward.judge_checks import constrained_problem, judge_problems
# judgment_from_generation and label_probs moved with the loop to `mr3_reward.judging`; still importable here.
from mr3_reward.judging import Prepared, judge_together, judgment_from_generation, label_probs  # noqa: F401
from mr3_reward.models import DEFAULT_MODEL
from mr3_reward.templates import LanguageMode, RenderedPrompt, Renderer, RubricPack, approx_tokens
from mr3_reward.types import JudgeRequest, Judgment, Sampling

# The input limit for an engine that reports no context: mR3's 32768 tokens less the 16384 it may generate.
DEFAULT_MAX_INPUT_TOKENS = 16384
# How many recent requests a judge with a cache remembers with their key and judgment (`Judge.remember`).
RECENT_REQUESTS = 4096


def open_cache(cache: str | Path | JudgmentCache | None) -> JudgmentCache | None:
    """``None`` -> no cache; ``"default"`` -> the per-user file; a path or ``":memory:"``; or an instance."""
    if cache is None or isinstance(cache, JudgmentCache):
        return cache
    if isinstance(cache, (str, Path)):
        return JudgmentCache(None if str(cache) == "default" else cache)
    raise TypeError(f"cache must be None, 'default', a path, ':memory:' or a JudgmentCache; got {type(cache).__name__}")


class Judge:
    """An mR3 judge: turns `JudgeRequest`s into `Judgment`s.

    model (`str`): a hub id (default ``rubricreward/mR3-Qwen3-4B-en-prompt-en-thinking``), a local
        directory or an alias (``smollm2-135m``, ``tiny-random``); its suffix sets the language mode.
    backend (`str | Backend | None`): ``"transformers"`` (default), another engine name, a backend instance,
        or None: no engine, for rendering and keying requests only (`render`, `key`); ``judge`` then raises.
    revision (`str`, *optional*): the model revision, for cache keys, when the backend declares none (a
        backend that declares ``revision``, `HasRevision`, reports its own).
    language_mode (`str`): ``"auto"`` or one of `LanguageMode`'s values.
    pack (`str`, *optional*): an official rubric pack directory; family (`str`): a template in it.
    sampling (`Sampling`, *optional*): decoding; keyword overrides such as ``max_tokens=512`` also work.
    max_retries (`int`): how many times a failed item is re-sampled with a new seed.
    backend_options (`dict`): passed to the backend's constructor when ``backend`` is a name.
    cache (`str | JudgmentCache`, *optional*): a result cache: ``"default"`` (a per-user SQLite file), a
        path, ``":memory:"`` or a `JudgmentCache`; None (the default here) turns caching off.
    max_input_tokens (`int`, *optional*): the most tokens a prompt may take; responses of a longer request
        are cut to fit and its judgment has ``truncated_input=True``, and a request that cannot fit even so
        fails as ``input_too_long`` without an engine call. Default: from the engine's context, see
        `input_limit`. Tokens are counted with the engine's tokenizer, or estimated where it has none.

    What the judge reads from a backend is what the backend declares, each capability on its own
    (`mr3_reward.backends.base`): its ``revision`` (`HasRevision`) keys the cache, ``count_tokens``
    (`CountsTokens`) counts prompt tokens, ``max_model_len`` (`HasContext`) bounds the input, and
    ``observe`` (`Observes`) gets each call's statistics. A backend may declare any of them, or none.

    >>> judge = Judge(model="fake", backend="fake")
    >>> [j.score for j in judge.judge([JudgeRequest(task="binary", prompt="2+2?", responses=("4",))])]
    ['true']
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        backend: str | Backend | None = "transformers",
        revision: str | None = None,
        language_mode: str | LanguageMode = "auto",
        pack: str | Path | RubricPack | None = None,
        family: str | None = None,
        sampling: Sampling | None = None,
        max_retries: int = 2,
        neutralize_headers: bool = True,
        backend_options: dict[str, Any] | None = None,
        cache: str | Path | JudgmentCache | None = None,
        max_input_tokens: int | None = None,
        **sampling_overrides: Any,
    ) -> None:
        problems = judge_problems(
            model, backend=backend, revision=revision, language_mode=language_mode, pack=pack, family=family,
            sampling=sampling, max_retries=max_retries, neutralize_headers=neutralize_headers,
            backend_options=backend_options, cache=cache, max_input_tokens=max_input_tokens, **sampling_overrides,
        )
        if problems:
            raise ConfigError("invalid Judge: " + "; ".join(problems))
        self.sampling = (sampling or Sampling()).with_(**sampling_overrides)
        self.backend: Backend | None = None if backend is None else make_backend(backend, model, **(backend_options or {}))
        self.model_id = model if self.backend is None else self.backend.model_id
        # What the backend declares about itself, each capability on its own (a default for each it does not).
        backend = self.backend
        # An engine reports the revision it serves; ``revision=`` is for a judge without one that does.
        self._revision = backend.revision if isinstance(backend, HasRevision) else revision
        # The engine's own token count where it has a tokenizer; otherwise an estimate from the text's size.
        self._count_tokens: Callable[[ChatPrompt], int] = (
            backend.count_tokens if isinstance(backend, CountsTokens) else approx_tokens)
        self._context: HasContext | None = declared_context(backend)  # read when needed: a pool's may change
        self._observer: Observes | None = backend if isinstance(backend, Observes) else None
        if (problem := constrained_problem(self.sampling, self.backend)) is not None:  # a named engine, now built
            raise ConfigError("invalid Judge: " + problem)
        self.renderer = Renderer(
            model_id=self.model_id, language_mode=language_mode, pack=pack, family=family,
            neutralize_headers=neutralize_headers,
        )
        self.max_retries = max_retries
        self.cache = open_cache(cache)
        self.last_stats: dict[str, int] = {}
        self.max_input_tokens = max_input_tokens

    @property
    def sampling(self) -> Sampling:
        return self._sampling

    @sampling.setter
    def sampling(self, value: Sampling) -> None:
        # Sampling (the seed included) is part of every cache key: forget the digest built from the old one.
        self._sampling = value
        self._config_digest: str | None = None  # `cache_key(config_key())`, made when first needed
        # request -> (its key, the judgment the cache holds for it), oldest first (`prepare_many`, `remember`;
        # the input limit and the keys follow the sampling).
        self._recent: dict[JudgeRequest, tuple[str, Judgment]] = {}

    @property
    def engine_info(self) -> EngineInfo | None:
        """The backend when it declares every capability at once (`EngineInfo`), else None. The judge itself
        reads each capability a backend declares on its own, whether or not it declares them all."""
        return self.backend if isinstance(self.backend, EngineInfo) else None

    @property
    def language_mode(self) -> LanguageMode:
        return self.renderer.mode

    def config_key(self) -> dict[str, Any]:
        """Everything about this judge that changes a verdict, for cache keys and output metadata."""
        return {
            "model": self.model_id,
            "revision": self._revision,
            **self.renderer.key(),
            "sampling": dataclasses.asdict(self.sampling),
        }

    @property
    def input_limit(self) -> int:
        """The most tokens a prompt may take; longer requests get their responses cut (`Renderer.render_within`).

        ``max_input_tokens`` when given (at most the engine's context less one token); otherwise the
        engine's context (`HasContext.max_model_len`) less room to generate: ``max_tokens``,
        but never more than half the context. An engine that reports no context gets
        `DEFAULT_MAX_INPUT_TOKENS` (mR3's 32768-token context less its recommended 16384 generated tokens).
        """
        context = None if self._context is None else self._context.max_model_len
        if isinstance(context, bool) or not isinstance(context, int) or context < 2:
            context = None
        if self.max_input_tokens is not None:
            return self.max_input_tokens if context is None else min(self.max_input_tokens, context - 1)
        if context is None:
            return DEFAULT_MAX_INPUT_TOKENS
        return context - min(self.sampling.max_tokens, context // 2)

    def render(self, request: JudgeRequest) -> RenderedPrompt:
        """The prompt the engine gets for ``request``: rendered, user text neutralized, and responses cut
        to fit `input_limit` when needed (``truncated_input``), or ``input_problem`` set when nothing fits."""
        return self.renderer.render_within(request, self.input_limit, self._count_tokens)

    def key(self, rendered: RenderedPrompt) -> str:
        """The cache key of a rendered request under this judge's configuration."""
        # The rendered bytes carry the rubric, language, responses and their order; the config digest
        # carries model, revision, template version, language mode and sampling (seed included).
        if self._config_digest is None:
            self._config_digest = cache_key(self.config_key())
        p = rendered.prompt
        return digest_parts(self._config_digest, p.system, p.user, p.prefix, *rendered.labels)

    def prepare_many(self, requests: Sequence[JudgeRequest]) -> list[Prepared]:
        """Each request's cache key (`key`) and rendered prompt (`render`), as a `Prepared`; a request of a
        recent call whose judgment the cache holds (`remember`) comes with that judgment instead, as a cache
        hit (``meta["cached"]``), without rendering, keying or a lookup (a repeated batch: a warm cache)."""
        recent = self._recent if self.cache is not None else {}
        limit = self.input_limit
        out = []
        for request in requests:
            hit = recent.get(request)
            if hit is not None:
                key, judgment = hit
                hit_judgment = dataclasses.replace(judgment, meta={**judgment.meta, "cached": True})
                out.append(Prepared(request, key, judgment=hit_judgment))
            else:
                rendered = self.renderer.render_within(request, limit, self._count_tokens)
                out.append(Prepared(request, self.key(rendered), rendered))
        return out

    def remember(self, prepared: Sequence[Prepared], cached: Mapping[str, Judgment]) -> None:
        """Keep, for `prepare_many`, the judgments the cache now holds for these requests (``cached``, by
        key): the last `RECENT_REQUESTS` or more requests, each with its key and judgment (not its rendered
        prompt, which is most of a request's memory). Without it a warm replay renders, keys,
        looks up and decodes every request again: about a fifth of the rate of a plain SQLite lookup of the
        same keys, where the goal is half (`benchmarks/overhead.py`)."""
        if self.cache is None:
            return
        recent = self._recent
        for p in prepared:
            if p.rendered is not None and (j := cached.get(p.key)) is not None:
                recent[p.request] = (p.key, j)
        if len(recent) > RECENT_REQUESTS + RECENT_REQUESTS // 4:  # trimmed in bulk, not at every call
            for old in list(islice(recent, len(recent) - RECENT_REQUESTS)):
                del recent[old]

    def record_stats(self, stats: Mapping[str, int]) -> None:
        """Keep a call's statistics as ``last_stats`` and pass them to a backend that `Observes` (a shared
        pool collects its clients')."""
        self.last_stats = dict(stats)
        if self._observer is not None:
            self._observer.observe(self.last_stats)

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
        The loop is `mr3_reward.judging.judge_together`, which also runs several judges on one engine.
        """
        return judge_together([(self, requests)], progress=progress)[0]

    def judge_one(self, request: JudgeRequest) -> Judgment:
        return self.judge([request])[0]
