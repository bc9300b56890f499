"""The requests and checks every real engine's budgeted / constrained test runs (transformers, vLLM in
process, a vLLM server through OpenAIBackend, a Ray pool): every task kind, three languages, and a custom
rubric with localized labels.

    from budget_cases import REQUESTS, check_budgeted
    judge = Judge(..., thinking_budget=BUDGET, verdict="constrained", max_tokens=...)
    check_budgeted(judge.judge(REQUESTS), REQUESTS, judge, tokenizer, BUDGET)
"""

from __future__ import annotations

import re

from mr3_reward.phases import closing_sentence
from mr3_reward.types import THINK_CLOSE, JudgeRequest, Rubric, TaskKind

BUDGET = 24
# A custom rubric with German labels: a binary judge may name its labels as it likes.
GERMAN_LABELS = Rubric.from_mapping({"richtig": "Die Antwort ist korrekt.", "falsch": "Die Antwort ist falsch."})

REQUESTS = [
    JudgeRequest(task="pairwise", prompt="How long should I boil an egg?", language="en", id="pw-en",
                 responses=("About nine minutes for a firm yolk.", "Eggs come from hens.")),
    JudgeRequest(task="pairwise", prompt="Wie viele Tage hat ein Schaltjahr?", language="de", id="pw-de",
                 responses=("365 Tage.", "366 Tage, weil der Februar 29 Tage hat.")),
    JudgeRequest(task="preference_strength", prompt="水的沸点是多少？", language="zh", id="ps-zh",
                 responses=("100摄氏度。", "50摄氏度。")),
    JudgeRequest(task="pointwise", prompt="Explain photosynthesis in one sentence.", language="en", id="pt-en",
                 responses=("Plants turn light, water and CO2 into sugar and oxygen.",)),
    JudgeRequest(task="binary", prompt="Was ist 7 mal 8?", language="de", id="bi-de", responses=("56",),
                 reference="56"),
    JudgeRequest(task="binary", prompt="Ist Berlin die Hauptstadt Deutschlands?", language="de", id="bi-de-custom",
                 responses=("Ja.",), rubric=GERMAN_LABELS),
    JudgeRequest(task="multiple_choice", prompt="Which planet is largest?", language="en", id="mc-en",
                 options="A. Mars\nB. Jupiter\nC. Venus\nD. Mercury"),
]
KINDS = {r.task for r in REQUESTS}
assert KINDS == set(TaskKind) and len({r.language for r in REQUESTS}) >= 3


def generated_reasoning(judgment, language: str) -> str:
    """The reasoning the engine generated: the text before ``</think>``, less the sentence we close a cut
    reasoning with (it is ours, not the judge's; the forcing sentence of target-language thinking is part of
    the prompt and not in the generation)."""
    reasoning = judgment.raw.split(THINK_CLOSE, 1)[0]
    for lang in (language, "en"):
        cut = reasoning.rfind(closing_sentence(lang))
        if cut >= 0:
            return reasoning[:cut].rstrip()
    return reasoning.rstrip()


def retokenization_slack(text: str) -> int:
    """How many more tokens re-tokenizing ``text`` may give than the engine generated for it.

    Decoded text, tokenized again, need not give the generated tokens back. A generated whitespace token before
    a word comes back split in two by the pre-tokenizer (after ``<think>`` SmolLM2 generates two newlines as one
    token, then "1"; the same text tokenized alone is newline, newline, "1"), and a reasoning cut by the budget
    inside a multi-byte character decodes to U+FFFD, whose three bytes are tokenized on their own.
    """
    return len(re.findall(r"\s{2,}(?=\S)", text)) + 3 * text.count("\ufffd")


def check_budgeted(judgments, requests, judge, tokenizer, budget: int | None) -> None:
    """Under constrained verdicts: every judgment parses and its score is one of the rubric's labels, the
    label probabilities sum to 1 over the labels, and with a budget no reasoning is longer than it, counted
    with the engine's tokenizer."""
    assert len(judgments) == len(requests)
    for request, j in zip(requests, judgments):
        labels = judge.render(request).labels
        assert j.failure is None and j.score in labels, (request.id, j.failure, j.score, j.meta)
        assert set(j.label_probs) == set(labels), request.id
        assert abs(sum(j.label_probs.values()) - 1.0) < 1e-6, (request.id, j.label_probs)
        if budget is not None:
            assert j.meta["thinking_tokens"] <= budget, (request.id, j.meta)
            lang = request.language if judge.language_mode.tgt_thinking else "en"
            reasoning = generated_reasoning(j, lang)
            ids = tokenizer(reasoning, add_special_tokens=False)["input_ids"]
            assert len(ids) <= budget + retokenization_slack(reasoning), (request.id, len(ids), reasoning)
    assert {r.task for r in requests} == KINDS
    assert set(judge.render(requests[5]).labels) == {"richtig", "falsch"}  # the localized labels were used
