"""One GRPO step with a rule checker in front of the judge (a cascade), on CPU.

Run:  HF_HUB_OFFLINE=1 .venv/bin/python examples/grpo_verifier_cascade.py

`number_match` reads the last number a completion writes in digits (any script: 42, ٤٢, ４２) and compares
it with the dataset's `reference`. Where it cannot tell (an answer in words, "zweiundvierzig", or no number),
the judge decides; where it can, no judge call is made. The judge is the one `make judge` builds
(`out/tiny-judge`) when it is there, else SmolLM2-135M. The trainer setup is examples/grpo_mr3.py's.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mr3_reward.reward import MR3Reward
from mr3_reward.verifiers import number_match

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grpo_mr3 import main as grpo_step  # noqa: E402  (the one-step GRPO run, with any reward)

BUILT_JUDGE = Path(__file__).resolve().parents[1] / "out" / "tiny-judge"


def cascade_reward(judge_model: str | None = None, ask_judge: str = "unsure", verifier=number_match,
                   **options) -> MR3Reward:
    settings = dict(thinking_budget=64, verdict="constrained", explanation_tokens=16, max_tokens=96, max_retries=0)
    return MR3Reward(
        model=judge_model or (str(BUILT_JUDGE) if BUILT_JUDGE.is_dir() else "smollm2-135m"),
        mode="binary",            # is the completion right, given the dataset's `reference` column?
        verifier=verifier,        # asked first: True / False / None (cannot tell)
        ask_judge=ask_judge,      # "unsure": the judge only where the verifier says None
        **{**settings, **options},
    )


def main(output_dir: str | None = None, reward: MR3Reward | None = None):
    return grpo_step(output_dir=output_dir, reward=reward or cascade_reward(cache=None))


if __name__ == "__main__":
    trainer, reward = main()
    print("rewards:", list(trainer._logs["rewards"][reward.__name__]))
    print("judge metrics:", reward.last_metrics)
