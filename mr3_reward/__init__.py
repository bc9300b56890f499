"""mr3-reward: mR3 multilingual reasoning reward models as drop-in rewards for RLHF."""

from mr3_reward.backends.base import Backend, ChatPrompt, Generation, GenerationRequest
from mr3_reward.judge import Judge
from mr3_reward.reward import AsyncMR3Reward, MR3Reward
from mr3_reward.templates import LanguageMode, Renderer, RubricPack, render_reference
from mr3_reward.types import Failure, JudgeRequest, Judgment, Rubric, Sampling, TaskKind

__all__ = [
    "AsyncMR3Reward",
    "Backend",
    "ChatPrompt",
    "Failure",
    "Generation",
    "GenerationRequest",
    "Judge",
    "JudgeRequest",
    "Judgment",
    "LanguageMode",
    "MR3Reward",
    "Renderer",
    "Rubric",
    "RubricPack",
    "Sampling",
    "TaskKind",
    "render_reference",
]
__version__ = "0.1.0"
