"""The judging loop, defined once: rendered requests -> cache -> engine rounds -> parse -> re-sample failures.

`Judge.judge` is this loop for one judge. `judge_together` runs it for several judges that share one engine
(training's teacher judges every row under each language mode and seed), so that every round is still one
engine call for everything pending, whichever judge it belongs to.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from mr3_reward.backends.base import Backend, Generation, GenerationRequest, RunsPhases
from mr3_reward.cache import JudgmentCache
from mr3_reward.parsing import parse_judgment
from mr3_reward.phases import engine_problem, needs_phases, plan
from mr3_reward.templates import LanguageMode, RenderedPrompt
from mr3_reward.types import Failure, JudgeRequest, Judgment, Sampling

__all__ = ["LoopJudge", "Prepared", "engine_round", "judge_together", "judgment_from_generation", "label_probs"]

# Engine errors are transient, and an input too long for one judge's limit may fit a larger one: never cached,
# so the next call tries again.
_NOT_CACHED = (Failure.ENGINE_ERROR.value, Failure.INPUT_TOO_LONG.value)


@dataclass
class Prepared:
    """One request as the judging loop needs it: its cache key and either its rendered prompt, to judge it,
    or, for a recent request the cache holds, its judgment (`mr3_reward.judge.Judge.prepare_many`)."""

    request: JudgeRequest
    key: str
    rendered: RenderedPrompt | None = None
    judgment: Judgment | None = None


class LoopJudge(Protocol):
    """What the loop reads of a judge and tells it (`mr3_reward.judge.Judge` is one): its engine, cache,
    decoding, retries and language mode; its requests, prepared; what the cache now holds; the call's
    statistics."""

    backend: Backend | None
    cache: JudgmentCache | None
    sampling: Sampling
    max_retries: int

    @property
    def language_mode(self) -> LanguageMode: ...

    def prepare_many(self, requests: Sequence[JudgeRequest]) -> list[Prepared]: ...

    def remember(self, prepared: Sequence[Prepared], cached: Mapping[str, Judgment]) -> None: ...

    def record_stats(self, stats: Mapping[str, int]) -> None: ...


def judgment_from_generation(gen: Generation, rendered: RenderedPrompt, **fields: Any) -> Judgment:
    """One engine output -> a `Judgment`: an engine error becomes a typed failure, text is parsed against
    the rendered prompt's labels and prefix, and label log-probabilities are kept for soft rewards.
    ``fields`` (e.g. ``attempts``) are set on the judgment too."""
    if gen.finish_reason == "error":
        return Judgment(score=None, failure=Failure.ENGINE_ERROR.value, raw=gen.text,
                        meta={"error": gen.error or "unknown engine error"}, **fields)
    j = parse_judgment(gen.text, rendered.labels, rendered.prompt.prefix, truncated=gen.finish_reason == "length",
                       **fields)
    more: dict[str, Any] = {}
    if gen.thinking_tokens is not None:
        more["meta"] = {**j.meta, "thinking_tokens": gen.thinking_tokens}
    if gen.label_logprobs and j.ok:
        more["label_probs"] = label_probs(gen.label_logprobs, rendered.labels)
        more["meta"] = {**more.get("meta", j.meta), "label_logprobs": dict(gen.label_logprobs)}
    return replace(j, **more) if more else j


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


def engine_round(backend: Any, requests: Sequence[GenerationRequest]) -> list[Generation]:
    """One round of generation, one `Generation` per request: one engine call, or with a budget or
    constrained verdicts one call per phase, made here as `mr3_reward.phases.plan` asks for them (on a pool,
    its replicas run this next to their engines)."""
    if isinstance(backend, RunsPhases):
        return _checked_answer(backend, requests, backend.generate_in_phases(requests))
    samplings = {id(r.sampling): r.sampling for r in requests}  # a judge sends one sampling a round
    if not any(needs_phases(s) for s in samplings.values()):
        return _checked_answer(backend, requests, backend.generate(requests))  # the common case: one call
    if (problem := engine_problem(backend, requests)) is not None:
        raise TypeError(problem)
    steps, answer = plan(requests), None
    while True:
        try:
            call = steps.send(answer)
        except StopIteration as done:
            return done.value
        engine = backend.generate if call.method == "generate" else backend.score_continuations
        answer = _checked_answer(backend, call.args, engine(call.args))


def _checked_answer(backend: Any, asked: Sequence[Any], answer: list[Any]) -> list[Any]:
    if len(answer) != len(asked):
        raise RuntimeError(f"backend {backend.model_id!r} returned {len(answer)} results for {len(asked)} requests")
    return answer


@dataclass
class _Item:
    """One distinct request of one judge that needs the engine, and its judgment so far."""

    judge: LoopJudge
    rendered: RenderedPrompt
    language: str  # the language the judge reasons in
    result: Judgment | None = None
    prompt_tokens: int = 0  # over every attempt
    completion_tokens: int = 0


@dataclass
class _Part:
    """One judge's share of a call: its requests' keys, what the cache held, and the items it generates."""

    judge: LoopJudge
    prepared: list[Prepared]  # per request
    keys: tuple[str, ...]
    found: Mapping[str, Judgment]  # cache hits, as judgments
    first: dict[str, int] = field(default_factory=dict)  # key -> the index of the request that gets judged
    items: list[_Item] = field(default_factory=list)


def judge_together(
    groups: Iterable[tuple[LoopJudge, Sequence[JudgeRequest]]],
    *,
    progress: Callable[[int], None] | None = None,
) -> list[list[Judgment]]:
    """Judge each group's requests with its own judge, every engine round one call for all groups.

    Each judge renders (fitting its input limit), keys, looks up its own cache and merges its own identical
    requests, exactly as `Judge.judge`; then every remaining item of every group goes to the shared backend
    in one round. Identical seeded engine requests of different judges (the same prompt, sampling and seed:
    the same work) are generated once; unseeded ones never, as they are independent draws. A failed item is
    re-sampled with the next seed up to its own judge's ``max_retries``, each retry round again one call.
    Each judge then caches its results, sets ``last_stats`` (for its last group here) and reports them.

    Args:
        groups (`Iterable[tuple[Judge, Sequence[JudgeRequest]]]`): judges sharing one backend object, each
            with its requests (any `LoopJudge`; `mr3_reward.judge.Judge` is one).
        progress (`Callable[[int], None]`, *optional*): called with ``n`` as items reach their final judgment.

    Returns:
        `list[list[Judgment]]`: per group, one `Judgment` per request, in order.

    Raises:
        `TypeError`: a group's requests are not a list of `JudgeRequest`.
        `RuntimeError`: the judges have no engine (``backend=None``).
        `ValueError`: the judges do not share one backend object.

    >>> from mr3_reward.judge import Judge
    >>> from mr3_reward.backends.fake import FakeBackend
    >>> engine = FakeBackend()
    >>> a, b = Judge(backend=engine, seed=1), Judge(backend=engine, seed=2)
    >>> ask = [JudgeRequest(task="binary", prompt="2+2?", responses=("4",))]
    >>> [[j.score for j in out] for out in judge_together([(a, ask), (b, ask)])], engine.calls
    ([['true'], ['true']], 1)
    """
    groups = [(judge, _checked(judge, requests)) for judge, requests in groups]
    if not groups:
        return []
    backend = groups[0][0].backend
    if any(judge.backend is not backend for judge, _ in groups):
        raise ValueError("judge_together needs judges that share one backend object (one engine round for all); "
                         "build them with the same backend instance, or call judge() on each")
    parts = [_part(judge, requests) for judge, requests in groups]
    _generate(backend, [item for part in parts for item in part.items], progress)
    return [_finish(part, progress) for part in parts]


def _checked(judge: LoopJudge, requests: Any) -> list[JudgeRequest]:
    if isinstance(requests, JudgeRequest):
        raise TypeError("judge() takes a list of JudgeRequest; for one request use judge([request]) or judge_one(request)")
    if requests is None or isinstance(requests, (str, bytes, Mapping)) or not isinstance(requests, Iterable):
        raise TypeError(f"judge() takes a list of JudgeRequest, got {type(requests).__name__}")
    if judge.backend is None:
        raise RuntimeError("this Judge was built with backend=None (rendering and keys only); build it with an "
                           "engine, e.g. Judge(model, backend='transformers'), to judge")
    requests = list(requests)
    for i, r in enumerate(requests):
        if not isinstance(r, JudgeRequest):
            raise TypeError(f"requests[{i}] is a {type(r).__name__}, not a JudgeRequest")
    return requests


def _part(judge: LoopJudge, requests: list[JudgeRequest]) -> _Part:
    prepared = judge.prepare_many(requests)
    keys = tuple([p.key for p in prepared])
    found: dict[str, Judgment] = {}
    if judge.cache is not None:
        for p in prepared:  # recent requests whose judgment is in the cache: no lookup
            if p.judgment is not None:
                found[p.key] = p.judgment
        wanted = [k for k in dict.fromkeys(keys) if k not in found]
        if wanted:
            for k, record in judge.cache.get_many(wanted).items():
                found[k] = Judgment.from_dict({**record, "meta": {**(record.get("meta") or {}), "cached": True}})
    part = _Part(judge, prepared, keys, found)
    for i, k in enumerate(keys):
        if k not in found:
            part.first.setdefault(k, i)
    # The language the judge reasons in: the input's with target-language thinking, else English.
    tgt_thinking = judge.language_mode.tgt_thinking
    part.items = [_Item(judge, prepared[i].rendered, requests[i].language if tgt_thinking else "en")
                  for i in part.first.values()]
    return part


def _generate(backend: Any, items: list[_Item], progress: Callable[[int], None] | None) -> None:
    pending = []
    for it in items:
        r = it.rendered
        if r.input_problem is None:
            pending.append(it)
            continue
        # Cannot fit the engine: a typed failure without an engine call.
        it.result = Judgment(score=None, failure=Failure.INPUT_TOO_LONG.value, attempts=0,
                             neutralized_lines=r.neutralized_lines, meta={"error": r.input_problem})
        if progress:
            progress(1)
    # Identical requests of one judge were merged already (by key); only several judges can repeat one.
    merge = len({id(it.judge) for it in pending}) > 1
    attempt = 0
    while pending:
        samplings: dict[int, Sampling] = {}
        asked = []
        for it in pending:
            sampling = samplings.get(id(it.judge))
            if sampling is None:
                sampling = samplings[id(it.judge)] = _attempt_sampling(it.judge.sampling, attempt)
            asked.append(GenerationRequest(it.rendered.prompt, sampling, it.rendered.labels,
                                           thinking_language=it.language))
        sent, slots = _merged(asked) if merge else (asked, range(len(asked)))
        gens = engine_round(backend, sent)
        still = []
        for it, slot in zip(pending, slots):
            if _record(it, gens[slot], attempt):
                if progress:
                    progress(1)
            else:
                still.append(it)
        pending = still
        attempt += 1


def _merged(asked: list[GenerationRequest]) -> tuple[list[GenerationRequest], list[int]]:
    """Identical seeded requests (several judges asking the same: the same work) sent once: the requests
    to send, and for each asked one the index of its answer. Unseeded ones are independent draws."""
    sent: list[GenerationRequest] = []
    slot_of: dict[GenerationRequest, int] = {}
    slots = []
    for req in asked:
        seeded = req.sampling.seed is not None
        slot = slot_of.get(req) if seeded else None
        if slot is None:
            slot = len(sent)
            sent.append(req)
            if seeded:
                slot_of[req] = slot
        slots.append(slot)
    return sent, slots


def _attempt_sampling(sampling: Sampling, attempt: int) -> Sampling:
    """A re-sample draws with the next seed (an unseeded judge draws anew anyway)."""
    if attempt and sampling.seed is not None:
        return sampling.with_(seed=sampling.seed + attempt)
    return sampling


def _record(it: _Item, gen: Generation, attempt: int) -> bool:
    """Keep ``gen`` as the item's judgment so far; True when it is final (judged, or out of retries)."""
    it.prompt_tokens += gen.prompt_tokens
    it.completion_tokens += gen.completion_tokens
    rendered = it.rendered
    it.result = j = judgment_from_generation(
        gen, rendered, attempts=attempt + 1, prompt_tokens=it.prompt_tokens, completion_tokens=it.completion_tokens,
        neutralized_lines=rendered.neutralized_lines, truncated_input=rendered.truncated_input,
    )
    return j.ok or attempt >= it.judge.max_retries


def _finish(part: _Part, progress: Callable[[int], None] | None) -> list[Judgment]:
    judge, keys, found = part.judge, part.keys, part.found
    by_key = dict(zip(part.first, [it.result for it in part.items]))
    if judge.cache is not None:
        stored = {k: j for k, j in by_key.items() if j.failure not in _NOT_CACHED}
        judge.cache.put_many({k: j.to_record() for k, j in stored.items()})
        judge.remember(part.prepared, {**found, **stored})  # for the next call with these requests
    results = {**found, **by_key}  # no key is in both
    out = [results[k] for k in keys]
    hits = sum(k in found for k in keys) if found else 0
    if progress and len(keys) > len(part.first):  # cache hits and duplicates are done without the engine
        progress(len(keys) - len(part.first))
    judge.record_stats({
        "requests": len(keys), "cache_hits": hits, "duplicates": len(keys) - hits - len(part.first),
        "engine_items": len(part.first),
    })
    return out
