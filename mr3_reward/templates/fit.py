"""Fitting a prompt to the judge's input limit: responses cut to one common cap, found by bisection."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from mr3_reward.backends.base import ChatPrompt
from mr3_reward.templates.rendered import RenderedPrompt
from mr3_reward.types import JudgeRequest

# What replaces the end of a response cut to fit the judge's input limit: the judge sees that the text
# goes on, so an abrupt end is not held against the response.
TRUNCATION_MARK = "\n[... truncated to fit the judge's input limit ...]"
# A chat template adds at most this many tokens around the messages (role markers, a date line); a prompt
# whose UTF-8 size plus this is within the limit fits without being tokenized (a token is at least a byte).
TEMPLATE_ALLOWANCE = 256


def prompt_bytes(prompt: ChatPrompt) -> int:
    """UTF-8 size of a prompt's text: an upper bound on its tokens, chat template aside."""
    return sum(len(part.encode("utf-8", "surrogatepass")) for part in (prompt.system, prompt.user, prompt.prefix))


def approx_tokens(prompt: ChatPrompt) -> int:
    """A token count for engines that expose no tokenizer: UTF-8 bytes / 3, about 4 characters per token
    of English text and on the long side for other scripts (so a cut errs toward fitting), plus a
    chat-template allowance of 16.

    >>> approx_tokens(ChatPrompt("", "x" * 300, ""))
    116
    """
    return -(-prompt_bytes(prompt) // 3) + 16


def render_within(
    render: Callable[[JudgeRequest], RenderedPrompt],
    request: JudgeRequest,
    max_tokens: int,
    count: Callable[[ChatPrompt], int],
) -> RenderedPrompt:
    """Render ``request`` so the prompt takes at most ``max_tokens`` tokens by ``count``.

    A prompt that fits is the one ``render`` gives. Otherwise the responses are cut to one common
    character cap, the longest first (shorter ones stay whole), each cut one ending with
    `TRUNCATION_MARK`, and the cap is the largest that fits within about 1.5%; the result has
    ``truncated_input=True``. When even empty responses do not fit (a huge prompt, reference or
    rubric), the full rendering comes back with ``input_problem`` saying so. Small prompts are never
    tokenized (`TEMPLATE_ALLOWANCE`); a large one costs a few tokenizations of about ``max_tokens``
    tokens, never one of the whole input.

    render (`Callable[[JudgeRequest], RenderedPrompt]`): the renderer, `Renderer.render`.
    count (`Callable[[ChatPrompt], int]`): the prompt's length in tokens as the engine will see it
        (a backend's ``count_tokens``, or `approx_tokens`).
    """
    full = render(request)
    p = full.prompt
    if 4 * (len(p.system) + len(p.user) + len(p.prefix)) + TEMPLATE_ALLOWANCE <= max_tokens:
        return full  # at most 4 UTF-8 bytes a character: fits without even encoding it
    size = prompt_bytes(p)
    if size + TEMPLATE_ALLOWANCE <= max_tokens:
        return full
    responses = request.responses
    longest = max((len(r) for r in responses), default=0)
    if size <= 4 * max_tokens or not longest:
        n = count(full.prompt)  # a prompt this size may well fit: one exact count settles it
        if n <= max_tokens:
            return full
        if not longest:
            return replace(full, input_problem=(
                f"the prompt takes {n} tokens, more than the judge's input limit of {max_tokens}, and has no "
                "response to shorten; shorten the prompt, reference, options or rubric, or raise max_input_tokens"))

    def cut(cap: int) -> tuple[RenderedPrompt, int]:
        short = tuple(r if len(r) <= cap else r[:cap] + TRUNCATION_MARK for r in responses)
        rendered = render(replace(request, responses=short))
        return rendered, count(rendered.prompt)

    best, n = cut(0)
    if n > max_tokens:
        return replace(full, input_problem=(
            f"even with every response cut the prompt takes {n} tokens, more than the judge's input limit "
            f"of {max_tokens}; shorten the prompt, reference or rubric, or raise max_input_tokens"))
    # Grow the cap from about a token per character until it no longer fits, then bisect.
    lo, hi = 0, None
    cap = max(16, (max_tokens - n) // len(responses))
    while cap < longest:
        rendered, n = cut(cap)
        if n > max_tokens:
            hi = cap
            break
        lo, best, cap = cap, rendered, cap * 2
    else:
        if count(full.prompt) <= max_tokens:
            return full
        hi = longest
    while hi - lo > max(1, lo // 64):
        mid = (lo + hi) // 2
        rendered, n = cut(mid)
        if n <= max_tokens:
            lo, best = mid, rendered
        else:
            hi = mid
    return replace(best, truncated_input=True)
