"""Seeded judging is reproducible under concurrency (issue: concurrent calls must not consume each other's
randomness): three batches awaited together through `AsyncMR3Reward` generate exactly the texts the same
batches generate one after another, on a real in-process vLLM engine and through a real ``vllm serve``.

`AsyncMR3Reward` runs each call's judge in a worker thread (``asyncio.to_thread``); the recording judge makes
the three calls of a concurrent round meet (a barrier) before any judges, so they are in flight together.
Free verdicts and phased ones (a thinking budget with constrained verdicts: reasoning, explanation and label
scores, the verdict drawn with the request's seed) are both checked, on binary judgments (two labels to
score). Result cache off, no retries.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before anything imports huggingface_hub, which reads it once

import asyncio
import threading

import pytest

from mr3_reward.backends.openai import OpenAIBackend
from mr3_reward.judge import Judge
from mr3_reward.reward import AsyncMR3Reward
from vllm_engines import engine, server  # noqa: F401 (class-scoped fixtures)

pytestmark = pytest.mark.vllm

BATCHES = [
    (["What is 2 + 2?", "Name a primary color.", "Wie viele Beine hat eine Spinne?"],
     ["4", "Blue is one.", "Acht."]),
    (["Give a synonym of 'happy'.", "Quelle est la capitale de l'Italie ?", "What is the boiling point of water?"],
     ["Joyful.", "Rome.", "100 degrees Celsius at sea level."]),
    (["Translate 'cat' into Spanish.", "Is the Earth flat?", "Nenne eine Primzahl."],
     ["Gato.", "No, it is roughly a sphere.", "Sieben."]),
]
SAMPLINGS = {
    "free": dict(max_tokens=40),
    "budget+constrained": dict(max_tokens=48, thinking_budget=16, verdict="constrained", explanation_tokens=12),
}


class RecordingJudge(Judge):
    """A `Judge` that keeps the text generated for every request it judged and, when ``meet`` is set, waits
    at it before judging (so the calls of a concurrent round are in flight together)."""

    def __init__(self, *args, meet: threading.Barrier | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.meet = meet
        self.texts: dict[tuple, str] = {}

    def judge(self, requests, **kwargs):
        if self.meet is not None:
            self.meet.wait(timeout=600)
        out = super().judge(requests, **kwargs)
        self.texts.update({(r.prompt, r.responses): j.raw for r, j in zip(requests, out)})
        return out


async def rewards_of(reward: AsyncMR3Reward, together: bool) -> list:
    if together:
        return list(await asyncio.gather(*(reward(prompts, completions) for prompts, completions in BATCHES)))
    return [await reward(prompts, completions) for prompts, completions in BATCHES]


def check_concurrent_equals_sequential(backend, sampling: dict) -> None:
    runs = {}
    for together in (False, True):
        judge = RecordingJudge("smollm2-135m", backend=backend, cache=None, max_retries=0, seed=11,
                               meet=threading.Barrier(len(BATCHES)) if together else None, **sampling)
        rewards = asyncio.run(rewards_of(AsyncMR3Reward(judge=judge, mode="binary"), together))
        runs[together] = rewards, judge.texts
    (sequential, seq_texts), (concurrent, con_texts) = runs[False], runs[True]
    assert len(seq_texts) == sum(len(p) for p, _ in BATCHES) and all(seq_texts.values())
    assert con_texts == seq_texts
    assert concurrent == sequential


class TestInProcess:
    @pytest.mark.parametrize("sampling", list(SAMPLINGS))
    def test_three_concurrent_batches_generate_the_sequential_texts(self, engine, sampling):
        check_concurrent_equals_sequential(engine, SAMPLINGS[sampling])


class TestServer:
    @pytest.mark.parametrize("sampling", list(SAMPLINGS))
    def test_three_concurrent_batches_generate_the_sequential_texts(self, server, sampling):
        check_concurrent_equals_sequential(OpenAIBackend("smollm2-135m", server.url), SAMPLINGS[sampling])
