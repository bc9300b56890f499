"""Engines behind the judge. Each module imports its heavy dependency lazily."""

from mr3_reward.backends.base import Backend, ChatPrompt, Generation, GenerationRequest, chat_text

__all__ = ["Backend", "ChatPrompt", "Generation", "GenerationRequest", "chat_text"]
