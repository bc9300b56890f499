"""What vLLM returns, read as ours: a ``RequestOutput`` as a `Generation` (label log-probabilities included),
and the summed prompt log-probabilities of a scored continuation, from the in-process engine or from its
server's JSON.

Pure functions over vLLM's output objects; vLLM itself is not imported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mr3_reward.backends.base import Generation, GenerationRequest
from mr3_reward.backends.hf import engine_error
from mr3_reward.backends.label_logprobs import MAX_TAIL_TOKENS, label_logprobs, request_labels
from mr3_reward.types import THINK_CLOSE

__all__ = ["continuation_logprob", "next_token_questions", "summed_answers", "to_generation"]


def to_generation(output: Any, request: GenerationRequest, with_logprobs: bool) -> Generation:
    """One vLLM ``RequestOutput`` as a `Generation`; a request the engine dropped is an engine error."""
    prompt_tokens = len(output.prompt_token_ids or ())
    if not output.outputs:
        return engine_error("vLLM returned no completion for this request", prompt_tokens)
    completion = output.outputs[0]
    reason = completion.finish_reason
    if reason not in ("stop", "length"):
        # "abort" (or None: unfinished) means the engine dropped the request; it is worth a retry.
        return engine_error(f"vLLM ended the request with finish_reason={reason!r}", prompt_tokens)
    return Generation(
        text=completion.text,
        finish_reason=reason,
        prompt_tokens=prompt_tokens,
        completion_tokens=len(completion.token_ids),
        label_logprobs=_completion_label_logprobs(completion, request) if with_logprobs else None,
    )


def _completion_label_logprobs(completion: Any, request: GenerationRequest) -> dict[str, float] | None:
    """The score labels' log-probabilities from a completion's per-token top log-probabilities."""
    prompt, labels = request.prompt, request_labels(request)
    if not labels or not completion.logprobs or THINK_CLOSE not in prompt.prefix + completion.text:
        return None
    # Only the tail is converted: a long reasoning trace has thousands of tokens and the verdict is last.
    ids = list(completion.token_ids)[-MAX_TAIL_TOKENS:]
    steps = list(completion.logprobs)[-MAX_TAIL_TOKENS:]
    if len(ids) != len(steps):
        return None
    pieces = []
    alternatives = []
    for token_id, step in zip(ids, steps):
        chosen = step.get(token_id) if step else None
        pieces.append(chosen.decoded_token if chosen is not None else None)
        alternatives.append([(lp.decoded_token, lp.logprob) for lp in (step or {}).values()])
    return label_logprobs(completion.text, pieces, alternatives, labels, prefix=prompt.prefix) or None


def continuation_logprob(prompt_logprobs: Sequence[Any] | None, ids: Sequence[int], start: int) -> float | None:
    """The sum of the log-probabilities of ``ids[start:]``, each given the ids before it, from vLLM's
    ``prompt_logprobs`` of the prompt ``ids``; None when one of them is missing.

    Position ``i`` of ``prompt_logprobs`` maps token ids to log-probabilities at that position (None at 0):
    ``Logprob`` objects keyed by int in process, ``{"logprob": ...}`` keyed by the id's string in the server's
    JSON.

    >>> continuation_logprob([None, {"7": {"logprob": -0.5}}, {"9": {"logprob": -1.0}}], [1, 7, 9], 1)
    -1.5
    >>> continuation_logprob([None, {"7": {"logprob": -0.5}}, {"8": {"logprob": -1.0}}], [1, 7, 9], 1) is None
    True
    """
    if prompt_logprobs is None or len(prompt_logprobs) < len(ids) or not 0 < start < len(ids):
        return None
    total = 0.0
    for position in range(start, len(ids)):
        step = prompt_logprobs[position] or {}
        entry = step.get(ids[position], step.get(str(ids[position])))
        if entry is None:
            return None
        total += entry["logprob"] if isinstance(entry, Mapping) else entry.logprob
    return total


def next_token_questions(rows: Sequence[tuple[Sequence[int], int]]) -> dict[tuple[int, ...], list[int]]:
    """What scoring ``(ids, start)`` rows asks an engine that reports chosen tokens' log-probabilities of its
    next token: for every continuation token ``ids[k]`` (``k >= start``), its prefix ``ids[:k]`` and the tokens
    asked after it. Rows with the same prompt share prefixes (each rubric label continues the same prompt, and
    labels share their first tokens), so each distinct prefix is asked once, for every token wanted after it.

    >>> next_token_questions([([1, 2, 7, 9], 2), ([1, 2, 7, 8], 2)])
    {(1, 2): [7], (1, 2, 7): [8, 9]}
    """
    asked: dict[tuple[int, ...], set[int]] = {}
    for ids, start in rows:
        for k in range(start, len(ids)):
            asked.setdefault(tuple(ids[:k]), set()).add(ids[k])
    return {prefix: sorted(tokens) for prefix, tokens in asked.items()}


def summed_answers(rows: Sequence[tuple[Sequence[int], int]],
                   answers: Mapping[tuple[int, ...], Mapping[int, float]]) -> list[float | None]:
    """Each row's continuation log-probability, summed over its tokens, from the answers to
    `next_token_questions` (prefix -> token -> log-probability); None where one is missing.

    >>> summed_answers([([1, 2, 7, 9], 2)], {(1, 2): {7: -0.5}, (1, 2, 7): {8: -2.0, 9: -1.0}})
    [-1.5]
    """
    out: list[float | None] = []
    for ids, start in rows:
        total: float | None = 0.0
        for k in range(start, len(ids)):
            lp = answers.get(tuple(ids[:k]), {}).get(ids[k])
            if lp is None:
                total = None
                break
            total += lp
        out.append(total)
    return out

