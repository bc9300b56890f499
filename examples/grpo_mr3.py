"""One GRPO step with an mR3 judge as the reward, on CPU.

Run:  HF_HUB_OFFLINE=1 .venv/bin/python examples/grpo_mr3.py

The policy is `tiny-random` (a 2-layer random model) and the judge `smollm2-135m`, so this runs in
about a minute on a laptop CPU; swap in a real policy and `rubricreward/mR3-Qwen3-4B-en-prompt-en-thinking`
(on a GPU) for real training. The judge thinks within a budget and answers under the rubric's labels
(`verdict="constrained"`), so even this 135M judge gives a float reward for every completion; with
free answers it rarely writes a valid verdict, and its failures would come back as None (GRPO masks them).
"""

from __future__ import annotations

import tempfile

from mr3_reward.models import resolve
from mr3_reward.reward import MR3Reward

PROMPTS = [
    {"prompt": "What is the capital of France?", "reference": "Paris", "language": "en"},
    {"prompt": "Wie viele Beine hat eine Spinne?", "reference": "Acht", "language": "de"},
]


def main(output_dir: str | None = None, judge_model: str = "smollm2-135m", cache: str | None = "default",
         judge_max_tokens: int = 48, reward: MR3Reward | None = None):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    policy_dir = resolve("tiny-random")
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    policy = AutoModelForCausalLM.from_pretrained(policy_dir)

    reward = reward or MR3Reward(
        model=judge_model,
        mode="binary",  # is the completion correct, given the dataset's `reference` column?
        cache=cache,
        thinking_budget=16,  # the judge thinks at most 16 tokens (real mR3 judges: hundreds to thousands)
        verdict="constrained",  # the answer is decoded under the rubric's labels: always a verdict
        explanation_tokens=16,
        max_tokens=judge_max_tokens,
        max_retries=0,
    )
    args = GRPOConfig(
        output_dir=output_dir or tempfile.mkdtemp(prefix="grpo_mr3_"),
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=8,
        max_steps=1,
        learning_rate=1e-5,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        save_strategy="no",
        log_completions=True,
        seed=0,
    )
    trainer = GRPOTrainer(
        model=policy,
        reward_funcs=[reward],
        args=args,
        train_dataset=Dataset.from_list(PROMPTS),
        processing_class=tokenizer,
    )
    trainer.train()
    return trainer, reward


if __name__ == "__main__":
    trainer, reward = main()
    print("rewards:", list(trainer._logs["rewards"][reward.__name__]))
    print("judge metrics:", reward.last_metrics)
