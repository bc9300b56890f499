"""Engines without a model, for exercising a judge pool and for benchmarks: a fixed-latency engine that
behaves like a batched GPU engine, a verdict that depends on the prompt, and injected faults.

They run inside pool replicas, so everything here is importable by module path and picklable.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from mr3_reward.backends.base import ChatPrompt, Generation, GenerationRequest
from mr3_reward.backends.fake import first_label_verdict
from mr3_reward.types import Sampling

FAULTS = ("crash", "hang", "garbage", "raise")


def echo_verdict(prompt: ChatPrompt, sampling: Sampling) -> str:
    """A valid verdict whose explanation is a digest of the prompt, so a test can tell which request an
    answer belongs to (the score is the schema's first label)."""
    digest = hashlib.sha256((prompt.system + prompt.user).encode("utf-8")).hexdigest()[:16]
    return first_label_verdict(prompt, sampling).replace('"explanation": "fake"', f'"explanation": "{digest}"')


def longer_wins(prompt: ChatPrompt, sampling: Sampling) -> str:
    """A pairwise verdict for the longer of the two responses ("Assistant A" on a tie), so group rewards
    depend on the completions and on their order in the prompt, as a real judge's do."""
    parts = re.split(r"^[ \t]*# Assistant [AB][ \t]*$", prompt.user, flags=re.M)
    a = parts[1].split("# Your Response")[0].strip() if len(parts) > 2 else ""
    b = parts[2].split("# Your Response")[0].strip() if len(parts) > 2 else ""
    winner = "Assistant B" if len(b) > len(a) else "Assistant A"
    return f'Compared lengths.</think>\n{{"explanation": "longer", "score": "{winner}"}}'


def replica_index() -> int | None:
    """The pool replica this process serves (from its Ray actor name), or None outside a replica."""
    try:
        import ray

        name = ray.get_runtime_context().get_actor_name() if ray.is_initialized() else None
    except Exception:
        return None
    m = re.search(r"-replica-(\d+)$", name or "")
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class Fault:
    """A `FakeBackend` responder that answers like `echo_verdict`, except on the chosen replicas, where after
    ``after`` good answers (counted per process) it misbehaves:

    kind (`str`): ``crash`` (the process exits at once), ``hang`` (never answers), ``garbage`` (text that
        is not a verdict) or ``raise`` (the engine raises).
    replicas (`tuple[int, ...] | None`): replica indexes that misbehave; None = every replica.
    """

    kind: str
    replicas: tuple[int, ...] | None = None
    after: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULTS:
            raise ValueError(f"unknown fault {self.kind!r}; use one of: {', '.join(FAULTS)}")

    def __call__(self, prompt: ChatPrompt, sampling: Sampling) -> str:
        index = replica_index()
        if self.replicas is None or index in self.replicas:
            if _count() > self.after:
                if self.kind == "crash":
                    os._exit(1)
                if self.kind == "hang":
                    threading.Event().wait()
                if self.kind == "garbage":
                    return "\x00\ufffd}{ score: maybe <think></think> ]]"
                raise RuntimeError("injected engine fault")
        return echo_verdict(prompt, sampling)


_answered = 0
_answered_lock = threading.Lock()


def _count() -> int:
    global _answered
    with _answered_lock:
        _answered += 1
        return _answered


class LatencyBackend:
    """Answers every request with `echo_verdict` after sleeping the way a batched GPU engine spends time:
    a call costs ``prefill_s + tokens * per_token_s`` per step of up to ``max_batch`` sequences, whatever the
    number of sequences in the step. Stands in for GPU engines in the pool scaling benchmark.

    >>> b = LatencyBackend(per_token_s=0.0, tokens=8)
    >>> b.generate([GenerationRequest(ChatPrompt("s 'enum': ['true', 'false']", "u"), Sampling())])[0].completion_tokens
    8
    """

    def __init__(self, model: str = "latency", *, per_token_s: float = 0.001, tokens: int = 64,
                 prefill_s: float = 0.0, max_batch: int = 256) -> None:
        if per_token_s < 0 or prefill_s < 0 or tokens < 1 or max_batch < 1:
            raise ValueError("LatencyBackend needs per_token_s >= 0, prefill_s >= 0, tokens >= 1, max_batch >= 1")
        self.model_id = model
        self.revision = None
        self.per_token_s, self.tokens, self.prefill_s, self.max_batch = per_token_s, tokens, prefill_s, max_batch
        self.calls = 0

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        self.calls += 1
        steps = math.ceil(len(requests) / self.max_batch)
        time.sleep(steps * (self.prefill_s + self.tokens * self.per_token_s))
        return [Generation(text=echo_verdict(r.prompt, r.sampling), completion_tokens=self.tokens) for r in requests]
