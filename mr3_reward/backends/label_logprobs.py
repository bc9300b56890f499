"""Score-label log-probabilities from an engine's per-token top log-probabilities, for soft rewards.

Engines that report the top-k alternatives of every generated token (vLLM in-process, an OpenAI-compatible
server with ``logprobs=k``) let a judge say more than its verdict: at the token where the score value is
written, how likely each rubric label was. This module finds that token and maps the alternatives there to
labels. It works on strings only (token pieces as the engine decoded them), so both backends share it and
no tokenizer is needed.

How it works, on ``{"explanation": "...", "score": "Assistant B"}``:

1. The answer is what follows the last ``</think>`` (as for the parser); the value starts after the last
   ``score`` key's colon and its optional opening quote.
2. Token pieces are aligned with the text walking back from its end: the verdict sits at the end, and a
   walk from the start would drift over multi-byte characters that span several tokens.
3. From the value's first token on, the labels still possible are narrowed by what was generated; the first
   token that tells them apart (``" B"`` after ``"Assistant"``, not the shared ``"Ass"``) is the divergence
   point. Each alternative there that continues exactly one label counts for that label (several such
   alternatives add up); alternatives that fit several labels or none are ignored.

Labels whose continuation is not among the reported top-k are left out: the consumers (`mr3_reward.debias`,
`mr3_reward.reward`) normalize over the labels present, so a missing label counts as improbable.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Sequence

from mr3_reward.backends.base import ChatPrompt, GenerationRequest
from mr3_reward.types import THINK_CLOSE

__all__ = ["MAX_TAIL_TOKENS", "label_logprobs", "request_labels", "schema_labels"]

# The verdict is at the end of the generation; this many trailing tokens are enough to reach it even when an
# explanation follows the score, and bound the work on 16k-token reasoning traces.
MAX_TAIL_TOKENS = 512

_ENUM = re.compile(r"""['"]enum['"]\s*:\s*(\[[^\]]*\])""")
_SCORE_VALUE = re.compile(r"""["']?score["']?\s*[:=]\s*["']?""", re.IGNORECASE)
# What may follow a complete label inside one token: a closing quote, separator, brace or whitespace.
_AFTER_LABEL = set("\"',}] \n\t\r")


def schema_labels(prompt: ChatPrompt) -> tuple[str, ...] | None:
    """The score labels of a rendered mR3 prompt: the ``enum`` of the response schema in the system message.

    The schema is printed last in the system message (as a Python dict repr), so the last ``enum`` is its.

    >>> schema_labels(ChatPrompt("# Response Format\\n{'score': {'type': 'string', 'enum': ['true', 'false']}}", "u"))
    ('true', 'false')
    >>> schema_labels(ChatPrompt("no schema here", "u")) is None
    True
    """
    matches = _ENUM.findall(prompt.system)
    if not matches:
        return None
    try:
        labels = ast.literal_eval(matches[-1])
    except (ValueError, SyntaxError):
        return None
    if not isinstance(labels, list) or not labels:
        return None
    return tuple(str(label) for label in labels)


def request_labels(request: GenerationRequest) -> tuple[str, ...] | None:
    """The score labels of a request: those the judge sent (``request.labels``), else, for a caller that sent
    none, the ones `schema_labels` reads back from its prompt.

    >>> from mr3_reward.types import Sampling
    >>> request_labels(GenerationRequest(ChatPrompt("s", "u"), Sampling(), labels=("yes", "no")))
    ('yes', 'no')
    >>> request_labels(GenerationRequest(ChatPrompt("'enum': ['true', 'false']", "u"), Sampling()))
    ('true', 'false')
    """
    return request.labels or schema_labels(request.prompt)


def _fits(remainder: str, piece: str) -> bool:
    """Whether generating ``piece`` keeps the label with this not-yet-written ``remainder`` possible."""
    rem, got = remainder.casefold(), piece.casefold()
    if rem.startswith(got):
        return True
    # A piece may finish the label and go on with its closing quote ('4"'), but not with more label text.
    return got.startswith(rem) and got[len(rem)] in _AFTER_LABEL


def label_logprobs(
    text: str,
    pieces: Sequence[str | None],
    alternatives: Sequence[Sequence[tuple[str | None, float]]],
    labels: Sequence[str],
    prefix: str = "",
) -> dict[str, float] | None:
    """Log-probability of each score label at the token where the judge wrote its verdict.

    Args:
        text (`str`): the generated text, as the engine returned it.
        pieces (`Sequence[str]`): the decoded text of each generated token; may cover only the last tokens
            of the generation (a suffix), as long as they reach back to the score value.
        alternatives (`Sequence[Sequence[tuple[str, float]]]`): for each of those tokens, the engine's top
            alternatives as ``(decoded text, logprob)`` pairs, the generated token included.
        labels (`Sequence[str]`): the rubric's score labels.
        prefix (`str`): the assistant prefix (``<think>`` and any forcing sentence), which precedes ``text``.

    Returns:
        `dict[str, float] | None`: label -> log-probability for the labels found among the alternatives at the
        divergence point, or None when no score value can be located or aligned with the tokens.

    >>> pieces = ["ok", "</think>", '{"', "score", '":', ' "', "true", '"}']
    >>> alts = [[(p, -0.1)] for p in pieces]
    >>> alts[6] = [("true", -0.2), ("false", -1.8), ("yes", -5.0)]  # "yes" continues no label
    >>> label_logprobs("".join(pieces), pieces, alts, ["true", "false"], prefix="<think>")
    {'true': -0.2, 'false': -1.8}
    """
    if not labels or not pieces or len(pieces) != len(alternatives):
        return None
    full = prefix + text
    think_end = full.rfind(THINK_CLOSE)
    if think_end < 0:
        return None
    match = None
    for match in _SCORE_VALUE.finditer(full, think_end + len(THINK_CLOSE)):
        pass
    if match is None:
        return None
    value_at = match.end() - len(prefix)  # where the value starts, in `text` coordinates
    if value_at < 0:
        return None  # the value is inside the prefix: the engine did not generate it

    starts = _align_from_end(text, pieces, value_at)
    if starts is None:
        return None
    # The first token that ends after the value's start holds the value's first character.
    first = next((i for i, s in enumerate(starts) if s is not None and s + len(pieces[i] or "") > value_at), None)
    if first is None:
        return None

    for p in range(first, len(pieces)):
        start, piece = starts[p], pieces[p] or ""
        if start is None:
            return None
        lead = text[start:value_at] if start < value_at else ""  # e.g. the opening quote in a '"4' token
        written = text[value_at:start] if start > value_at else ""  # value text before this token
        possible = [lab for lab in labels if lab.casefold().startswith(written.casefold())]
        if not possible:
            return None
        got = piece[len(lead):]
        if not got:
            continue
        still = [lab for lab in possible if _fits(lab[len(written):], got)]
        if len(possible) > 1 and len(still) == len(possible):
            continue  # a part all labels share ("Ass" of "Assistant A/B"): the choice is made later
        return _at_divergence(alternatives[p], possible, written, lead)
    return None


def _align_from_end(text: str, pieces: Sequence[str | None], value_at: int) -> list[int | None] | None:
    """Start offset in ``text`` of each piece, from the end back to the value; None where not needed."""
    starts: list[int | None] = [None] * len(pieces)
    pos = len(text)
    matched_any = False
    for i in range(len(pieces) - 1, -1, -1):
        piece = pieces[i]
        if piece is None:
            return None
        if text.endswith(piece, 0, pos):
            pos -= len(piece)
            matched_any = True
        elif not matched_any and i >= len(pieces) - 2:
            pass  # a trailing stop token (<|im_end|>) is not part of the returned text
        else:
            return None
        starts[i] = pos
        if pos <= value_at and piece:
            return starts
    return None


def _at_divergence(
    alternatives: Sequence[tuple[str | None, float]], possible: Sequence[str], written: str, lead: str
) -> dict[str, float] | None:
    by_label: dict[str, list[float]] = {}
    seen: set[str] = set()
    for alt, logprob in alternatives:
        if alt is None or alt in seen or not alt.startswith(lead) or not math.isfinite(logprob):
            continue  # the same text twice is the generated token listed again among the top-k
        seen.add(alt)
        got = alt[len(lead):]
        if not got:
            continue
        fits = [lab for lab in possible if _fits(lab[len(written):], got)]
        if len(fits) == 1:
            by_label.setdefault(fits[0], []).append(logprob)
    if not by_label:
        return None
    return {lab: _logsumexp(lps) for lab, lps in by_label.items()}


def _logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values)) if len(values) > 1 else top

