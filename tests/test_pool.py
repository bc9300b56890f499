"""The Ray judge pool on a real local Ray instance: routing, backpressure, scaling, connection by name,
start-up errors, and a TRL GRPO step whose reward judges through the pool."""

import json
import os
import pickle
import subprocess
import sys
import threading

import pytest

from mr3_reward.backends.base import ChatPrompt, GenerationRequest
from mr3_reward.backends.ray_pool import JudgePool, PoolConfig
from mr3_reward.backends.testing import echo_verdict
from mr3_reward.judge import Judge
from mr3_reward.reward import MR3Reward
from mr3_reward.types import JudgeRequest, Sampling

pytestmark = pytest.mark.ray
SCHEMA = "'enum': ['true', 'false']"


def requests(n, tag="q"):
    return [GenerationRequest(ChatPrompt(f"system {SCHEMA}", f"{tag} {i}"), Sampling(max_tokens=64)) for i in range(n)]


def test_bad_pool_settings_name_the_fix(ray_local):
    with pytest.raises(ValueError, match="unknown engine 'gguf'.*package.module:Class"):
        JudgePool.start("m", engine="gguf", name="bad")
    with pytest.raises(ValueError, match="replicas must be a positive integer"):
        JudgePool.start("m", engine="fake", replicas=0, name="bad")
    with pytest.raises(ValueError, match="request_timeout_s must be > 0"):
        JudgePool.start("m", engine="fake", request_timeout_s=0, name="bad")
    assert PoolConfig(model="m", engine="mr3_reward.backends.testing:LatencyBackend").problems() == []
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        JudgePool("x", chunk_size=0)
    with pytest.raises(LookupError, match="mr3 serve --model MODEL --replicas N --name nobody"):
        JudgePool.connect("nobody")
    with pytest.raises(ValueError, match="pool= is the engine: drop judge=, backend="):
        MR3Reward(pool="nobody", backend="fake")


def test_answers_come_back_in_order_from_both_replicas(make_pool):
    make_pool("order")
    pool = JudgePool.connect("order", chunk_size=4)
    batch = requests(60)
    gens = pool.generate(batch)
    assert [g.text for g in gens] == [echo_verdict(r.prompt, r.sampling) for r in batch]
    status = pool.status()
    served = [r["served"] for r in status["replicas"]]
    assert sum(served) == 60 and all(s > 0 for s in served), served  # least-loaded routing used both
    assert pool.stats["resent"] == 0 and pool.stats["failed_items"] == 0


def test_reward_by_name_reports_cache_hits_to_the_pool(make_pool):
    make_pool("named")
    reward = MR3Reward(pool="named", mode="binary", cache=":memory:")
    assert reward.judge.model_id == "fake"
    prompts, completions = ["2+2?"] * 6, [f"answer {i}" for i in range(6)]
    assert reward(prompts, completions) == [1.0] * 6
    assert reward(prompts, completions) == [1.0] * 6
    assert reward.judge.last_stats["cache_hits"] == 6
    status = reward.judge.backend.status()
    assert status["clients"]["requests"] == 12 and status["clients"]["engine_items"] == 6
    assert status["cache_hit_rate"] == pytest.approx(0.5)
    # A pickled reward (e.g. sent to a data-loader worker) reconnects by name instead of pickling handles.
    clone = pickle.loads(pickle.dumps(reward))
    assert clone([" What is 3+3?"], ["6"]) == [1.0]


def test_backpressure_bounds_what_a_client_queues_on_a_replica(make_pool):
    make_pool("slow", engine="mr3_reward.backends.testing:LatencyBackend", model="latency", replicas=2,
              backend_options={"per_token_s": 0.001, "tokens": 20})
    pool = JudgePool.connect("slow", chunk_size=4, max_inflight=8)
    batch = requests(96)
    gens = pool.generate(batch)
    assert [g.text for g in gens] == [echo_verdict(r.prompt, r.sampling) for r in batch]
    peaks = [r["peak"] for r in pool.status()["replicas"]]
    assert max(peaks) <= 8, peaks  # never more than max_inflight items waiting on one replica
    assert sum(r["served"] for r in pool.status()["replicas"]) == 96


def test_scale_up_and_down(make_pool):
    pool = make_pool("scaled", replicas=1)
    states = pool.scale(3)["replicas"]
    assert [r["state"] for r in states] == ["ready"] * 3
    states = pool.scale(1)["replicas"]
    assert [r["state"] for r in states] == ["ready"]
    assert len(pool.generate(requests(10))) == 10
    # Restarting the same name with another model is refused with the fix.
    with pytest.raises(ValueError, match="already runs fake:fake; stop it first"):
        JudgePool.start("other-model", engine="fake", name="scaled", gpus_per_replica=0)


def test_start_errors_are_clear(make_pool, tmp_path):
    with pytest.raises(RuntimeError, match="could not start its engine"):
        make_pool("broken", engine="transformers", model=str(tmp_path / "no-such-model"), replicas=1)
    with pytest.raises(TimeoutError, match=r"needs \{'CPU': 1.0, 'GPU': 1.0\}.*lower --gpus-per-replica"):
        JudgePool.start("fake", engine="fake", name="gpu-less", replicas=1, gpus_per_replica=1, timeout_s=3)
    JudgePool.connect("gpu-less").shutdown()


def test_two_threads_share_the_pool(make_pool):
    """Two clients (as two trainer ranks would) judge at once through the same replicas."""
    make_pool("shared")
    out = {}

    def rank(k):
        judge = Judge(backend=JudgePool.connect("shared", chunk_size=2))
        reqs = [JudgeRequest(task="binary", prompt=f"rank {k} q {i}", responses=("yes",)) for i in range(20)]
        out[k] = [j.score for j in judge.judge(reqs)]

    threads = [threading.Thread(target=rank, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert out == {0: ["true"] * 20, 1: ["true"] * 20}


@pytest.mark.model
def test_grpo_step_with_a_pool_of_two_smollm2_replicas(make_pool, tmp_path):
    """Done-when of the pool: a real GRPO step whose MR3Reward connects to a 2-replica pool by name."""
    import importlib.util
    from pathlib import Path

    make_pool("smol", model="smollm2-135m", engine="transformers", replicas=2,
              backend_options={"batch_size": 1})
    spec = importlib.util.spec_from_file_location("grpo_mr3", Path(__file__).parents[1] / "examples" / "grpo_mr3.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    seen = []

    class Recorded(MR3Reward):
        def __call__(self, prompts, completions, **kwargs):
            rewards = super().__call__(prompts, completions, **kwargs)
            seen.append((list(prompts), list(completions), dict(kwargs), rewards))
            return rewards

    pool = JudgePool.connect("smol", chunk_size=1)  # one item per chunk, so both replicas get work
    reward = Recorded(pool=pool, mode="binary", cache=None, max_tokens=32, max_retries=0, seed=7)
    trainer, _ = example.main(output_dir=str(tmp_path / "out"), reward=reward)
    assert trainer.state.global_step == 1
    prompts, completions, kwargs, rewards = seen[0]
    assert len(rewards) == 4 and all(r is None or r in (0.0, 1.0) for r in rewards)
    # The pool's verdicts are the ones a local judge with the same model and seed gives (batch size 1 on
    # both sides: each item is seeded right before its own generation, wherever it runs).
    local = MR3Reward(model="smollm2-135m", mode="binary", cache=None, max_tokens=32, max_retries=0, seed=7,
                      backend_options={"batch_size": 1})
    columns = {k: kwargs[k] for k in ("reference", "language") if k in kwargs}
    assert local(prompts, completions, **columns) == rewards
    status = pool.status()
    assert [r["served"] > 0 for r in status["replicas"]] == [True, True]
    assert status["clients"]["engine_items"] >= 1


def test_a_judge_on_a_pool_fits_inputs_to_the_replicas_context():
    """No Ray needed: the client reads the context from the pool's config (``max_model_len`` option)."""
    pool = JudgePool("ctx")
    pool._controller = object()  # as if connected
    pool._config = PoolConfig(model="m", engine="vllm", backend_options={"max_model_len": 4096})
    assert pool.max_model_len == 4096
    assert Judge(backend=pool, max_tokens=1024).input_limit == 4096 - 1024
    pool._config = PoolConfig(model="m", engine="vllm")
    assert pool.max_model_len is None


def test_group_mode_across_ranks_judges_each_group_once_and_whole(make_pool):
    """Two ranks (processes with RANK=0 and 1) each hold 2 of the 4 completions of two prompts, as TRL's
    sampler can split a GRPO group. With group_size=4 they meet through the pool, each group is judged once,
    whole, and every rank gets the rewards a single process holding the whole batch would get."""
    from mr3_reward.backends.testing import longer_wins

    make_pool("groups", backend_options={"respond": longer_wins})
    prompts = ["p1"] * 4 + ["p2"] * 4
    completions = ["a", "bbbb", "cc", "ddddddd", "e", "fff", "gggggg", "hh"]
    whole = MR3Reward(pool="groups", mode="group", cache=None)(prompts, completions)
    assert sorted(whole[:4]) == [0.0, 1 / 3, 2 / 3, 1.0]  # a real ranking, not ties

    served_before = sum(r["served"] for r in JudgePool.connect("groups").status()["replicas"])
    halves = {0: [0, 1, 4, 5], 1: [2, 3, 6, 7]}  # rank 0 holds 2 of each group, rank 1 the other 2
    script = (
        "import json, sys, ray\n"
        "from mr3_reward.reward import MR3Reward\n"
        "ray.init(address='auto', log_to_driver=False)\n"
        "prompts, completions = json.loads(sys.argv[1])\n"
        "reward = MR3Reward(pool='groups', mode='group', cache=None, group_size=4, group_timeout_s=120)\n"
        "print(json.dumps(reward(prompts, completions)))\n"
    )
    ranks = {k: subprocess.Popen([sys.executable, "-c", script,
                                  json.dumps([[prompts[i] for i in idx], [completions[i] for i in idx]])],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env={**os.environ, "RANK": str(k), "RAY_ADDRESS": "auto"})
             for k, idx in halves.items()}
    out = {}
    for k, proc in ranks.items():
        stdout, stderr = proc.communicate(timeout=240)
        assert proc.returncode == 0, stderr[-2000:]
        out[k] = json.loads(stdout.strip().splitlines()[-1])
    split = [None] * 8
    for k, idx in halves.items():
        for i, r in zip(idx, out[k]):
            split[i] = r
    assert split == whole
    served = sum(r["served"] for r in JudgePool.connect("groups").status()["replicas"]) - served_before
    assert served == 2 * 6 * 2  # 2 groups x 6 pairs x both orders: judged once, not once per rank


def test_an_incomplete_group_is_judged_with_the_part_held_here(make_pool, caplog):
    from mr3_reward.backends.testing import longer_wins

    make_pool("lonely", backend_options={"respond": longer_wins})
    reward = MR3Reward(pool="lonely", mode="group", cache=None, group_size=4, rank=0, group_timeout_s=1)
    assert reward(["p"] * 2, ["short", "much longer"]) == [0.0, 1.0]
    assert any("fewer than 4 completions after 1 s" in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError, match="group_size .* needs mode='group' and pool="):
        MR3Reward(model="fake", backend="fake", mode="group", group_size=4)
