"""A scripted backend for fast unit tests of pure logic and doctests. Never a stand-in for a real
engine in integration tests."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Sequence

from mr3_reward.backends.base import ChatPrompt, Generation, GenerationRequest
from mr3_reward.types import Sampling

_ENUM = re.compile(r"'enum': (\[[^\]]*\])")

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
        self.calls = 0  # generate() calls
        self.items = 0  # requests generated, over all calls

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
            if isinstance(result, Generation):
                out.append(result)
            else:
                tokens = len(result.split())
                out.append(Generation(text=result, prompt_tokens=len(req.prompt.user.split()), completion_tokens=tokens))
        return out
