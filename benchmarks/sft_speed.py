"""Full fine-tuning against LoRA for the tiny judge's SFT, on this CPU, in one run:

    .venv/bin/python -m benchmarks sft_speed [--model smollm2-135m] [--batch 4] [--tokens 350] [--steps 4]
                                             [--rank 16]

One optimizer step (forward, backward, AdamW) on the same random batch of ``--batch`` sequences of ``--tokens``
tokens (the tiny judge's examples are 250-450 tokens), the median of ``--steps`` steps after one warm-up, for
a full fine-tune of the model and for LoRA (``peft``, rank ``--rank`` on every linear layer). What decides
the choice for `training/configs/tiny-judge.yaml` is the ratio full / LoRA: the forward and backward passes
through the frozen base dominate both. Writes ``benchmarks/results/sft_speed.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def step_seconds(model, batch, steps: int) -> float:
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        model(input_ids=batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks sft_speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=350)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rank", type=int, default=16)
    args = parser.parse_args(argv)

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from benchmarks.common import table, write
    from mr3_reward.models import resolve

    torch.manual_seed(0)
    path = resolve(args.model)
    batch = torch.randint(0, 40000, (args.batch, args.tokens))
    full = step_seconds(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), batch, args.steps)
    lora_model = get_peft_model(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32),
                                LoraConfig(r=args.rank, lora_alpha=2 * args.rank, target_modules="all-linear",
                                           task_type="CAUSAL_LM"))
    lora = step_seconds(lora_model, batch, args.steps)
    result = {"model": args.model, "batch": args.batch, "tokens": args.tokens, "lora_rank": args.rank,
              "threads": torch.get_num_threads(), "full_step_s": round(full, 2), "lora_step_s": round(lora, 2),
              "full_over_lora": round(full / lora, 3),
              "seconds_per_example": {"full": round(full / args.batch, 2), "lora": round(lora / args.batch, 2)}}
    write("sft_speed", result)
    table(f"SFT step, {args.batch} x {args.tokens} tokens, {args.model}", [
        ("full fine-tune, s/step", f"{full:.2f}", "", ""), (f"LoRA r{args.rank}, s/step", f"{lora:.2f}", "", ""),
        ("full / LoRA", f"{full / lora:.2f}", "", "")])


if __name__ == "__main__":
    main()
