"""Group mode across ranks inside a real multi-process trainer: `accelerate launch` starts 2 CPU processes
(gloo) that run GRPO on tiny-random with ``MR3Reward(mode="group", pool=..., group_size=4)``, a batch per
rank that splits a group between the ranks, and a local Ray pool whose scripted verdict depends on the
completions (`longer_wins`). The trainer is `tests/group_ranks_trainer.py`."""

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from mr3_reward.backends.ray_pool import NAMESPACE, JudgePool
from mr3_reward.backends.testing import longer_wins
from mr3_reward.reward import MR3Reward
from tests.group_ranks_trainer import GROUP_SIZE, PER_RANK, STEPS, RecordingPool

pytestmark = [pytest.mark.ray, pytest.mark.model]
REPO = Path(__file__).resolve().parents[1]
TRAINER = REPO / "tests" / "group_ranks_trainer.py"
POOL = "rank-groups"


def launch(out_dir: Path, ray_address: str) -> str:
    """Run the 2-process GRPO trainer; its output, or a failure with its tail. The whole process group is
    killed if it is still running when this returns (a timeout, a failed rank)."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
           str(TRAINER), str(out_dir), POOL]
    env = {**os.environ, "RAY_ADDRESS": ray_address, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=720)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"the 2-process GRPO run did not finish in 720 s:\n{output[-4000:]}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, output[-6000:]
    return output


def served() -> int:
    return sum(r["served"] for r in JudgePool.connect(POOL).status()["replicas"])


@pytest.mark.timeout(900)
def test_grpo_with_two_accelerate_processes_judges_each_group_once_and_whole(make_pool, ray_local, tmp_path):
    make_pool(POOL, backend_options={"respond": longer_wins})
    before = served()
    launch(tmp_path, ray_local.get_runtime_context().gcs_address)
    served_by_ranks = served() - before
    calls = {k: [json.loads(line) for line in (tmp_path / f"rank{k}.jsonl").read_text().splitlines()]
             for k in (0, 1)}
    assert [c["step"] for c in calls[0]] == [c["step"] for c in calls[1]] == list(range(STEPS))

    pool = RecordingPool.connect(POOL)
    sent = Counter()
    for c0, c1 in zip(calls[0], calls[1]):
        assert len(c0["prompts"]) == len(c1["prompts"]) == PER_RANK
        split = set(c0["prompts"]) & set(c1["prompts"])
        assert len(split) == 1, (c0["prompts"], c1["prompts"])  # one group spans both ranks

        # The rewards of a 1-process run over the same batch (rank 0's rows, then rank 1's).
        prompts, completions = c0["prompts"] + c1["prompts"], c0["completions"] + c1["completions"]
        assert c0["rewards"] + c1["rewards"] == MR3Reward(pool=pool, mode="group", cache=None)(prompts, completions)

        # Each group was judged once, whole, on one rank: the requests one rank sent for it are exactly
        # those of judging the group alone, all its pairs in both orders, and the other rank sent none.
        for prompt in dict.fromkeys(prompts):
            group = [completions[i] for i, p in enumerate(prompts) if p == prompt]
            assert len(group) == GROUP_SIZE and len(set(group)) == GROUP_SIZE
            pool.sent.clear()
            alone = MR3Reward(pool=pool, mode="group", cache=None)([prompt] * GROUP_SIZE, group)
            expected = Counter(pool.sent)
            assert sum(expected.values()) == GROUP_SIZE * (GROUP_SIZE - 1)  # 6 pairs x both orders
            by_rank = [Counter(d for d in c["sent"] if d in expected) for c in (c0, c1)]
            assert sorted(by_rank, key=len) == [Counter(), expected], prompt
            sent += expected
            if prompt in split:
                # Judged as two halves, the split group would get other rewards: the test would see it.
                halves = [[x for p, x in zip(c["prompts"], c["completions"]) if p == prompt] for c in (c0, c1)]
                assert halves[0] + halves[1] == group and [len(h) for h in halves] == [2, 2]
                apart = [r for h in halves for r in MR3Reward(pool=pool, mode="group", cache=None)([prompt] * 2, h)]
                assert apart != alone
    assert Counter(d for c in calls[0] + calls[1] for d in c["sent"]) == sent  # nothing judged twice or extra
    assert served_by_ranks == sum(sent.values())  # and the engine saw only those requests
    board = ray_local.get_actor(f"{POOL}-groups", namespace=NAMESPACE)
    assert ray_local.get(board.size.remote()) == 0  # every group met, was judged and collected
