"""Budgeted reasoning and constrained verdicts through a 2-replica Ray judge pool of real SmolLM2-135M
engines (transformers): the replicas run the phases next to their engines, and the pool's own cap
(``mr3 serve --thinking-budget``) bounds what a client asks for."""

import pytest

from budget_cases import BUDGET, REQUESTS, check_budgeted
from mr3_reward.backends.ray_pool import JudgePool
from mr3_reward.judge import Judge
from mr3_reward.models import resolve

pytestmark = [pytest.mark.ray, pytest.mark.model]


@pytest.fixture(scope="module")
def tokenizer():
    import transformers

    return transformers.AutoTokenizer.from_pretrained(resolve("smollm2-135m"))


def test_a_two_replica_pool_judges_every_kind_within_the_budget(make_pool, tokenizer):
    make_pool("budget", model="smollm2-135m", engine="transformers", replicas=2,
              backend_options={"batch_size": 8}, request_timeout_s=600)
    pool = JudgePool.connect("budget", chunk_size=4)
    judge = Judge("smollm2-135m", backend=pool, cache=None, max_retries=0, max_tokens=96, seed=3,
                  thinking_budget=BUDGET, verdict="constrained", explanation_tokens=16)
    judgments = judge.judge(REQUESTS)
    check_budgeted(judgments, REQUESTS, judge, tokenizer, BUDGET)
    served = [r["served"] for r in pool.status()["replicas"]]
    assert sum(served) == len(REQUESTS) and all(s > 0 for s in served), served  # both replicas ran phases


def test_the_pools_budget_caps_what_a_client_asks_for(make_pool):
    make_pool("capped", model="smollm2-135m", engine="transformers", replicas=2, thinking_budget=8,
              request_timeout_s=600)
    judge = Judge("smollm2-135m", backend=JudgePool.connect("capped"), cache=None, max_retries=0, max_tokens=96,
                  thinking_budget=64, verdict="constrained", explanation_tokens=8)
    judgments = judge.judge(REQUESTS[:3])
    assert all(j.ok and j.meta["thinking_tokens"] <= 8 for j in judgments), [j.meta for j in judgments]


def test_replicas_run_the_phases_of_a_scripted_engine(make_pool):
    make_pool("phased-fake")  # engine "fake": every phase scripted, so this checks the transport alone
    judge = Judge("fake", backend=JudgePool.connect("phased-fake", chunk_size=2), cache=None, max_tokens=64,
                  thinking_budget=4, verdict="constrained")
    out = judge.judge(REQUESTS)
    assert [j.failure for j in out] == [None] * len(REQUESTS)
    assert all(abs(sum(j.label_probs.values()) - 1) < 1e-9 for j in out)
