"""One rank of a 2-process GRPO run whose reward is ``MR3Reward(mode="group", pool=..., group_size=4)``:
the trainer of `tests/test_group_ranks_accelerate.py`, started there as

    RAY_ADDRESS=<gcs address> python -m accelerate.commands.launch --multi_gpu --num_processes 2 \
        --num_machines 1 --mixed_precision no --dynamo_backend no --main_process_port 0 \
        tests/group_ranks_trainer.py OUT_DIR POOL_NAME

(``--multi_gpu`` only picks torchrun as the launcher; with ``use_cpu=True`` each process runs on CPU and
joins the others over gloo. ``--cpu`` would start a single process.) Each rank appends one JSON line per
reward call to ``OUT_DIR/rank<k>.jsonl``: the step, the prompts and completions it held, the rewards it
returned, and a digest of every request it sent to the pool.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from mr3_reward.backends.ray_pool import JudgePool
from mr3_reward.cache import digest_parts
from mr3_reward.reward import MR3Reward

PROMPTS = ["Name a colour.", "Count to three.", "Say hello in French."]
GROUP_SIZE = 4
# A generation batch holds the 3 prompts x 4 completions, 6 per rank in sampler order, so rank 0 holds
# [a a a a b b] and rank 1 [b b c c c c]: group b is split across the ranks, a and c are whole on one.
PER_RANK = 6
STEPS = 2  # the same prompts again at step 1: groups of different steps must not meet


class RecordingPool(JudgePool):
    """A pool client that keeps a digest of each request it sends, i.e. what this process had judged."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[str] = []

    def generate(self, requests):
        self.sent += [digest_parts(r.prompt.system, r.prompt.user) for r in requests]
        return super().generate(requests)


class Recorded(MR3Reward):
    """`MR3Reward` that appends what each call held, returned and sent to the pool to ``log_path``."""

    def __init__(self, log_path: Path, **kwargs) -> None:
        super().__init__(**kwargs)
        self.log_path = log_path

    def __call__(self, prompts, completions, **kwargs):
        start = len(self.judge.backend.sent)
        rewards = super().__call__(prompts, completions, **kwargs)
        record = {"rank": int(os.environ["RANK"]), "step": kwargs["trainer_state"].global_step,
                  "prompts": list(prompts), "completions": list(completions), "rewards": rewards,
                  "sent": self.judge.backend.sent[start:]}
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        return rewards


def main(out_dir: Path, pool_name: str) -> None:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from mr3_reward.models import resolve

    policy_dir = resolve("tiny-random")
    reward = Recorded(out_dir / f"rank{os.environ['RANK']}.jsonl", pool=RecordingPool.connect(pool_name),
                      mode="group", cache=None, group_size=GROUP_SIZE, group_timeout_s=300)
    args = GRPOConfig(
        output_dir=str(out_dir / "trainer"),
        per_device_train_batch_size=PER_RANK,
        num_generations=GROUP_SIZE,
        max_completion_length=12,
        max_steps=STEPS,
        learning_rate=1e-5,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        bf16=False,
        save_strategy="no",
        seed=0,
    )
    trainer = GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(policy_dir),
        reward_funcs=[reward],
        args=args,
        train_dataset=Dataset.from_list([{"prompt": p} for p in PROMPTS]),
        processing_class=AutoTokenizer.from_pretrained(policy_dir),
    )
    trainer.train()
    assert trainer.state.global_step == STEPS
    assert trainer.accelerator.num_processes == 2 and trainer.accelerator.distributed_type == "MULTI_CPU"


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
