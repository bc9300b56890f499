"""Reading a generation's answer the way the mR3 reference does (``--protocol reference``), or with our parser
(``--protocol ours``).

The reference (``utils.py``: ``parse_qwen3_response`` then ``extract_score``; ``eval.py``:
``get_response_and_gt``):

1. The answer is the text after the *first* ``</think>``, stripped; without one, the whole generation (a cut-off
   one too). For target-language thinking the reference puts ``<think>`` and the forcing sentence in front
   first; no forcing sentence of the packs contains a ``score:`` pattern, so ``<think>`` alone has the same
   effect: a bare JSON object without ``</think>`` is then no longer valid JSON.
2. ``json.loads(answer).get("score")``; if the answer is not valid JSON, the first match of
   ``['"]?score['"]?\\s*:\\s*`` followed by a quoted value or a bare one (up to a comma, ``}`` or whitespace),
   with ``"4.0"`` read as ``"4"``. JSON that is not an object, or has no ``score``, gives nothing.
3. Nothing -> the answer ``"Error"`` (`ERROR`): a failed parse, counted as wrong. Otherwise ``str(value)``;
   for HelpSteer3 ``int(value) - 4`` (so ``"5.0"`` from JSON fails, ``5.0`` does not), ``"Error"`` if that raises.

There is one sample per seed and no re-sampling. Which comparison decides "right" is the benchmark's
(see `mr3_reward.evaluation`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from mr3_reward.parsing import parse_judgment
from mr3_reward.types import THINK_CLOSE, THINK_OPEN, Failure, Judgment

ERROR = "Error"  # the reference's ERROR_PARSE_VALUE
_SCORE_PAIR = re.compile(r"""['"]?score['"]?\s*:\s*(?:['"]([^'"]+)['"]|([^,}\s]+))""")
_DECIMAL = re.compile(r"^\d+\.\d+$")
_INTEGER = re.compile(r"^\d+$")


def answer_text(generation: str, *, forced_thinking: bool = False) -> str:
    """The part of a generation the reference reads as the answer (step 1 above)."""
    text = (THINK_OPEN + generation) if forced_thinking else generation
    if THINK_CLOSE in text:
        return text.split(THINK_CLOSE, 1)[1].strip()
    return text


def extract_score(answer: str) -> Any:
    """The score the reference reads from an answer (step 2), or None.

    >>> extract_score('{"explanation": "fine", "score": "Assistant B"}')
    'Assistant B'
    >>> extract_score("The verdict: score: '4.0' because ...")
    '4'
    >>> print(extract_score('{"score": null}'))
    None
    """
    try:
        return json.loads(answer).get("score")
    except json.JSONDecodeError:
        match = _SCORE_PAIR.search(answer)
        if match is None:
            return None
        value = match.group(1) if match.group(1) is not None else match.group(2)
        # re.match, not fullmatch: like the reference, "5\n" (a quoted value may hold a newline) reads as 5.
        if _DECIMAL.match(value):
            return str(int(float(value)))
        if _INTEGER.match(value):
            return str(int(value))
        return value
    except Exception:  # JSON that is not an object (no .get), or too deep or large to read
        return None


def reference_answer(generation: str | None, *, strength: bool = False, forced_thinking: bool = False) -> str:
    """The answer string the reference compares with the gold, `ERROR` when there is none (steps 1-3).

    generation (`str`, *optional*): the judge's text after the prompt; None (no generation) gives `ERROR`.
    strength (`bool`): a 1..7 preference-strength answer, turned into HelpSteer3's -3..3 (``label - 4``).

    >>> reference_answer('ok</think>{"score": "Assistant A"}</think>{"score": "Assistant B"}')
    'Assistant A'
    >>> reference_answer('</think>{"score": "6"}', strength=True)
    '2'
    >>> reference_answer("I am not sure.")
    'Error'
    """
    if generation is None:
        return ERROR
    value = extract_score(answer_text(generation, forced_thinking=forced_thinking))
    if value is None:
        return ERROR
    if strength:
        try:
            return str(int(value) - 4)
        except (TypeError, ValueError, OverflowError):
            return ERROR
    return str(value)


def our_answer(judgment: Judgment, *, strength: bool = False) -> str | None:
    """Our reading of a `Judgment`: its label (HelpSteer3: on -3..3), None when it failed."""
    if not judgment.ok:
        return None
    return str(int(judgment.score) - 4) if strength else judgment.score


def parse_generation(generation: str | None, labels: tuple[str, ...], *, truncated: bool = False) -> Judgment:
    """Our parser on a saved generation (no prefix known: the generation starts the reasoning)."""
    if generation is None:
        return Judgment(score=None, failure=Failure.NO_ANSWER.value)
    return parse_judgment(generation, labels, THINK_OPEN, truncated=truncated)
