"""Reading a judge's generation into a `Judgment`.

mR3 thinks inside ``<think> … </think>`` and then answers with a small object such as
``{"explanation": "...", "score": "Assistant A"}``. The reference implementation splits on the last
``</think>``, tries ``json.loads(answer)["score"]`` and otherwise a ``score: value`` regex. This module
does the same and recovers more: fenced or prose-wrapped objects, Python-dict quoting, several answer
objects, numbers and booleans as scores, unescaped quotes inside the explanation, and label spelling
differences. It never raises on model text and stays linear-time on hostile input, because a reward
function runs on every rollout of a training job and one odd generation must not stop it.

The reading is split by concern: `labels` matches a value to a label, `spans` finds and loads
``{...}`` spans within fixed budgets, `objects` reads the score and explanation out of a parsed
object, `fallback` reads ``score: value`` by regex, and `answer` picks the answer out of the text
after ``</think>``. This module turns that answer into a `Judgment`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mr3_reward.parsing.answer import _find_answer
from mr3_reward.parsing.fallback import _BareValue
from mr3_reward.parsing.labels import _coerce_labels, _match, normalize_label
from mr3_reward.types import THINK_CLOSE, THINK_OPEN, Failure, Judgment, Rubric

__all__ = ["parse_judgment", "normalize_label"]

# doctest.testmod(parsing) (tests/test_parsing.py) only collects objects defined in this module;
# naming the re-exported function here keeps its examples in that run.
__test__ = {"normalize_label": normalize_label}


def _strip_open_tag(text: str) -> str:
    stripped = text.lstrip()
    return stripped[len(THINK_OPEN) :] if stripped.startswith(THINK_OPEN) else text


def _failed(text: str, truncated: bool, fields: dict[str, Any], failure: Failure, reasoning: str = "",
            **meta: Any) -> Judgment:
    """A judgment without a score; generation cut off by the token limit is the cause to report."""
    failure = Failure.TRUNCATED if truncated else failure
    return Judgment(score=None, failure=failure.value, explanation=meta.pop("explanation", None),
                    reasoning=reasoning, raw=text, meta=meta, **fields)


def parse_judgment(
    text: str,
    labels: Sequence[str] | Rubric,
    prefix: str = "",
    *,
    truncated: bool = False,
    **fields: Any,
) -> Judgment:
    """Read a judge's generation into a `Judgment`, never raising on what the model wrote.

    The answer is what follows the last ``</think>``; JSON-like text in the reasoning is ignored.
    The answer object may be plain, fenced (```` ```json ````), Python-quoted, wrapped in prose or
    repeated (the last object with a ``score`` key wins); failing that, a ``score: value`` pattern is
    used. Without any ``</think>`` the whole generation is searched (small models that do not know
    think tags), unless the generation was cut off by the token limit.

    Failures set ``score=None`` and ``failure`` to a `Failure` value: ``no_answer`` (empty generation
    or nothing after ``</think>``), ``bad_json`` (an answer without a readable score),
    ``label_not_in_rubric`` (a score that is not one of the labels; the value read is in
    ``meta["raw_score"]``) and ``truncated`` (``truncated=True`` and no valid score found).

    Args:
        text (`str`): the generated text only, as the engine returned it (kept as ``raw``).
        labels (`Sequence[str]` or `Rubric`): the valid score labels.
        prefix (`str`, *optional*, defaults to `""`): assistant text that was part of the prompt,
            normally ``"<think>"`` plus an optional forcing sentence; it starts the reasoning.
        truncated (`bool`, *optional*, defaults to `False`): whether generation stopped at the token
            limit. An unfinished thought is then reported as ``truncated`` rather than searched.
        **fields: other `Judgment` fields to set on the result (``attempts``, token counts), so a caller
            that knows them gets one judgment built once; not ``score``, ``failure``, ``explanation``,
            ``reasoning``, ``raw`` or ``meta``, which the parser sets.

    Returns:
        `Judgment`: ``score`` is a label from ``labels`` or ``None``, and exactly one of ``score`` and
        ``failure`` is set. ``meta["parsed_with"]`` says how the score was read (``"json"``,
        ``"python_literal"`` or ``"regex"``).

    Raises:
        `ValueError`: ``labels`` is empty. `TypeError`: ``text`` is not a string. Both are caller bugs.

    Example:

    >>> j = parse_judgment(
    ...     '\\nBoth are polite; A answers the question.</think>\\n'
    ...     '{"explanation": "A is on topic.", "score": "Assistant A"}',
    ...     ["Assistant A", "Assistant B"],
    ...     prefix="<think>Okay, I have to think explicitly.",
    ... )
    >>> j.score, j.failure, j.explanation
    ('Assistant A', None, 'A is on topic.')
    >>> j.reasoning
    'Okay, I have to think explicitly.\\nBoth are polite; A answers the question.'
    >>> parse_judgment("Let me check.</think>\\n", ["true", "false"]).failure
    'no_answer'
    >>> parse_judgment("</think>{'score': 8}", [str(i) for i in range(1, 8)]).failure
    'label_not_in_rubric'
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_judgment needs the generated text as a str; got {type(text).__name__}")
    label_tuple = _coerce_labels(labels)
    if not label_tuple:
        raise ValueError("parse_judgment needs the rubric's labels; got none")
    return _read(text, label_tuple, prefix or "", truncated, fields)


def _read(text: str, labels: tuple[str, ...], prefix: str, truncated: bool, fields: dict[str, Any]) -> Judgment:
    """`parse_judgment` once its arguments are checked."""
    reasoning, answer, delimited = _split(_strip_open_tag(prefix), _strip_open_tag(text), truncated)
    if answer is None:
        # Cut off mid-thought: any object in it is reasoning, not an answer.
        return _failed(text, truncated, fields, Failure.TRUNCATED, reasoning)
    if not answer or answer.isspace():
        return _failed(text, truncated, fields, Failure.NO_ANSWER, reasoning)

    found, says_score = _find_answer(answer)
    if found is None:
        attempted = delimited or says_score or "{" in answer
        return _failed(text, truncated, fields, Failure.BAD_JSON if attempted else Failure.NO_ANSWER, reasoning)

    raw_value = str(found.value) if isinstance(found.value, _BareValue) else found.value
    score = _match(raw_value, labels)
    if score is None and isinstance(found.value, _BareValue):
        words = found.value.split(maxsplit=1)
        if len(words) > 1:
            score = _match(words[0], labels)
    if score is None:
        return _failed(text, truncated, fields, Failure.LABEL_NOT_IN_RUBRIC, reasoning,
                       explanation=found.explanation, raw_score=raw_value, parsed_with=found.parsed_with)
    return Judgment(score=score, explanation=found.explanation, reasoning=reasoning, raw=text,
                    meta={"parsed_with": found.parsed_with}, **fields)


def _split(prompt_thought: str, generated: str, truncated: bool) -> tuple[str, str | None, bool]:
    """(reasoning, answer, whether we know where the answer starts) of a generation, each without its
    opening ``<think>``; the answer is None for a generation cut off mid-thought."""
    close = generated.rfind(THINK_CLOSE)
    if close >= 0:
        return (prompt_thought + generated[:close]).strip(), generated[close + len(THINK_CLOSE) :], True
    if THINK_CLOSE in prompt_thought:
        # The prompt closed the thinking itself (no-thinking mode): everything generated is the answer.
        return prompt_thought[: prompt_thought.rfind(THINK_CLOSE)].strip(), generated, True
    if truncated:
        return (prompt_thought + generated).strip(), None, True
    # No think tags at all: search everything, as the reference does.
    return "", generated, False
