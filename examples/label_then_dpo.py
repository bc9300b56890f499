"""Label sampled responses with an mR3 judge, then train DPO on the pairs: two steps on CPU.

Run:  HF_HUB_OFFLINE=1 .venv/bin/python examples/label_then_dpo.py

The same labeling from the shell (resumable: kill it and run it again):

    HF_HUB_OFFLINE=1 .venv/bin/mr3 label examples/data/label_sample.jsonl out/label_sample_pairs \\
        --strategy tournament --opponents 1 --model smollm2-135m --max-tokens 16 --max-retries 0

`examples/data/label_sample.jsonl` holds 8 prompts in 5 languages with 3-4 sampled responses each, some of
them empty (policies do write those). The judge compares each response with the next one in both orders
(`tournament`, `opponents=1`), the highest win rate becomes `chosen` and the lowest `rejected`, and TRL's
DPOTrainer takes two steps on the pairs with the `tiny-random` policy.

SmolLM2-135M stands in for a real judge so this runs offline in about a minute; it almost never writes a
verdict, so most comparisons fail (typed: `no_answer`, `truncated`) and most rows drop as `judge_failed`.
The pairs that remain come from rows with an empty sample: an empty response loses to any other without a
judgment. With `rubricreward/mR3-Qwen3-4B-en-prompt-en-thinking` on a GPU (and `--max-tokens` in the
thousands) most rows become pairs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from mr3_reward.judge import Judge
from mr3_reward.labeling import label, print_summary
from mr3_reward.models import resolve

SAMPLE = Path(__file__).resolve().parent / "data" / "label_sample.jsonl"


def main(output_dir: str | None = None, judge: Judge | None = None, cache: str | None = "default",
         judge_max_tokens: int = 16):
    import torch

    out = Path(output_dir or tempfile.mkdtemp(prefix="label_then_dpo_"))
    # One intra-op thread: small models gain little from more, and on a busy CPU extra threads that wait for
    # each other make generation many times slower (62 s instead of 3 s for two judgments on a loaded 2-core box).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _label_and_train(out, judge or Judge("smollm2-135m", cache=cache, max_tokens=judge_max_tokens,
                                                    max_retries=0))
    finally:
        torch.set_num_threads(threads)


def _label_and_train(out: Path, judge: Judge):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    labeled = label(SAMPLE, out / "pairs", judge=judge, strategy="tournament", opponents=1, overwrite=True)
    print_summary(labeled)
    pairs = labeled.dataset
    if len(pairs) == 0:
        raise RuntimeError(f"the judge kept no pairs ({labeled.summary['dropped']}); nothing to train on")

    policy_dir = resolve("tiny-random")
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    policy = AutoModelForCausalLM.from_pretrained(policy_dir)
    args = DPOConfig(
        output_dir=str(out / "dpo"),
        per_device_train_batch_size=2,
        max_steps=2,
        max_length=128,
        learning_rate=1e-5,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        save_strategy="no",
        seed=0,
    )
    trainer = DPOTrainer(
        model=policy,
        args=args,
        # DPOTrainer needs only these three; the judge's scores and verdicts stay in `pairs` for inspection.
        train_dataset=pairs.select_columns(["prompt", "chosen", "rejected"]),
        processing_class=tokenizer,
    )
    trainer.train()
    return trainer, labeled


if __name__ == "__main__":
    trainer, labeled = main()
    print("DPO steps:", trainer.state.global_step, "log:", trainer.state.log_history[-1])
