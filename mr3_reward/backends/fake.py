"""A scripted backend for fast unit tests of pure logic and doctests. Never a stand-in for a real
engine in integration tests."""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence

from mr3_reward.backends.base import ChatPrompt, Generation, GenerationRequest
from mr3_reward.types import THINK_CLOSE, Sampling

_ENUM = re.compile(r"'enum': (\[[^\]]*\])")
_SCORE = re.compile(r'"score":\s*"([^"]*)"')
_EXPLANATION = re.compile(r'"explanation":\s*"([^"]*)"')

Responder = Callable[[ChatPrompt, Sampling], "str | Generation"]


def first_label_verdict(prompt: ChatPrompt, sampling: Sampling) -> str:
    """Answer with the first label of the response schema, after a short fake reasoning."""
    m = _ENUM.search(prompt.system)
    labels = ast.literal_eval(m.group(1)) if m else ["unknown"]
    return f"Fake reasoning.</think>\n{{\"explanation\": \"fake\", \"score\": \"{labels[0]}\"}}"


class FakeBackend:
    """Calls ``respond(prompt, sampling)`` for each request and counts engine calls.

    respond (`Callable`, *optional*): returns the generated text (or a full `Generation`);
        defaults to answering the first label of the prompt's schema.

    >>> fb = FakeBackend()
    >>> fb.generate([GenerationRequest(ChatPrompt("s 'enum': ['true', 'false']", "u"), Sampling())])[0].text[-16:]
    '"score": "true"}'
    >>> fb.calls, fb.items
    (1, 1)
    """

    def __init__(self, respond: Responder | None = None, model_id: str = "fake") -> None:
        self.respond = respond or first_label_verdict
        self.model_id = model_id
        self.revision = None
        self.max_model_len: int | None = None
        self.calls = 0  # generate() calls
        self.items = 0  # requests generated, over all calls

    # `EngineInfo`: a revision that tests may set; no context; token counts estimated as the judge would.
    def count_tokens(self, prompt: ChatPrompt) -> int:
        from mr3_reward.templates import approx_tokens

        return approx_tokens(prompt)

    def observe(self, stats: Mapping[str, int]) -> None:
        pass

    # `Constrains`, for the phase logic's unit tests: the script is continued where the phase starts.
    def score_continuations(self, items: Sequence[tuple[ChatPrompt, str]]) -> list[float | None]:
        """The label the script would write gets probability 0.9; the others share the rest."""
        self.calls += 1
        out: list[float | None] = []
        for prompt, continuation in items:
            try:
                wanted = _SCORE.search(_text(self.respond(prompt, Sampling())))
            except Exception:  # a scripted engine fault
                out.append(None)
                continue
            hit = wanted is not None and continuation == json.dumps(wanted.group(1), ensure_ascii=False)
            out.append(math.log(0.9) if hit else math.log(0.1))
        return out

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        self.calls += 1
        self.items += len(requests)
        out = []
        for req in requests:
            try:
                result = self.respond(req.prompt, req.sampling)
            except Exception as exc:  # a scripted engine fault becomes a per-item error, as in real engines
                out.append(Generation(text="", finish_reason="error", error=f"{type(exc).__name__}: {exc}"))
                continue
            if isinstance(result, Generation) and not (req.stop or req.regex or THINK_CLOSE in req.prompt.prefix):
                out.append(result)
            else:
                out.append(_phase(req, _text(result)))
        return out


def _text(result: str | Generation) -> str:
    return result.text if isinstance(result, Generation) else result


def _phase(req: GenerationRequest, script: str) -> Generation:
    """The part of the scripted generation a request asks for: up to ``</think>`` for a reasoning phase, the
    answer after it for a continued prompt, the explanation for a grammar-constrained one; one word = one
    token, and a phase stops at ``max_tokens`` words."""
    prompt_tokens = len(req.prompt.user.split())
    if req.regex:
        m = _EXPLANATION.search(script)
        script = (m.group(1) if m else "fake") + '"'
    elif THINK_CLOSE in req.prompt.prefix:
        script = script.rpartition(THINK_CLOSE)[2] if THINK_CLOSE in script else script
    elif req.stop:
        cut = min((script.find(s) + len(s) for s in req.stop if s in script), default=-1)
        script = script[:cut] if cut >= 0 else script
    else:
        return Generation(text=script, prompt_tokens=prompt_tokens, completion_tokens=len(script.split()))
    words = script.split(" ")
    if (req.stop or req.regex) and len(words) > req.sampling.max_tokens:
        return Generation(" ".join(words[: req.sampling.max_tokens]), "length", prompt_tokens, req.sampling.max_tokens)
    return Generation(script, "stop", prompt_tokens, len(script.split()))
