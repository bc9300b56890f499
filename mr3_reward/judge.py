"""Judge: render -> generate -> parse, batched, re-sampling only the items that failed."""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mr3_reward.backends.base import (
    Backend,
    ChatPrompt,
    EngineInfo,
    Generation,
    GenerationRequest,
    RunsPhases,
)
from mr3_reward.backends.registry import make_backend
from mr3_reward.cache import JudgmentCache, cache_key, digest_parts
from mr3_reward.errors import ConfigError
from mr3_reward.judge_checks import constrained_problem, judge_problems
from mr3_reward.models import DEFAULT_MODEL
from mr3_reward.parsing import parse_judgment
from mr3_reward.phases import generate as run_generation
from mr3_reward.templates import LanguageMode, RenderedPrompt, Renderer, RubricPack, approx_tokens
from mr3_reward.types import Failure, JudgeRequest, Judgment, Sampling

# The input limit for an engine that reports no context: mR3's 32768 tokens less the 16384 it may generate.
DEFAULT_MAX_INPUT_TOKENS = 16384
RECENT_REQUESTS = 4096
_NOT_CACHED = (Failure.ENGINE_ERROR.value, Failure.INPUT_TOO_LONG.value)


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
    if gen.thinking_tokens is not None:
        j = j.with_(meta={**j.meta, "thinking_tokens": gen.thinking_tokens})
    if gen.label_logprobs and j.ok:
        j = j.with_(label_probs=label_probs(gen.label_logprobs, rendered.labels),
                                meta={**j.meta, "label_logprobs": dict(gen.label_logprobs)})
    return j


def label_probs(logprobs: Mapping[str, float], labels: Sequence[str]) -> dict[str, float] | None:
    """Label log-probabilities -> probabilities renormalized over the rubric's labels (a label the engine did
    not report gets 0); None when none of the labels was reported."""
    known = {lab: logprobs[lab] for lab in labels if lab in logprobs}
    if not known:
        return None
    top = max(known.values())
    weights = {lab: math.exp(lp - top) for lab, lp in known.items()}
    total = sum(weights.values())
    return {lab: weights.get(lab, 0.0) / total for lab in labels}



class Judge:
    """An mR3 judge: turns `JudgeRequest`s into `Judgment`s.

    model (`str`): a hub id (default ``rubricreward/mR3-Qwen3-4B-en-prompt-en-thinking``), a local
        directory or an alias (``smollm2-135m``, ``tiny-random``); its suffix sets the language mode.
    backend (`str | Backend | None`): ``"transformers"`` (default), another engine name, a backend instance,
        or None: no engine, for rendering and keying requests only (`render`, `key`); ``judge`` then raises.
    revision (`str`, *optional*): the model revision, for cache keys, when ``backend`` is None (an engine
        reports its own).
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
        self._config_digest: str | None = None
        # request -> (rendered, key) for recent requests: a repeated batch (a warm cache) skips rendering.
        self._recent: OrderedDict[JudgeRequest, tuple[RenderedPrompt, str]] = OrderedDict()
        self.sampling = (sampling or Sampling()).with_(**sampling_overrides)
        self.backend: Backend | None = None if backend is None else make_backend(backend, model, **(backend_options or {}))
        self.model_id = model if self.backend is None else self.backend.model_id
        # What the engine declares about itself (`EngineInfo`), or None: then the judge uses its defaults.
        self._info: EngineInfo | None = self.backend if isinstance(self.backend, EngineInfo) else None
        self._revision = revision if self._info is None else self._info.revision
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
        # The engine's own token count where it has a tokenizer; otherwise an estimate from the text's size.
        self._count_tokens: Callable[[ChatPrompt], int] = approx_tokens if self._info is None else self._info.count_tokens

    @property
    def sampling(self) -> Sampling:
        return self._sampling

    @sampling.setter
    def sampling(self, value: Sampling) -> None:
        # Sampling (the seed included) is part of every cache key: forget the digest built from the old one.
        self._sampling = value
        self._config_digest = None
        self._recent = OrderedDict()  # the input limit and the keys follow the sampling

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
        engine's context (`EngineInfo.max_model_len`) less room to generate: ``max_tokens``,
        but never more than half the context. An engine that reports no context gets
        `DEFAULT_MAX_INPUT_TOKENS` (mR3's 32768-token context less its recommended 16384 generated tokens).
        """
        context = None if self._info is None else self._info.max_model_len
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
        return self._key(rendered)

    def _key(self, rendered: RenderedPrompt) -> str:
        # The rendered bytes carry the rubric, language, responses and their order; the config digest
        # carries model, revision, template version, language mode and sampling (seed included).
        if self._config_digest is None:
            self._config_digest = cache_key(self.config_key())
        p = rendered.prompt
        return digest_parts(self._config_digest, p.system, p.user, p.prefix, *rendered.labels)

    def _prepared(self, request: JudgeRequest) -> tuple[RenderedPrompt, str]:
        hit = self._recent.get(request)
        if hit is None:
            rendered = self.render(request)
            hit = self._recent[request] = (rendered, self._key(rendered))
            if len(self._recent) > RECENT_REQUESTS:
                self._recent.popitem(last=False)
        return hit

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
        if isinstance(requests, JudgeRequest):
            raise TypeError("judge() takes a list of JudgeRequest; for one request use judge([request]) or judge_one(request)")
        if requests is None or isinstance(requests, (str, bytes, Mapping)) or not isinstance(requests, Iterable):
            raise TypeError(f"judge() takes a list of JudgeRequest, got {type(requests).__name__}")
        if self.backend is None:
            raise RuntimeError("this Judge was built with backend=None (rendering and keys only); build it with an "
                               "engine, e.g. Judge(model, backend='transformers'), to judge")
        requests = list(requests)
        for i, r in enumerate(requests):
            if not isinstance(r, JudgeRequest):
                raise TypeError(f"requests[{i}] is a {type(r).__name__}, not a JudgeRequest")
        rendered, keys = zip(*map(self._prepared, requests)) if requests else ((), ())
        found = self.cache.get_many(list(dict.fromkeys(keys))) if self.cache is not None else {}
        first: dict[str, int] = {}  # key -> the index that gets judged
        for i, k in enumerate(keys):
            if k not in found:
                first.setdefault(k, i)
        # The language the judge reasons in: the input's with target-language thinking, else English.
        thinking = [requests[i].language if self.renderer.mode.tgt_thinking else "en" for i in first.values()]
        fresh = self._generate([rendered[i] for i in first.values()], thinking, progress)
        by_key = {k: j for k, j in zip(first, fresh)}
        if self.cache is not None:
            # Engine errors are transient, and an input too long for this judge's limit may fit a larger one:
            # never cache them, so the next call tries again.
            self.cache.put_many({k: j.to_dict() for k, j in by_key.items() if j.failure not in _NOT_CACHED})
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
        if self._info is not None:  # a shared pool collects its clients' statistics
            self._info.observe(self.last_stats)
        return out

    def _engine(self, requests: list[GenerationRequest]) -> list[Generation]:
        """One round of generation: one engine call, or one per phase with a budget or constrained verdicts
        (on a pool, its replicas run the phases next to their engines)."""
        if isinstance(self.backend, RunsPhases):
            return self.backend.generate_in_phases(requests)
        return run_generation(self.backend, requests)

    def _generate(self, rendered: list[RenderedPrompt], languages: list[str],
                  progress: Callable[[int], None] | None) -> list[Judgment]:
        results: list[Judgment | None] = [None] * len(rendered)
        spent: list[tuple[int, int]] = [(0, 0)] * len(rendered)
        pending = [i for i, r in enumerate(rendered) if r.input_problem is None]
        for i, r in enumerate(rendered):
            if r.input_problem is not None:  # cannot fit the engine: a typed failure without an engine call
                results[i] = Judgment(score=None, failure=Failure.INPUT_TOO_LONG.value, attempts=0,
                                      neutralized_lines=r.neutralized_lines, meta={"error": r.input_problem})
                if progress:
                    progress(1)
        for attempt in range(self.max_retries + 1):
            if not pending:
                break
            sampling = self.sampling
            if attempt and sampling.seed is not None:
                sampling = sampling.with_(seed=sampling.seed + attempt)
            gens = self._engine([GenerationRequest(rendered[i].prompt, sampling, rendered[i].labels,
                                                   thinking_language=languages[i]) for i in pending])
            if len(gens) != len(pending):
                raise RuntimeError(f"backend {self.model_id!r} returned {len(gens)} generations for {len(pending)} requests")
            still = []
            last = attempt == self.max_retries
            for i, gen in zip(pending, gens):
                p, c = spent[i]
                spent[i] = (p + gen.prompt_tokens, c + gen.completion_tokens)
                j = judgment_from_generation(gen, rendered[i])
                results[i] = j.with_(
                    attempts=attempt + 1, prompt_tokens=spent[i][0], completion_tokens=spent[i][1],
                    neutralized_lines=rendered[i].neutralized_lines, truncated_input=rendered[i].truncated_input,
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
