"""Budgeted reasoning and constrained verdicts: one judgment in phases, each phase one engine call per batch.

mR3 thinks, closes ``</think>`` and answers ``{"explanation": ..., "score": ...}``. Its reasoning may run to
16,384 tokens, and a small or rushed judge may never answer. With ``Sampling(thinking_budget=N)`` or
``Sampling(verdict="constrained")`` the judge runs these phases instead of one free generation:

1. **Reasoning**: every prompt of the batch, in one engine call, up to ``N`` tokens (``max_tokens`` when
   unbounded), stopping at ``</think>``. Tokens are counted by the engine, with its own tokenizer. A
   reasoning that has not closed ``</think>`` by then is closed for the judge with a short sentence in the
   reasoning's language (`closing_sentence`; the Qwen3 budget technique), then ``</think>``. The forcing
   sentence of target-language thinking is part of the prompt, not of the budget.
2. **Answer**, in one call for every item that reached it. The prompt is the original one plus the
   reasoning, so an engine with prefix caching computes neither again.
   - ``verdict="free"``: the judge writes its own answer (up to ``max_tokens`` less the reasoning's tokens)
     and the usual parser reads it, failures included.
   - ``verdict="constrained"``: the explanation is decoded under a grammar (the body of a JSON string, at
     most ``explanation_tokens`` tokens) through the engine's own structured-output support; then, in one
     more call, the engine scores each of the rubric's labels as the continuation after ``"score": "``.
     Those log-probabilities, renormalized over the labels, are the judgment's ``label_probs``; the
     verdict is drawn from them at the sampling temperature with the request's seed (the most probable
     label at temperature 0). The score is always one of the labels, localized ones included, so a
     constrained judgment can fail only as ``engine_error`` or ``input_too_long``.

The engine must be a `Constrains` backend for constrained verdicts (it decodes under a regular expression
and scores continuations); every backend honours ``stop`` and ``max_tokens``, which is all a budget needs.

This module never calls an engine. `plan` is a generator that yields each phase's `EngineCall` and is sent
what the engine answered; the judging loop (`mr3_reward.judging.engine_round`, also what a pool replica runs)
makes the calls. The phase logic can so be read and tested on its own, and it is not one more layer
between a reward call and the engine.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Generator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from mr3_reward.backends.base import ChatPrompt, Constrains, Generation, GenerationRequest
from mr3_reward.types import THINK_CLOSE, Sampling

__all__ = ["CLOSING_SENTENCES", "EngineCall", "closing_sentence", "engine_problem", "needs_phases", "plan"]

# The sentence that closes a reasoning cut off by the budget, per reasoning language (English where the
# language has none here). Our own wording of the Qwen3 technique: say time is up, answer from what is known.
CLOSING_SENTENCES = {
    "en": "I am out of thinking time, so I will give my answer now based on the reasoning so far.",
    "de": "Meine Bedenkzeit ist um, daher gebe ich jetzt meine Antwort auf Grundlage der bisherigen Überlegungen.",
    "fr": "Mon temps de réflexion est écoulé, je donne donc maintenant ma réponse d'après le raisonnement mené jusqu'ici.",
    "es": "Se me acabó el tiempo para pensar, así que daré ahora mi respuesta según el razonamiento hecho hasta aquí.",
    "it": "Il mio tempo per riflettere è finito, quindi ora do la mia risposta in base al ragionamento fatto finora.",
    "pt": "Meu tempo para pensar acabou, então vou dar minha resposta agora com base no raciocínio feito até aqui.",
    "nl": "Mijn denktijd is om, dus ik geef nu mijn antwoord op basis van de redenering tot nu toe.",
    "ru": "Время на размышление истекло, поэтому я даю ответ сейчас, исходя из уже проведённых рассуждений.",
    "uk": "Час на роздуми вичерпано, тому я даю відповідь зараз на основі вже зроблених міркувань.",
    "pl": "Skończył mi się czas na myślenie, więc podam teraz odpowiedź na podstawie dotychczasowego rozumowania.",
    "cs": "Čas na přemýšlení vypršel, proto teď odpovím na základě dosavadních úvah.",
    "tr": "Düşünme sürem doldu, bu yüzden şimdiye kadarki akıl yürütmeme dayanarak cevabımı veriyorum.",
    "ar": "انتهى وقت التفكير، لذا سأقدّم إجابتي الآن بناءً على ما توصلت إليه من استدلال حتى الآن.",
    "fa": "زمان فکر کردنم تمام شد، پس اکنون بر اساس استدلال‌های تاکنون پاسخم را می‌دهم.",
    "hi": "सोचने का समय समाप्त हो गया है, इसलिए मैं अब तक के तर्क के आधार पर अपना उत्तर देता हूँ।",
    "id": "Waktu berpikir saya sudah habis, jadi saya akan memberikan jawaban sekarang berdasarkan penalaran sejauh ini.",
    "vi": "Thời gian suy nghĩ đã hết, vì vậy tôi sẽ đưa ra câu trả lời ngay bây giờ dựa trên lập luận cho đến lúc này.",
    "th": "หมดเวลาคิดแล้ว ดังนั้นฉันจะให้คำตอบตอนนี้จากการให้เหตุผลที่ทำมาจนถึงตอนนี้",
    "zh": "思考时间已到，我将根据目前为止的推理直接给出答案。",
    "ja": "考える時間が尽きたので、ここまでの推論に基づいて今すぐ答えを出します。",
    "ko": "생각할 시간이 다 되었으므로, 지금까지의 추론을 바탕으로 지금 답을 드리겠습니다.",
    "sv": "Min betänketid är slut, så jag ger mitt svar nu utifrån resonemanget hittills.",
    "el": "Ο χρόνος σκέψης τελείωσε, οπότε δίνω τώρα την απάντησή μου με βάση τον συλλογισμό ως εδώ.",
    "he": "זמן החשיבה שלי נגמר, לכן אענה עכשיו על סמך ההיגיון עד כה.",
}
_ONE_CALL = Sampling()  # the group key of requests that need no phases
EXPLANATION_OPEN = '{"explanation": "'
SCORE_OPEN = '", "score": '
# The body of a JSON string and its closing quote: no quote, backslash or control character, so any prefix
# of it (a cut at the token cap) is still a valid string body.
EXPLANATION_REGEX = r'[^"\\\x00-\x1f]*"'


def closing_sentence(language: str) -> str:
    """The sentence that closes a budget-cut reasoning in ``language`` (its base code: ``pt-BR`` -> ``pt``).

    >>> closing_sentence("de-AT").startswith("Meine Bedenkzeit")
    True
    >>> closing_sentence("xx") == CLOSING_SENTENCES["en"]
    True
    """
    code = language.strip().lower().replace("_", "-")
    return CLOSING_SENTENCES.get(code) or CLOSING_SENTENCES.get(code.split("-")[0], CLOSING_SENTENCES["en"])


def needs_phases(sampling: Sampling) -> bool:
    """True when a judgment runs in phases: a thinking budget or constrained verdicts."""
    return sampling.thinking_budget is not None or sampling.verdict == "constrained"


@dataclass
class _Item:
    prompt: ChatPrompt
    labels: tuple[str, ...]
    language: str  # the reasoning's language
    text: str = ""  # the generation so far, as the final `Generation.text`
    prompt_tokens: int = 0
    completion_tokens: int = 0
    thinking_tokens: int = 0
    finish: str = "stop"
    error: str | None = None
    answered: bool = False  # the judge ended on its own before </think> (free verdicts keep that text)
    label_logprobs: dict[str, float] | None = None

    def continued(self, extra: str) -> ChatPrompt:
        """The original prompt followed by what was generated so far and ``extra``."""
        return replace(self.prompt, prefix=self.prompt.prefix + self.text + extra)

    def fail(self, gen: Generation) -> None:
        self.error, self.finish = gen.error or "unknown engine error", "error"


@dataclass(frozen=True)
class EngineCall:
    """One engine call of a phase: ``backend.generate(args)`` (`GenerationRequest`s) or
    ``backend.score_continuations(args)`` (``(prompt, continuation)`` pairs)."""

    method: str  # "generate" or "score_continuations"
    args: list[Any]


# A plan yields engine calls, is sent each call's answer (a list, one entry per argument) and returns the
# generations; a step of it returns nothing (it updates the items it was given).
Plan = Generator[EngineCall, list, list[Generation]]
Step = Generator[EngineCall, list, None]


def engine_problem(backend: object, requests: Sequence[GenerationRequest]) -> str | None:
    """Why ``backend`` cannot run the phases of ``requests`` (constrained verdicts on an engine that is not
    `Constrains`), or None."""
    if isinstance(backend, Constrains) or all(r.sampling.verdict != "constrained" for r in requests):
        return None
    return (f"constrained verdicts need an engine that decodes under a grammar and scores labels; "
            f"{type(backend).__name__} cannot (use transformers, vllm or openai)")


def plan(requests: Sequence[GenerationRequest]) -> Plan:
    """The engine calls that give one `Generation` per request, in order: one call for the requests without a
    budget or constrained verdicts, and the phases of each distinct sampling of the others (a judge sends one
    sampling a call, a pool replica may merge several), each phase one call; each `Generation` reads as one
    generation: reasoning, ``</think>``, answer.

    >>> from mr3_reward.backends.base import ChatPrompt
    >>> steps = plan([GenerationRequest(ChatPrompt("S", "U"), Sampling(thinking_budget=8), ("true", "false"))])
    >>> call = next(steps)
    >>> call.method, call.args[0].sampling.max_tokens, call.args[0].stop
    ('generate', 8, ('</think>',))
    """
    groups: dict[Sampling, list[int]] = {}
    for i, req in enumerate(requests):
        groups.setdefault(req.sampling if needs_phases(req.sampling) else _ONE_CALL, []).append(i)
    out: list[Generation | None] = [None] * len(requests)
    for sampling, idx in groups.items():
        chosen = [requests[i] for i in idx]
        if sampling is _ONE_CALL:
            gens = yield EngineCall("generate", chosen)
        else:
            gens = yield from _phased(chosen, sampling)
        for i, gen in zip(idx, gens):
            out[i] = gen
    return out  # type: ignore[return-value]


def _phased(requests: Sequence[GenerationRequest], sampling: Sampling) -> Plan:
    """The phases of requests of one sampling (see the module docstring)."""
    items = [_Item(req.prompt, req.labels, req.thinking_language) for req in requests]
    yield from _reason(items, sampling)
    if sampling.verdict == "constrained":
        yield from _explain([it for it in items if it.error is None], sampling)
        yield from _score([it for it in items if it.error is None], sampling)
    else:
        yield from _answer([it for it in items if it.error is None and not it.answered], sampling)
    return [
        Generation(text=it.text, finish_reason=it.finish, prompt_tokens=it.prompt_tokens,
                   completion_tokens=it.completion_tokens, error=it.error, thinking_tokens=it.thinking_tokens,
                   label_logprobs=it.label_logprobs)
        for it in items
    ]


def _reason(items: list[_Item], sampling: Sampling) -> Step:
    budget = min(sampling.thinking_budget or sampling.max_tokens, sampling.max_tokens)
    think = _one_phase(sampling, budget)
    gens = yield EngineCall("generate", [GenerationRequest(it.prompt, think, it.labels, stop=(THINK_CLOSE,))
                                         for it in items])
    for it, gen in zip(items, gens):
        it.prompt_tokens, it.completion_tokens, it.thinking_tokens = gen.prompt_tokens, gen.completion_tokens, gen.completion_tokens
        if gen.finish_reason == "error":
            it.fail(gen)
            continue
        reasoning, closed, _ = gen.text.partition(THINK_CLOSE)
        if closed:
            it.text = reasoning + THINK_CLOSE + "\n\n"
        elif gen.finish_reason == "length":  # the budget ran out: close the reasoning for the judge
            it.text = reasoning.rstrip() + "\n\n" + closing_sentence(it.language) + "\n" + THINK_CLOSE + "\n\n"
        elif sampling.verdict == "constrained":  # ended without closing: what it wrote is its reasoning
            it.text = reasoning.rstrip() + "\n" + THINK_CLOSE + "\n\n"
        else:  # a free judge that answered without closing </think> keeps its text, as without a budget
            it.text, it.answered = gen.text, True


def _one_phase(sampling: Sampling, max_tokens: int) -> Sampling:
    """The sampling of one phase's engine call: the same decoding, one generation of at most ``max_tokens``."""
    return sampling.with_(max_tokens=max_tokens, thinking_budget=None, verdict="free")


def _answer(items: list[_Item], sampling: Sampling) -> Step:
    reqs = [GenerationRequest(it.continued(""), _one_phase(sampling, max(1, sampling.max_tokens - it.thinking_tokens)),
                              it.labels) for it in items]
    for it, gen in zip(items, (yield EngineCall("generate", reqs)) if reqs else []):
        it.completion_tokens += gen.completion_tokens
        if gen.finish_reason == "error":
            it.fail(gen)
        else:
            it.text += gen.text
            it.finish = gen.finish_reason
            it.label_logprobs = dict(gen.label_logprobs) if gen.label_logprobs else None


def _explain(items: list[_Item], sampling: Sampling) -> Step:
    capped = _one_phase(sampling, sampling.explanation_tokens)
    reqs = [GenerationRequest(it.continued(EXPLANATION_OPEN), capped, it.labels, regex=EXPLANATION_REGEX)
            for it in items]
    for it, gen in zip(items, (yield EngineCall("generate", reqs)) if reqs else []):
        it.completion_tokens += gen.completion_tokens
        if gen.finish_reason == "error":
            it.fail(gen)
            continue
        body = gen.text.split('"', 1)[0].replace(THINK_CLOSE, "")
        # The grammar keeps the body a valid JSON string; dropping anything else keeps that true on an
        # engine whose grammar support let a character through.
        it.text += EXPLANATION_OPEN + "".join(ch for ch in body if ch != "\\" and ord(ch) >= 0x20)


def _score(items: list[_Item], sampling: Sampling) -> Step:
    pairs = [(it.continued(SCORE_OPEN), _score_text(label)) for it in items for label in it.labels]
    scores = (yield EngineCall("score_continuations", pairs)) if pairs else []
    at = 0
    for it in items:
        lps = scores[at:at + len(it.labels)]
        at += len(it.labels)
        if any(lp is None or not math.isfinite(lp) for lp in lps):
            it.error, it.finish = "the engine could not score the rubric's labels", "error"
            continue
        top = max(lps)
        total = math.log(sum(math.exp(lp - top) for lp in lps)) + top
        it.label_logprobs = {label: lp - total for label, lp in zip(it.labels, lps)}
        label = _draw(it.labels, lps, sampling, "\x00".join((it.prompt.system, it.prompt.user, it.prompt.prefix, it.text)))
        it.text += SCORE_OPEN + _score_text(label) + "}"
        it.finish = "stop"


def _score_text(label: str) -> str:
    """A label as the JSON string value after ``"score": ``."""
    return json.dumps(label, ensure_ascii=False)


def _draw(labels: Sequence[str], logprobs: Sequence[float], sampling: Sampling, context: str) -> str:
    """The verdict: the most probable label at temperature 0, otherwise a draw from the label distribution at
    the sampling temperature, seeded by the request's seed and its text (the same text whatever else runs)."""
    if sampling.temperature == 0:
        return labels[max(range(len(labels)), key=lambda i: (logprobs[i], -i))]
    scaled = [lp / sampling.temperature for lp in logprobs]
    top = max(scaled)
    weights = [math.exp(v - top) for v in scaled]
    if sampling.seed is None:
        rng = random.Random()
    else:
        rng = random.Random(hashlib.sha256(f"{sampling.seed}\x00{context}".encode("utf-8", "surrogatepass")).digest())
    return rng.choices(list(labels), weights=weights)[0]
