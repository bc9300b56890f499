"""The examples, run for real: a TRL GRPO step and an Online DPO step with MR3Reward (SmolLM2 judge)."""

import importlib.util
import math
from pathlib import Path

import pytest

from mr3_reward.reward import MR3Reward

pytestmark = pytest.mark.model
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Recording(MR3Reward):
    """Keeps what TRL passed and what the reward returned."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def __call__(self, prompts, completions, **kwargs):
        rewards = super().__call__(prompts, completions, **kwargs)
        columns = {k: kwargs[k] for k in ("reference", "language") if k in kwargs}
        self.calls.append((list(prompts), list(completions), columns, rewards, dict(self.judge.last_stats)))
        return rewards


def same(logged, returned):
    return all((math.isnan(a) and b is None) or a == pytest.approx(b) for a, b in zip(logged, returned))


def test_grpo_step_with_mr3_reward(tmp_path):
    example = load("grpo_mr3")
    reward = Recording(model="smollm2-135m", mode="binary", cache=tmp_path / "cache.sqlite", max_tokens=32, max_retries=0)
    trainer, reward = example.main(output_dir=str(tmp_path / "out"), reward=reward)
    assert trainer.state.global_step == 1
    prompts, completions, columns, rewards, stats = reward.calls[0]
    assert len(rewards) == len(completions) == 4
    assert all(r is None or 0.0 <= r <= 1.0 for r in rewards)
    assert columns["reference"] and len(columns["reference"]) == 4
    # What TRL logged is what the reward returned (None -> NaN, masked), and the verdict column is there.
    assert same(list(trainer._logs["rewards"]["mr3"]), rewards)
    verdicts = list(trainer._logs["extra"]["mr3_verdict"])
    assert len(verdicts) == 4 and all(v.startswith(("not judged: ", "true", "false")) for v in verdicts)
    assert stats["engine_items"] + stats["duplicates"] == 4
    logged = trainer.state.log_history[0]
    assert "mr3/failure_rate" in logged and "mr3/cache_hit_rate" in logged

    # The same batch again: answered from the cache, zero engine items, identical rewards.
    again = reward(prompts, completions, **columns)
    assert reward.judge.last_stats["engine_items"] == 0
    assert again == rewards


def test_online_dpo_step_with_mr3_reward(tmp_path):
    example = load("online_dpo_mr3")
    reward = Recording(model="smollm2-135m", mode="group", cache=None, max_tokens=24, max_retries=0)
    trainer, reward = example.main(output_dir=str(tmp_path / "out"), reward=reward)
    assert trainer.state.global_step == 1
    prompts, completions, _, rewards, _ = reward.calls[0]
    # Online DPO scores two completions per prompt in one call: [p0, p1, p0, p1].
    assert len(prompts) == 4 and prompts[:2] == prompts[2:]
    assert all(r is None or 0.0 <= r <= 1.0 for r in rewards)
    for i in range(2):  # each pair's win rates sum to 1 when judged
        if rewards[i] is not None and rewards[i + 2] is not None:
            assert rewards[i] + rewards[i + 2] == pytest.approx(1.0)
    assert any("loss" in k or "objective" in k for k in trainer.state.log_history[0])


def test_grpo_step_with_async_mr3_reward(tmp_path):
    """TRL runs an `async __call__` reward on its own event loop; the judge runs in a worker thread."""
    import threading

    from mr3_reward.reward import AsyncMR3Reward

    class RecordingAsync(AsyncMR3Reward):
        loops = []

        async def __call__(self, prompts, completions, **kwargs):
            self.loops.append(threading.current_thread().name)
            self.rewards = await super().__call__(prompts, completions, **kwargs)
            return self.rewards

    reward = RecordingAsync(model="smollm2-135m", mode="binary", cache=None, max_tokens=16, max_retries=0,
                            name="mr3_async")
    trainer, reward = load("grpo_mr3").main(output_dir=str(tmp_path / "out"), reward=reward)
    assert trainer.state.global_step == 1
    assert reward.loops and "AsyncLoop" in reward.loops[0]
    assert same(list(trainer._logs["rewards"]["mr3_async"]), reward.rewards)
    assert len(trainer._logs["extra"]["mr3_async_verdict"]) == 4
