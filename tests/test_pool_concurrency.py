"""A judge pool under concurrent calls, as TRL's AsyncGRPO makes them: many small calls (one group each) at
once, from the threads `AsyncMR3Reward` judges in. Two replicas of the fixed-latency engine `LatencyBackend`:

* a replica takes concurrent work: calls that reach one replica while its engine works overlap with it
  (``engine_calls`` > 1) instead of queueing behind it, and with ``engine_calls=1`` the chunks waiting
  together share one engine call;
* single-group calls made at once spread over the replicas (each between 40% and 60% of the work), because
  the client routes on what all its calls hold, not on what each call holds by itself.
"""

import asyncio
import time

import pytest

from mr3_reward.backends.base import ChatPrompt, GenerationRequest
from mr3_reward.backends.ray_pool import JudgePool
from mr3_reward.reward import AsyncMR3Reward
from mr3_reward.types import Sampling

pytestmark = pytest.mark.ray
ENGINE = "mr3_reward.backends.testing:LatencyBackend"
STEP_S = 0.4  # one engine call: 40 tokens x 10 ms


def requests(n, tag):
    return [GenerationRequest(ChatPrompt("system 'enum': ['true', 'false']", f"{tag} {i}"), Sampling(max_tokens=64))
            for i in range(n)]


def latency_pool(make_pool, name, engine_calls):
    make_pool(name, model="latency", engine=ENGINE, replicas=2, engine_calls=engine_calls,
              backend_options={"per_token_s": STEP_S / 40, "tokens": 40})
    return JudgePool.connect(name)


def test_calls_that_reach_one_replica_while_it_works_overlap(make_pool, ray_local):
    """Four one-chunk calls reach replica 0 a third of an engine call apart: each is answered about one engine
    call after it was sent, none waits for the ones before it (serialized, the last would wait ~2 calls)."""
    pool = latency_pool(make_pool, "overlap", engine_calls=8)
    _, replica = min(pool._members(refresh=True), key=lambda m: m[0])
    sent, refs = [], []
    for k in range(4):
        sent.append(time.monotonic())
        refs.append(replica.generate.remote(requests(4, f"call {k}")))
        time.sleep(STEP_S / 3)
    waits = []
    for at, ref in zip(sent, refs):
        assert len(ray_local.get(ref, timeout=60)) == 4
        waits.append(time.monotonic() - at)
    assert max(waits) < 1.5 * STEP_S, waits
    info = ray_local.get(replica.ping.remote())
    assert info["calls"] == 4 and info["served"] == 16  # four engine calls, in flight together


def test_chunks_waiting_on_a_one_call_engine_share_its_next_call(make_pool, ray_local):
    """With ``engine_calls=1`` (vLLM's in-process engine) the replica still holds many calls at once: chunks
    sent while its engine works are merged into one engine call, not run one by one."""
    pool = latency_pool(make_pool, "merge", engine_calls=1)
    _, replica = min(pool._members(refresh=True), key=lambda m: m[0])
    first = replica.generate.remote(requests(2, "first"))
    time.sleep(STEP_S / 4)
    start = time.monotonic()
    rest = [replica.generate.remote(requests(2, f"later {k}")) for k in range(8)]
    assert all(len(g) == 2 for g in ray_local.get([first, *rest], timeout=60))
    assert time.monotonic() - start < 2 * STEP_S  # one engine call after the first, not eight
    info = ray_local.get(replica.ping.remote())
    assert info["calls"] == 2 and info["served"] == 18 and info["peak"] >= 16


def test_single_group_calls_at_once_spread_over_the_replicas(make_pool):
    """64 concurrent calls of one group each (4 completions: 12 pairwise judgments, one chunk), awaited
    together on one event loop through `AsyncMR3Reward`: every call is judged, and each replica serves
    40-60% of the work (per-call routing sent every one-chunk call to the same idle replica)."""
    pool = latency_pool(make_pool, "spread", engine_calls=64)
    before = [r["served"] for r in pool.status()["replicas"]]
    reward = AsyncMR3Reward(pool="spread", mode="group", cache=None)

    async def all_groups():
        calls = [reward([f"prompt {g}"] * 4, [f"answer {g}.{k} " + "x" * k for k in range(4)]) for g in range(64)]
        return await asyncio.gather(*calls)

    rewards = asyncio.run(all_groups())
    assert all(r is not None for group in rewards for r in group)
    served = [r["served"] - b for r, b in zip(pool.status()["replicas"], before)]
    assert sum(served) == 64 * 12
    assert all(0.4 <= s / sum(served) <= 0.6 for s in served), served
