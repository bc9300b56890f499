"""TRL's AsyncGRPO (`trl.experimental.async_grpo`) with mR3 rewards judged by a Ray judge pool. Needs GPUs.

Run (one node; the judges on their own GPUs, the policy's vLLM server and the trainer on others):

    ray start --head --include-dashboard=false
    mr3 serve --model rubricreward/mR3-Qwen3-4B-en-prompt-en-thinking --replicas 2 --gpus-per-replica 1 \
        --resources '{"mr3_judge": 1}'     # after `ray start ... --resources '{"mr3_judge": 2}'` on judge nodes
    CUDA_VISIBLE_DEVICES=2 VLLM_SERVER_DEV_MODE=1 vllm serve Qwen/Qwen3-0.6B \
        --weight-transfer-config '{"backend":"nccl"}'
    CUDA_VISIBLE_DEVICES=3 RAY_ADDRESS=auto python examples/async_grpo_mr3.py --model Qwen/Qwen3-0.6B

AsyncGRPO scores rollouts in a spawned child process with CUDA hidden, one group per call, and passes no
``log_metric``. `AsyncMR3Reward` fits that: it pickles to its configuration (a few KB), connects to the pool from
the child (``RAY_ADDRESS``, or ``JudgePool(name, address=...)``), judges in a thread so the child's loop keeps
its heartbeat, and sends its judge health to the ``mr3_reward.reward`` logger and to ``on_metrics``. A pool that is
down gives that group None rewards (masked by the trainer) and one warning; the loop goes on.

AsyncGRPOTrainer itself does not run on CPU (its policy attends through a flash-attention kernel and its weight
sync is NCCL), so the tests run TRL's rollout worker with this reward on CPU instead
(tests/test_async_grpo.py). See docs/async_grpo.md for sizing the pool.
"""

from __future__ import annotations

import argparse
import logging

from mr3_reward.reward import AsyncMR3Reward

# At the top level, not under __main__: the worker's child re-imports this script, and its judge health goes to
# the `mr3_reward.reward` logger there.
logging.basicConfig(level=logging.INFO)

PROMPTS = [
    {"prompt": [{"role": "user", "content": "What is the capital of France?"}], "reference": "Paris"},
    {"prompt": [{"role": "user", "content": "Wie viele Beine hat eine Spinne?"}], "reference": "Acht",
     "language": "de"},
]


def log_judge_health(metrics: dict[str, float]) -> None:
    """`on_metrics` callback. Module-level, so it pickles into the rollout worker's child with the reward; swap
    in ``wandb.log`` (after ``wandb.init`` in the child) or a metrics client of your own."""
    logging.getLogger("async_grpo_mr3").info("judge: %s", metrics)


def make_reward(pool: str = "mr3-judges", mode: str = "group") -> AsyncMR3Reward:
    """The reward for AsyncGRPO: group mode ranks each prompt's completions against each other (one call = one
    group, so no ``group_size`` is needed)."""
    return AsyncMR3Reward(pool=pool, mode=mode, on_metrics=log_judge_health)


def main(model: str, pool: str = "mr3-judges", vllm_url: str = "http://localhost:8000",
         output_dir: str = "async_grpo_mr3", max_steps: int = 100, num_generations: int = 8):
    from datasets import Dataset
    from trl.experimental.async_grpo import AsyncGRPOConfig, AsyncGRPOTrainer

    args = AsyncGRPOConfig(
        output_dir=output_dir,
        vllm_server_base_url=vllm_url,
        num_generations=num_generations,
        max_completion_length=512,
        max_steps=max_steps,
        dtype="bfloat16",  # the same as `vllm serve --dtype`
        logging_steps=1,
        report_to="none",
    )
    trainer = AsyncGRPOTrainer(model=model, reward_funcs=[make_reward(pool)], args=args,
                               train_dataset=Dataset.from_list(PROMPTS * 64))
    trainer.train()
    return trainer


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="the policy; the same model `vllm serve` serves")
    parser.add_argument("--pool", default="mr3-judges", help="the judge pool's name (`mr3 serve --name`)")
    parser.add_argument("--vllm-url", default="http://localhost:8000")
    parser.add_argument("--output-dir", default="async_grpo_mr3")
    parser.add_argument("--max-steps", type=int, default=100)
    cli = parser.parse_args()
    main(cli.model, cli.pool, cli.vllm_url, cli.output_dir, cli.max_steps)
