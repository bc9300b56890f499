"""Engine faults behind the Ray judge pool: a replica killed mid-batch (ten times), an engine that crashes,
hangs, returns garbage or raises. Every request resolves to an answer or a typed failure within its
deadline, the failures show in the reward's metrics, and a training step goes on."""

import importlib.util
import random
import threading
import time
from pathlib import Path

import pytest

from mr3_reward.backends.base import ChatPrompt, GenerationRequest
from mr3_reward.backends.ray_pool import JudgePool
from mr3_reward.backends.testing import Fault, echo_verdict
from mr3_reward.judge import Judge
from mr3_reward.reward import MR3Reward
from mr3_reward.types import Failure, JudgeRequest, Sampling

pytestmark = pytest.mark.ray
SLOW_ENGINE = "mr3_reward.backends.testing:LatencyBackend"
SCHEMA = "'enum': ['true', 'false']"


def batch(n, tag):
    return [GenerationRequest(ChatPrompt(f"system {SCHEMA}", f"{tag} {i}"), Sampling(max_tokens=64)) for i in range(n)]


def expected(reqs):
    return [echo_verdict(r.prompt, r.sampling) for r in reqs]


def test_a_replica_killed_mid_batch_loses_nothing_ten_times(make_pool, ray_local):
    make_pool("kill", engine=SLOW_ENGINE, model="latency", backend_options={"per_token_s": 0.002, "tokens": 25})
    pool = JudgePool.connect("kill", chunk_size=4, max_inflight=8)
    rng = random.Random(5)
    deaths = 0
    for round_ in range(10):
        reqs = batch(64, f"round {round_}")
        out = {}
        worker = threading.Thread(target=lambda: out.setdefault("gens", pool.generate(reqs)))
        worker.start()
        time.sleep(rng.uniform(0.05, 0.3))  # somewhere inside the batch (it takes ~0.5-1 s)
        victim = rng.randrange(2)
        ray_local.kill(ray_local.get_actor(f"kill-replica-{victim}", namespace="mr3"), no_restart=False)
        worker.join(120)
        assert not worker.is_alive()
        gens = out["gens"]
        assert [g.text for g in gens] == expected(reqs), f"round {round_}: lost or misplaced answers"
        assert all(g.finish_reason == "stop" for g in gens)
        deaths = pool.stats["deaths"]
    assert deaths >= 5, pool.stats  # the kills really hit work in flight (not only idle replicas)
    restarts = sum(r["restarts"] for r in pool.status()["replicas"])
    assert restarts >= 5


def test_an_engine_that_crashes_its_process_is_restarted_and_its_work_resent(make_pool):
    make_pool("crash", backend_options={"respond": Fault("crash", replicas=(0,), after=3)})
    pool = JudgePool.connect("crash", chunk_size=2)
    reqs = batch(40, "crash")
    gens = pool.generate(reqs)
    assert [g.text for g in gens] == expected(reqs)
    assert pool.stats["deaths"] >= 1 and pool.stats["resent"] >= 1


def test_a_hung_replica_is_routed_around_within_the_deadline(make_pool):
    timeout = 2.0
    make_pool("hang", backend_options={"respond": Fault("hang", replicas=(0,))}, request_timeout_s=timeout)
    pool = JudgePool.connect("hang", chunk_size=4, max_attempts=3)
    reqs = batch(24, "hang")
    start = time.monotonic()
    gens = pool.generate(reqs)
    elapsed = time.monotonic() - start
    assert [g.text for g in gens] == expected(reqs)  # re-routed to the healthy replica
    assert pool.stats["timeouts"] >= 1
    assert elapsed < 3 * timeout + 5  # the deadline: max_attempts tries of request_timeout_s each (+ slack)
    # The controller restarts the stuck replica (it keeps hanging, so it is restarted again, then taken out).
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and pool.status()["replicas"][0]["restarts"] == 0:
        time.sleep(0.5)
    assert pool.status()["replicas"][0]["restarts"] >= 1


def test_when_every_replica_hangs_requests_become_typed_failures_in_time(make_pool, caplog):
    timeout = 1.5
    make_pool("allhang", backend_options={"respond": Fault("hang")}, request_timeout_s=timeout)
    judge = Judge(backend=JudgePool.connect("allhang", chunk_size=4, max_attempts=2), max_retries=0)
    reqs = [JudgeRequest(task="binary", prompt=f"q {i}", responses=("a",)) for i in range(8)]
    start = time.monotonic()
    judgments = judge.judge(reqs)
    elapsed = time.monotonic() - start
    assert [j.failure for j in judgments] == [Failure.ENGINE_ERROR.value] * 8
    # Each item names the pool and its last failure: a timeout, or the death of the replica the controller
    # restarted because it sat on a batch for too long.
    assert all(j.meta["error"].startswith("judge pool 'allhang': replica ") for j in judgments)
    assert all("(after 2 attempt(s))" in j.meta["error"] for j in judgments)
    assert elapsed < 2 * timeout + 5
    logged = [r.getMessage() for r in caplog.records if r.name == "mr3_reward.pool"]
    assert any("re-sending 4 item(s)" in m for m in logged) and any("become typed failures" in m for m in logged)


def test_garbage_and_raising_engines_give_typed_failures_counted_in_metrics(make_pool):
    make_pool("garbage", backend_options={"respond": Fault("garbage")})
    reward = MR3Reward(pool="garbage", mode="binary", cache=None, max_retries=1)
    logged = {}
    rewards = reward(["q"] * 4, ["a", "b", "c", "d"], log_metric=lambda k, v: logged.__setitem__(k, v))
    assert rewards == [None] * 4
    assert reward.last_metrics["failure_rate"] == 1.0 and logged["mr3/failure_rate"] == 1.0

    make_pool("raise", backend_options={"respond": Fault("raise", replicas=(0,))}, replicas=2)
    pool = JudgePool.connect("raise", chunk_size=2)
    judge = Judge(backend=pool, max_retries=0)
    reqs = [JudgeRequest(task="binary", prompt=f"q {i}", responses=("a",)) for i in range(10)]
    judgments = judge.judge(reqs)
    # FakeBackend turns a raising responder into per-item engine errors: typed failures for replica 0's items,
    # verdicts for replica 1's; nothing raised, nothing missing.
    assert len(judgments) == 10
    assert {j.failure for j in judgments} <= {None, Failure.ENGINE_ERROR.value}
    assert any(j.ok for j in judgments) and any(j.failure == Failure.ENGINE_ERROR.value for j in judgments)


def test_a_grpo_step_proceeds_while_a_replica_crashes(make_pool, tmp_path):
    make_pool("grpo-crash", backend_options={"respond": Fault("crash", replicas=(0,), after=1)})
    spec = importlib.util.spec_from_file_location("grpo_mr3", Path(__file__).parents[2] / "examples" / "grpo_mr3.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    pool = JudgePool.connect("grpo-crash", chunk_size=1)
    reward = MR3Reward(pool=pool, mode="binary", cache=None)
    trainer, _ = example.main(output_dir=str(tmp_path / "out"), reward=reward)
    assert trainer.state.global_step == 1
    assert list(trainer._logs["rewards"]["mr3"]) == [1.0] * 4  # the scripted judge says "true" to everything
    assert pool.stats["deaths"] >= 1


def test_a_replica_that_keeps_crashing_is_taken_out_and_reported(make_pool):
    make_pool("flaky", backend_options={"respond": Fault("crash", replicas=(0,))}, max_restarts=2)
    pool = JudgePool.connect("flaky", chunk_size=1, max_attempts=5)
    answered = 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and pool.status()["replicas"][0]["state"] != "out":
        reqs = batch(8, f"flaky {answered}")
        assert [g.text for g in pool.generate(reqs)] == expected(reqs)  # replica 1 answers what 0 dropped
        answered += 8
    replica = pool.status()["replicas"][0]
    assert replica["state"] == "out", replica
    assert "max_restarts=2" in replica["reason"]
    # Once it is out, clients stop sending to it: a new batch is answered without a single re-send.
    before = pool.stats["resent"]
    reqs = batch(8, "after")
    assert [g.text for g in JudgePool.connect("flaky").generate(reqs)] == expected(reqs)
    assert pool.stats["resent"] == before
