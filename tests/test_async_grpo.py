"""mR3 rewards under TRL's AsyncGRPO (`trl.experimental.async_grpo`).

Its `AsyncRolloutWorker` scores rollouts in a spawned child process: CUDA hidden, RANK/WORLD_SIZE/MASTER_*
removed, the reward functions pickled into it, one group per call with only completions, prompts,
completion_ids and dataset columns (no ``trainer_state``, ``log_extra`` or ``log_metric``). The fast tests
check each piece of that contract on its own; `test_rollout_worker_scores_groups_with_a_pool` runs TRL's own
worker against a ``vllm serve`` of smollm2-135m (the policy) and a local Ray pool of smollm2-135m (the judge).
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import os
import pickle
import queue
import time
from pathlib import Path

import pytest

from mr3_reward.backends.ray_pool import JudgePool
from mr3_reward.errors import ConfigError
from mr3_reward.reward import AsyncMR3Reward, MR3Reward

SEEN: list[dict] = []


def record_metrics(metrics: dict) -> None:
    """A module-level callback, so it pickles into the worker's child with the reward."""
    SEEN.append(dict(metrics))


# -- the pieces, without the worker -----------------------------------------------------------------------------
def test_a_pool_reward_pickles_to_its_configuration_and_connects_nothing(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("connected")

    monkeypatch.setattr(JudgePool, "_handle", refuse)
    for cls in (MR3Reward, AsyncMR3Reward):
        reward = cls(pool="mr3-judges", mode="group", cache=None, on_metrics=record_metrics)
        data = pickle.dumps(reward)
        assert len(data) < 10_000, len(data)
        clone = pickle.loads(data)
        assert clone.__dict__.get("_judge") is None  # built on the first call, in the process that calls
        assert clone.__name__ == "mr3" and clone.config.mode == "group"
        assert "pool='mr3-judges'" in repr(clone)
    # An OpenAI-compatible server is the same: its client is rebuilt on the first call (nothing listens on port 9).
    served = MR3Reward(model="smollm2-135m", backend="openai", backend_options={"base_url": "http://127.0.0.1:9/v1"},
                       cache=None)
    clone = pickle.loads(pickle.dumps(served))
    assert len(pickle.dumps(served)) < 10_000 and clone.__dict__.get("_judge") is None


def test_metrics_go_to_the_logger_and_the_callback_without_log_metric(caplog):
    SEEN.clear()
    reward = MR3Reward(model="fake", backend="fake", mode="binary", cache=None, on_metrics=record_metrics)
    with caplog.at_level(logging.INFO, logger="mr3_reward.reward"):
        assert reward(["2+2?"], ["4"]) == [1.0]
    assert SEEN and SEEN[0]["mr3/failure_rate"] == 0.0 and SEEN[0]["mr3/judgments"] == 1.0
    lines = [r.getMessage() for r in caplog.records if r.name == "mr3_reward.reward"]
    assert any("mr3/failure_rate=0" in line for line in lines), lines
    # With TRL's log_metric the numbers go there and the callback still gets them; the log line is not repeated.
    SEEN.clear()
    caplog.clear()
    logged = {}
    with caplog.at_level(logging.INFO, logger="mr3_reward.reward"):
        reward(["2+2?"], ["four"], log_metric=lambda k, v: logged.__setitem__(k, v))
    assert logged["mr3/judgments"] == 1.0 and SEEN[0]["mr3/judgments"] == 1.0
    assert not [r for r in caplog.records if "mr3/failure_rate" in r.getMessage()]
    with pytest.raises(ConfigError, match="on_metrics must be a callable"):
        MR3Reward(model="fake", backend="fake", cache=None, on_metrics="wandb")


def test_group_mode_judges_a_call_holding_one_group_without_group_size():
    from mr3_reward.backends.fake import FakeBackend
    from mr3_reward.backends.testing import longer_wins
    from mr3_reward.judge import Judge

    judge = Judge(backend=FakeBackend(respond=longer_wins), cache=None)
    reward = AsyncMR3Reward(judge=judge, mode="group")
    prompt = [{"role": "user", "content": "Say something."}]
    completions = [[{"role": "assistant", "content": text}] for text in ("a", "bbbbbb", "ccc")]
    rewards = asyncio.run(reward(prompts=[prompt] * 3, completions=completions, completion_ids=[[1], [2], [3]]))
    assert rewards == [0.0, 1.0, 0.5]


def test_an_in_process_engine_is_refused_in_the_workers_child(monkeypatch):
    from trl.experimental.async_grpo import async_rollout_worker

    reward = pickle.loads(pickle.dumps(MR3Reward(model="fake", backend="fake", mode="binary", cache=None)))
    # What the worker's child looks like from inside: TRL names the process and scrubs its environment.
    monkeypatch.setattr(multiprocessing.current_process(), "name", "grpo-rollout-worker-child")
    async_rollout_worker._scrub_child_env()
    assert reward(["2+2?"], ["4"]) == [1.0]  # the scripted engine is no model: allowed
    local = MR3Reward(model="tiny-random", backend="transformers", mode="binary", cache=None)
    clone = pickle.loads(pickle.dumps(local))
    with pytest.raises(ConfigError, match="mr3 serve"):
        clone(["2+2?"], ["4"])


@pytest.mark.ray
def test_an_unreachable_pool_gives_none_with_one_warning_and_the_loop_ticks(ray_local, caplog, monkeypatch):
    reward = AsyncMR3Reward(pool="nobody-serves-this", mode="binary", cache=None)
    ticks = []

    async def ticker():
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    async def main():
        task = asyncio.create_task(ticker())
        try:
            return await reward(["2+2?", "3+3?"], ["4", "6"])
        finally:
            task.cancel()

    def warnings():
        return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]

    with caplog.at_level(logging.WARNING, logger="mr3_reward.reward"):
        assert asyncio.run(main()) == [None, None]  # no pool of that name on this cluster
    assert len(warnings()) == 1 and "mr3 serve" in warnings()[0] and "nobody-serves-this" in warnings()[0]
    assert reward.last_metrics["pool_unreachable"] == 1.0 and reward.last_metrics["none_rewards"] == 2.0

    def unreachable(self):  # what joining a cluster that does not answer looks like: slow, then refused
        time.sleep(0.5)
        raise ConnectionError("no Ray cluster at '10.255.0.1:6379'")

    monkeypatch.setattr(JudgePool, "_handle", unreachable)
    caplog.clear()
    ticks.clear()
    with caplog.at_level(logging.WARNING, logger="mr3_reward.reward"):
        assert asyncio.run(main()) == [None, None]
    assert len(warnings()) == 1 and "10.255.0.1" in warnings()[0] and "mr3 serve" in warnings()[0]
    assert len(ticks) >= 10  # the event loop kept running while the reward waited


def test_the_example_reward_pickles_with_its_callback(monkeypatch):
    """examples/async_grpo_mr3.py needs GPUs to train (see its docstring); its reward is checked here."""
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[1] / "examples" / "async_grpo_mr3.py"
    spec = importlib.util.spec_from_file_location("async_grpo_mr3", path)
    example = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "async_grpo_mr3", example)  # as the child imports the script: by name
    spec.loader.exec_module(example)
    reward = example.make_reward("mr3-judges")
    assert isinstance(reward, AsyncMR3Reward) and reward.mode == "group"
    clone = pickle.loads(pickle.dumps(reward))
    assert clone.on_metrics is example.log_judge_health and "pool='mr3-judges'" in repr(clone)


# -- TRL's own rollout worker, a real policy server and a real judge pool ---------------------------------------
class Probed(AsyncMR3Reward):
    """The pool reward, also writing what the child looks like to a file (one JSON line per call)."""

    def __init__(self, probe: str, **kwargs):
        super().__init__(**kwargs)
        self.probe = probe

    async def __call__(self, prompts, completions, **kwargs):
        rewards = await super().__call__(prompts, completions, **kwargs)
        import torch

        seen = {"process": multiprocessing.current_process().name, "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "rank": os.environ.get("RANK"), "cuda_initialized": torch.cuda.is_initialized(),
                "cuda_available": torch.cuda.is_available(), "kwargs": sorted(kwargs), "rewards": rewards,
                "n": len(completions)}
        with open(self.probe, "a", encoding="utf-8") as f:
            f.write(json.dumps(seen) + "\n")
        return rewards


@pytest.mark.vllm
@pytest.mark.ray
@pytest.mark.model
def test_rollout_worker_scores_groups_with_a_pool(make_pool, tmp_path, monkeypatch):
    from accelerate.state import PartialState
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl.chat_template_utils import qwen3_template
    from trl.experimental.async_grpo.async_rollout_worker import AsyncRolloutWorker

    from mr3_reward.backends.vllm import VLLMServer
    from mr3_reward.models import resolve

    PartialState()  # the trainer's Accelerator does this; the worker logs through accelerate
    start = time.monotonic()
    monkeypatch.setenv("RANK", "0")  # as under accelerate: the worker must not hand it to the child
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    make_pool("async-grpo", model="smollm2-135m", engine="transformers", replicas=1,
              backend_options={"batch_size": 2})
    # The policy is smollm2-135m too: vLLM's CPU attention has no kernel for tiny-random's head size (16).
    server = VLLMServer("smollm2-135m", dtype="float32", max_model_len=512,
                        args=["--enforce-eager", "--kv-cache-memory-bytes", str(256 << 20)],
                        log_path=tmp_path / "vllm.log")
    server.start()
    worker = None
    try:
        probe = tmp_path / "probe.jsonl"
        # A budgeted, constrained verdict: a few tokens of thinking, then one of the rubric's labels, so even a 135M
        # judge gives real win rates within a few dozen tokens.
        reward = Probed(str(probe), pool="async-grpo", mode="group", cache=None, max_tokens=32, thinking_budget=8,
                        verdict="constrained", explanation_tokens=8, max_retries=0, on_metrics=record_metrics)
        tokenizer = AutoTokenizer.from_pretrained(resolve("smollm2-135m"))
        tokenizer.response_template = qwen3_template  # SmolLM2 speaks ChatML, whose assistant turns Qwen3's parses
        dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": f"What is {i}+{i}?"}], "answer": str(2 * i)}
                                     for i in range(1, 4)])
        worker = AsyncRolloutWorker(
            model_name="smollm2-135m", dataset=dataset, reward_funcs=[reward], processing_class=tokenizer,
            eos_token_ids=[tokenizer.eos_token_id], num_generations=2, max_inflight_tasks=2, max_tokens=8,
            vllm_server_url=server.url.removesuffix("/v1"), request_timeout=60, child_ready_timeout=240,
        )
        worker.start()
        samples = []
        deadline = time.monotonic() + 180
        while len(samples) < 4 and time.monotonic() < deadline:
            worker.check_health(stale_after_s=120)
            assert server.proc.poll() is None, (tmp_path / "vllm.log").read_text()[-3000:]
            try:
                samples.append(worker.rollout_buffer.get(timeout=1.0))
            except queue.Empty:
                pass
    finally:
        if worker is not None:
            worker.stop()
        server.stop()
    assert len(samples) == 4, f"{len(samples)} samples; vllm log: {(tmp_path / 'vllm.log').read_text()[-2000:]}"
    assert {s.group_id for s in samples} == {0, 1}
    for s in samples:
        value = s.metrics["rewards/mr3"]
        assert isinstance(value, float) and (value != value or 0.0 <= value <= 1.0)  # NaN: the worker's None
    calls = [json.loads(line) for line in probe.read_text().splitlines()]
    assert len(calls) >= 2 and all(c["n"] == 2 for c in calls)  # one group per call, judged as a group
    for c in calls:
        assert c["process"] == "grpo-rollout-worker-child" and c["cuda"] == "" and c["rank"] is None
        assert not c["cuda_initialized"] and not c["cuda_available"]
        assert c["kwargs"] == ["answer", "completion_ids"]  # no trainer_state, log_metric or log_extra
        assert all(r is None or isinstance(r, float) for r in c["rewards"])
    assert any(r is not None for c in calls for r in c["rewards"]), calls  # the pool really judged
    print(f"\nasync GRPO worker test: {time.monotonic() - start:.1f} s; rewards {[c['rewards'] for c in calls]}")
