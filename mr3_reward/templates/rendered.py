"""`RenderedPrompt`: what rendering gives for one request, and what fitting it to the input limit changed."""

from __future__ import annotations

from dataclasses import dataclass

from mr3_reward.backends.base import ChatPrompt

__all__ = ["RenderedPrompt"]


@dataclass(frozen=True)
class RenderedPrompt:
    """A rendered request: the prompt, its score labels and what rendering changed in the user's text.

    neutralized_lines (`int`): forged headers and chat-control tokens escaped (see `neutralize`).
    truncated_input (`bool`): responses were cut to fit the input limit (`Renderer.render_within`).
    input_problem (`str`, *optional*): why the prompt cannot fit the input limit even with every response
        cut; such a prompt is never sent to an engine.
    """

    prompt: ChatPrompt
    labels: tuple[str, ...]
    neutralized_lines: int = 0
    truncated_input: bool = False
    input_problem: str | None = None
