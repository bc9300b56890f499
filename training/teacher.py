"""A teacher that is right by construction, for the verifiable items (`training.items`).

It stands in for the paper's GPT-OSS-120B on items whose answer can be computed: it reads the question out
of the rendered prompt (any language, any phrasing of `training.phrasings`), computes the answer, reads
each response's number (digits, words or native numerals) and writes a short mR3-format trace, in the
language the strategy thinks in, then the JSON verdict. ``error_rate`` flips a share of its verdicts, so the
alignment filter has real errors to drop; which traces were flipped is a pure function of the request
(`ExactTeacher.injected`), so a test can check the filter dropped exactly those.

A real teacher plugs in the same way, as the config's ``teacher`` (``backend: vllm`` or ``openai`` and its
model): nothing downstream knows which one wrote the traces.

Use it as ``teacher: {model: exact-teacher, backend: "training.teacher:ExactTeacher",
backend_options: {error_rate: 0.05}}``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from functools import lru_cache

from mr3_reward.backends.base import Generation, GenerationRequest
from mr3_reward.types import THINK_CLOSE

from training.numerals import read_number
from training.phrasings import QUESTIONS, TRACE_WORDS, UNITS

_HEADER = re.compile(r"^[ \t]*#[^\n]*$", re.M)
_PLACEHOLDER = {"a": r"(?P<a>-?\d+)", "b": r"(?P<b>-?\d+)", "v": r"(?P<v>\d+)", "op": r"(?P<op>[+−×÷])",
                "list": r"(?P<list>\d+(?:, \d+)*)"}


@lru_cache(maxsize=1)
def _patterns() -> list[tuple[re.Pattern, str, str, int | None]]:
    """(regex, kind, language, unit factor) for every question phrasing of every language."""
    out = []
    for kind, by_language in QUESTIONS.items():
        for language, phrasings in by_language.items():
            for phrasing in phrasings:
                units = [(f, UNITS[(n, f)][language]) for n, f in UNITS] if kind == "conversion" else [(None, None)]
                for factor, names in units:
                    text = phrasing if names is None else phrasing.replace("{big}", names[0]).replace("{small}", names[1])
                    pattern = re.escape(text)
                    for key, group in _PLACEHOLDER.items():
                        pattern = pattern.replace(re.escape("{" + key + "}"), group)
                    out.append((re.compile(pattern), kind, language, factor))
    return out


def solve(question: str) -> tuple[int, str, str] | None:
    """(answer, the worked step, language) for a question in one of our phrasings; None otherwise.

    >>> solve("Was ist 7 × 8?")
    (56, '7 × 8 = 56.', 'de')
    """
    q = question.strip()
    for pattern, kind, language, factor in _patterns():
        m = pattern.fullmatch(q)
        if m is None:
            continue
        g = m.groupdict()
        if kind == "arithmetic":
            a, b, op = int(g["a"]), int(g["b"]), g["op"]
            if op == "÷" and (b == 0 or a % b):
                return None
            r = {"+": a + b, "−": a - b, "×": a * b, "÷": a // b if b else 0}[op]
            return r, f"{a} {op} {b} = {r}.", language
        if kind == "conversion":
            v = int(g["v"])
            return v * factor, f"{v} × {factor} = {v * factor}.", language
        if kind.startswith("comparison"):
            a, b = int(g["a"]), int(g["b"])
            fn = "max" if kind == "comparison_max" else "min"
            r = max(a, b) if fn == "max" else min(a, b)
            return r, f"{fn}({a}, {b}) = {r}.", language
        n = len(g["list"].split(","))
        return n, f"{' '.join(str(i) for i in range(1, n + 1))} → {n}.", language
    return None


def _sections(user: str) -> list[str]:
    """The texts under the user message's headers, in order (the last header, "Your Response", is empty)."""
    parts = _HEADER.split(user)
    return [p.strip() for p in parts[1:]]


def _stable(*parts: str) -> float:
    return int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest()[:8], "big") / 2**64


class ExactTeacher:
    """The stand-in teacher, a `mr3_reward.backends.base.Backend`.

    model (`str`): its name in reports and digests.
    error_rate (`float`): the share of traces whose verdict is flipped, in [0, 1).
    seed (`int`): which traces are flipped.
    """

    def __init__(self, model: str = "exact-teacher", *, error_rate: float = 0.0, seed: int = 0) -> None:
        if not isinstance(error_rate, (int, float)) or not 0 <= error_rate < 1:
            raise ValueError(f"error_rate must be in [0, 1), got {error_rate!r}: it is the share of verdicts the "
                             "teacher gets wrong on purpose (0 for none)")
        self.model_id = model
        self.error_rate = float(error_rate)
        self.seed = seed

    def injected(self, request: GenerationRequest) -> bool:
        """Whether this request's verdict is flipped on purpose."""
        p = request.prompt
        return _stable(str(self.seed), str(request.sampling.seed), p.system, p.user, p.prefix) < self.error_rate

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        return [self._one(r) for r in requests]

    def _one(self, request: GenerationRequest) -> Generation:
        sections = _sections(request.prompt.user)
        solved = solve(sections[0]) if sections else None
        if solved is None:
            return Generation("", finish_reason="error", error="the exact teacher cannot solve this question")
        answer, step, language = solved
        words = TRACE_WORDS.get(request.thinking_language, TRACE_WORDS["en"])
        flip = self.injected(request)
        material = [s for s in sections[1:-1]]
        labels = set(request.labels)
        if labels == {"Assistant A", "Assistant B"} and len(material) == 2:
            lines, verdict = [step], None
            for label, text in zip(("Assistant A", "Assistant B"), material):
                n = read_number(text, language)
                ok = (n == answer) != flip
                lines.append(f"{label}: {words['none'] if n is None else n}, {words['right' if ok else 'wrong']}.")
                verdict = label if ok and verdict is None else verdict
            verdict = verdict or "Assistant A"
            explanation = next(line for line in lines[1:] if line.startswith(verdict))
        elif labels == {"true", "false"} and material:
            n = read_number(material[-1], language)
            ok = (n == answer) != flip
            reference = words["reference"].replace("{x}", str(answer))
            explanation = f"{words['response']}: {words['none'] if n is None else n}, {words['right' if ok else 'wrong']}."
            lines, verdict = [reference, explanation], "true" if ok else "false"
        else:
            return Generation("", finish_reason="error", error=f"the exact teacher judges pairwise and binary items, "
                                                                f"not labels {sorted(labels)}")
        answer_json = json.dumps({"explanation": explanation, "score": verdict}, ensure_ascii=False)
        text = " ".join(lines) + THINK_CLOSE + "\n" + answer_json
        return Generation(text, finish_reason="stop", completion_tokens=len(text.split()))
