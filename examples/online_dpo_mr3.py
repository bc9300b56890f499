"""One Online DPO step with an mR3 judge ranking the two sampled completions, on CPU.

Run:  HF_HUB_OFFLINE=1 .venv/bin/python examples/online_dpo_mr3.py

Online DPO samples two completions per prompt and keeps the higher-rewarded one as "chosen".
`mode="group"` compares the two directly (both orders, so the judge's position bias cancels).
Note: TRL's Online DPO counts a None reward as 0 (GRPO and RLOO mask it); constrained verdicts (used
here) make failures impossible but for engine errors, and `reward.last_metrics["none_rewards"]` shows any.
"""

from __future__ import annotations

import tempfile

from mr3_reward.models import resolve
from mr3_reward.reward import MR3Reward

PROMPTS = [{"prompt": "Name a primary colour."}, {"prompt": "¿Cuánto es 2 + 3?", "language": "es"}]


def main(output_dir: str | None = None, judge_model: str = "smollm2-135m", cache: str | None = "default",
         judge_max_tokens: int = 48, reward: MR3Reward | None = None):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer

    policy_dir = resolve("tiny-random")
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    policy = AutoModelForCausalLM.from_pretrained(policy_dir)
    reward = reward or MR3Reward(model=judge_model, mode="group", cache=cache, max_tokens=judge_max_tokens,
                                 thinking_budget=16, verdict="constrained", explanation_tokens=16, max_retries=0)
    args = OnlineDPOConfig(
        output_dir=output_dir or tempfile.mkdtemp(prefix="online_dpo_mr3_"),
        per_device_train_batch_size=2,
        max_new_tokens=8,
        max_length=64,
        max_steps=1,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        save_strategy="no",
    )
    rows = [{"language": "en", **r} for r in PROMPTS]
    trainer = OnlineDPOTrainer(model=policy, reward_funcs=reward, args=args,
                               train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    trainer.train()
    return trainer, reward


if __name__ == "__main__":
    trainer, reward = main()
    print("judge metrics:", reward.last_metrics)
    print("log:", trainer.state.log_history[-1])
