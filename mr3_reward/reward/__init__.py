"""MR3Reward: an mR3 judge as a TRL reward function (GRPO, RLOO, Online DPO) or for a custom loop.

    trainer = GRPOTrainer(model=..., reward_funcs=[MR3Reward(model="rubricreward/mR3-Qwen3-4B-en-prompt-en-thinking",
                                                             mode="pointwise")], ...)

Modes and their rewards (``p`` is the combined preference for the completion, see `mr3_reward.debias`):

| mode        | judge task                 | reward                                                        | judgments per completion |
|-------------|----------------------------|---------------------------------------------------------------|--------------------------|
| pointwise   | pointwise 1..N             | (score - min) / (max - min), in [0, 1]                        | 1                        |
| binary      | binary true/false          | 1.0 for true, 0.0 for false (with a ``reference`` if given)    | 1                        |
| reference   | pairwise vs ``reference``  | p, in [0, 1] (1 = better than the reference)                   | 2 (both orders)          |
| strength    | 1-7 vs ``reference``       | 2p - 1, a signed margin in [-1, 1]                            | 2 (both orders)          |
| group       | pairwise within the group  | mean p over its comparisons = win rate, ties count 1/2        | see below                |

In ``group`` mode the completions of one prompt (GRPO's ``num_generations``, found by prompt identity)
are compared pairwise: round robin costs n(n-1)/2 pairs per group of n, ``group_opponents=k`` compares
each completion with the next k in the group (n*k pairs once k < n/2); each pair costs 2
judgments with ``debias="both"`` (the default for pairwise modes), 1 with ``"none"``.

`None` is returned for a completion the judge could not judge after its retries (TRL masks it), and
for a completion that is not a string. An empty completion gets the mode's minimum reward without a
judgment. Identical completions in a pair are a tie without a judgment.

Judge health goes to TRL's ``log_metric`` when the trainer passes one; otherwise to the ``mr3_reward.reward``
logger (INFO, one line per call). ``on_metrics=fn`` gets the same dict after every call either way. In TRL's
AsyncGRPO the reward runs in the rollout worker's CUDA-free child process: use ``AsyncMR3Reward(pool=...)``,
which pickles small and connects from there (docs/async_grpo.md).

The package follows one call: `rows` (batch -> rows), `options` (the checked configuration), `modes`
(scoring per mode), `groups` (group mode across ranks), `metrics` (TRL logs), `adapter` (the contract).
"""

from mr3_reward.reward.adapter import AsyncMR3Reward, MR3Reward
from mr3_reward.reward.options import MODES, PAIR_MODES, RewardConfig, reward_config
from mr3_reward.reward.rows import COLUMNS, stable_prompt_id, text_of_completion, text_of_prompt
from mr3_reward.scoring import numeric_scale
from mr3_reward.types import Sampling

__all__ = [
    "AsyncMR3Reward",
    "COLUMNS",
    "MODES",
    "MR3Reward",
    "PAIR_MODES",
    "RewardConfig",
    "Sampling",
    "numeric_scale",
    "reward_config",
    "stable_prompt_id",
    "text_of_completion",
    "text_of_prompt",
]
