"""A seed means the same text whatever else runs: seeded judgments on the transformers backend (SmolLM2-135M on
CPU) awaited together, and two async rewards run side by side by a real TRL GRPO step, against the same calls
run one at a time. (Before the fix each seeded batch reseeded torch's global generator, and concurrent calls
reseeded and consumed each other's: 16 of 16 generations differed.)"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import asyncio
import threading

import pytest

from mr3_reward.judge import Judge
from mr3_reward.reward import AsyncMR3Reward

pytestmark = pytest.mark.model

BATCHES = [
    (["Name a colour.", "What is 2 + 2?"], ["Blue.", "Four."]),
    (["Wie heißt die Hauptstadt von Frankreich?", "Name a fruit."], ["Paris.", "A stone."]),
    (["Count to three.", "Say hello in French."], ["1, 2, 3.", "Bonjour."]),
]


@pytest.fixture(scope="module")
def smol():
    import torch

    from mr3_reward.backends.transformers import TransformersBackend

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # two OpenMP threads per process stall each other on a shared 2-core machine
    yield TransformersBackend("smollm2-135m", batch_size=4)
    torch.set_num_threads(before)


class Calls:
    """Wraps a backend's ``generate``: records each request's generated text, and how many calls were in flight
    at once; with ``meet=n``, the first ``n`` calls wait for each other before generating, so they overlap."""

    def __init__(self, backend, monkeypatch, meet=0):
        self.texts, self.in_flight, self.most = {}, 0, 0
        self._lock = threading.Lock()
        self._meet = threading.Barrier(meet, timeout=120) if meet else None
        real = backend.generate

        def generate(requests):
            with self._lock:
                self.in_flight += 1
                self.most = max(self.most, self.in_flight)
            if self._meet is not None and not self._meet.broken:
                self._meet.wait()
            try:
                out = real(requests)
            finally:
                with self._lock:
                    self.in_flight -= 1
            for r, g in zip(requests, out):
                self.texts[(r.prompt.user, r.prompt.prefix)] = g.text
            return out

        monkeypatch.setattr(backend, "generate", generate)


def seeded_reward(backend, **options):
    judge = Judge("smollm2-135m", backend=backend, cache=None, max_retries=0, temperature=0.6, seed=7, **options)
    return AsyncMR3Reward(judge=judge, mode="pointwise")


def test_three_seeded_batches_awaited_together_give_the_sequential_texts(smol, monkeypatch):
    reward = seeded_reward(smol, max_tokens=16)

    async def one_at_a_time():
        return [await reward(p, c) for p, c in BATCHES]

    async def together():
        return await asyncio.gather(*(reward(p, c) for p, c in BATCHES))

    alone = Calls(smol, monkeypatch)
    sequential = asyncio.run(one_at_a_time())
    monkeypatch.undo()
    met = Calls(smol, monkeypatch, meet=len(BATCHES))
    concurrent = asyncio.run(together())
    assert met.most == len(BATCHES)  # the three engine calls really were in flight at once
    assert len(alone.texts) == 6 and met.texts == alone.texts
    assert concurrent == sequential


class Recorded(AsyncMR3Reward):
    """`AsyncMR3Reward` that keeps what each call was given and returned."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = []

    async def __call__(self, prompts, completions, **kwargs):
        rewards = await super().__call__(prompts, completions, **kwargs)
        self.calls.append((list(prompts), list(completions), list(kwargs["reference"]), rewards))
        return rewards


def test_two_async_rewards_in_one_grpo_step_give_the_rewards_of_each_alone(smol, monkeypatch, tmp_path):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from mr3_reward.models import resolve

    # Constrained verdicts with soft scores: every reward is a float that moves with every sampled token.
    options = dict(thinking_budget=8, verdict="constrained", max_tokens=32, explanation_tokens=8)
    configs = [dict(mode="pointwise", soft=True, name="mr3_pointwise"),
               dict(mode="binary", soft=True, name="mr3_binary")]

    def rewards(kind):
        return [kind(judge=Judge("smollm2-135m", backend=smol, cache=None, max_retries=0, temperature=0.6, seed=7,
                                 **options), **config) for config in configs]

    side_by_side = rewards(Recorded)
    calls = Calls(smol, monkeypatch)
    policy = resolve("tiny-random")
    args = GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=2,
                      max_completion_length=8, max_steps=1, learning_rate=1e-5, logging_steps=1, report_to="none",
                      use_cpu=True, bf16=False, save_strategy="no", seed=0)
    data = Dataset.from_list([{"prompt": "What is the capital of France?", "reference": "Paris"},
                              {"prompt": "Wie viele Beine hat eine Spinne?", "reference": "Acht"}])
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(policy), reward_funcs=side_by_side, args=args,
                          train_dataset=data, processing_class=AutoTokenizer.from_pretrained(policy))
    trainer.train()
    assert trainer.state.global_step == 1
    assert calls.most >= 2  # the two rewards' engine calls overlapped
    monkeypatch.undo()

    for recorded, alone in zip(side_by_side, rewards(AsyncMR3Reward)):
        assert len(recorded.calls) == 1
        prompts, completions, references, got = recorded.calls[0]
        assert len(got) == 4 and all(r is not None for r in got), got
        assert asyncio.run(alone(prompts, completions, reference=references)) == got, recorded.__name__
