"""Budgeted reasoning and constrained verdicts (`mr3_reward.phases`) on a scripted engine: the phase logic alone.

The real engines (transformers, vLLM in process, a vLLM server, a Ray pool) run the same phases in
tests/test_budget_engines.py.
"""

import math

import pytest

from mr3_reward.backends.base import Generation
from mr3_reward.judge import Judge
from mr3_reward.phases import CLOSING_SENTENCES, EXPLANATION_REGEX, closing_sentence
from mr3_reward.types import THINK_CLOSE, Failure, JudgeRequest, Sampling


class Scripted:
    """One word = one token. ``think`` is the reasoning it would write; it closes </think> after it unless cut."""

    model_id = "scripted"

    def __init__(self, think="a b c d e f g h", answer='{"explanation": "x", "score": "Assistant A"}',
                 explanation="B is vague", logprobs=None, fail_phase=None):
        self.think, self.answer, self.explanation = think, answer, explanation
        self.logprobs = logprobs or {}
        self.fail_phase = fail_phase
        self.calls = []  # (phase, number of requests)

    def generate(self, requests):
        phase = "explain" if requests[0].regex else ("reason" if requests[0].stop else "answer")
        self.calls.append((phase, len(requests)))
        out = []
        for r in requests:
            if phase == self.fail_phase:
                out.append(Generation(text="", finish_reason="error", error="boom"))
                continue
            if phase == "reason":
                words = self.think.split()
                if len(words) >= r.sampling.max_tokens:
                    out.append(Generation(" ".join(words[: r.sampling.max_tokens]), "length", 10, r.sampling.max_tokens))
                else:
                    out.append(Generation(" ".join(words) + " " + THINK_CLOSE, "stop", 10, len(words) + 1))
            elif phase == "explain":
                assert r.regex == EXPLANATION_REGEX and r.prompt.prefix.endswith('{"explanation": "')
                words = self.explanation.split()[: r.sampling.max_tokens]
                out.append(Generation(" ".join(words) + '"', "stop", 10, len(words) + 1))
            else:
                out.append(Generation(self.answer, "stop", 10, len(self.answer.split())))
        return out

    def score_continuations(self, items):
        self.calls.append(("score", len(items)))
        if self.fail_phase == "score":
            return [None] * len(items)
        return [self.logprobs.get(cont.strip('"'), math.log(0.01)) for _, cont in items]


PAIR = JudgeRequest(task="pairwise", prompt="Which is better?", responses=("Paris.", "I think maybe."), id="q")


def judge(backend, **sampling):
    return Judge(backend=backend, max_retries=0, **sampling)


def test_budget_cuts_the_reasoning_closes_it_and_the_free_answer_follows():
    backend = Scripted()
    [j] = judge(backend, thinking_budget=3, max_tokens=64).judge([PAIR])
    assert j.score == "Assistant A" and j.failure is None
    assert j.meta["thinking_tokens"] == 3
    assert j.reasoning.startswith("a b c") and CLOSING_SENTENCES["en"] in j.reasoning
    assert backend.calls == [("reason", 1), ("answer", 1)]


def test_a_reasoning_that_closes_within_the_budget_is_not_forced():
    [j] = judge(Scripted(think="short"), thinking_budget=8, max_tokens=64).judge([PAIR])
    assert j.ok and CLOSING_SENTENCES["en"] not in j.reasoning and j.meta["thinking_tokens"] == 2


def test_constrained_verdict_is_a_label_with_probabilities_that_sum_to_one():
    backend = Scripted(answer="no json at all", logprobs={"Assistant A": math.log(0.2), "Assistant B": math.log(0.6)})
    [j] = judge(backend, thinking_budget=4, max_tokens=64, verdict="constrained", temperature=0).judge([PAIR])
    assert j.score == "Assistant B" and j.explanation == "B is vague"
    assert set(j.label_probs) == {"Assistant A", "Assistant B"}
    assert sum(j.label_probs.values()) == pytest.approx(1.0)
    assert j.label_probs["Assistant B"] == pytest.approx(0.75)
    assert backend.calls == [("reason", 1), ("explain", 1), ("score", 2)]


def test_each_phase_is_one_engine_call_for_the_whole_batch():
    backend = Scripted(logprobs={"true": 0.0})
    requests = [JudgeRequest(task="binary", prompt=f"q{i}", responses=(f"a{i}",)) for i in range(5)]
    out = judge(backend, thinking_budget=2, max_tokens=64, verdict="constrained").judge(requests)
    assert [j.score for j in out] == ["true"] * 5
    assert backend.calls == [("reason", 5), ("explain", 5), ("score", 10)]


def test_the_explanation_is_capped_at_its_token_budget():
    backend = Scripted(explanation="one two three four five six", logprobs={"true": 0.0})
    req = JudgeRequest(task="binary", prompt="q", responses=("a",))
    [j] = judge(backend, verdict="constrained", explanation_tokens=2, max_tokens=64).judge([req])
    assert j.explanation == "one two"


def test_seeded_draws_repeat_and_follow_the_distribution():
    backend = Scripted(logprobs={"Assistant A": math.log(0.5), "Assistant B": math.log(0.5)})
    requests = [JudgeRequest(task="pairwise", prompt=f"q{i}", responses=("x", "y")) for i in range(40)]
    first = [j.score for j in judge(backend, verdict="constrained", max_tokens=64, temperature=1.0).judge(requests)]
    again = [j.score for j in judge(backend, verdict="constrained", max_tokens=64, temperature=1.0).judge(requests[::-1])]
    assert first == again[::-1]  # a seed means the same verdict whatever else is in the batch
    assert 5 < first.count("Assistant A") < 35


def test_engine_errors_in_any_phase_are_typed_failures():
    for phase in ("reason", "explain", "score"):
        [j] = judge(Scripted(fail_phase=phase), verdict="constrained", max_tokens=64).judge([PAIR])
        assert j.failure == Failure.ENGINE_ERROR.value, phase


def test_target_language_thinking_is_closed_in_the_input_language():
    backend = Scripted(think="eins zwei drei vier")
    req = JudgeRequest(task="pairwise", prompt="Welche?", responses=("a", "b"), language="de")
    j = Judge(backend=backend, language_mode="tgt-prompt-tgt-thinking", pack="../shared/mr3_reference/rubrics",
              thinking_budget=2, max_tokens=64).judge_one(req)
    assert CLOSING_SENTENCES["de"] in j.reasoning
    assert closing_sentence("pt-BR") == CLOSING_SENTENCES["pt"]


def test_budget_and_verdict_mode_are_part_of_the_cache_key():
    keys = {Judge(backend=Scripted(), **kw).config_key().__repr__() for kw in
            ({}, {"thinking_budget": 8}, {"thinking_budget": 16}, {"verdict": "constrained"})}
    assert len(keys) == 4


@pytest.mark.parametrize("kwargs, message", [
    ({"thinking_budget": 0}, r"thinking_budget must be a positive number of tokens"),
    ({"thinking_budget": -5}, r"thinking_budget must be a positive number of tokens"),
    ({"thinking_budget": "64"}, r"thinking_budget must be an integer"),
    ({"thinking_budget": 100, "max_tokens": 100}, r"must be below max_tokens"),
    ({"explanation_tokens": 0}, r"explanation_tokens .* must be >= 1"),
    ({"verdict": "strict"}, r"verdict must be one of 'free', 'constrained'"),
])
def test_bad_budget_options_fail_at_construction_with_the_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Sampling(**kwargs)


def test_constrained_verdicts_need_a_backend_that_can_constrain():
    class Plain:
        model_id = "plain"

        def generate(self, requests):
            return []

    with pytest.raises(ValueError, match=r"verdict='constrained' needs a backend .* backend='transformers', 'vllm', 'openai'"):
        Judge(backend=Plain(), verdict="constrained")


def test_the_fake_backend_runs_every_phase_for_unit_tests():
    from mr3_reward.backends.fake import FakeBackend

    fb = FakeBackend(lambda p, s: "one two three four five</think>\n" '{"explanation": "short", "score": "Assistant B"}')
    [j] = Judge(backend=fb, thinking_budget=2, max_tokens=64, verdict="constrained", temperature=0).judge([PAIR])
    assert j.score == "Assistant B" and j.explanation == "short" and j.meta["thinking_tokens"] == 2
    assert sum(j.label_probs.values()) == pytest.approx(1.0) and j.label_probs["Assistant B"] == pytest.approx(0.9)
    [free] = Judge(backend=fb, thinking_budget=2, max_tokens=64).judge([PAIR])
    assert free.score == "Assistant B" and CLOSING_SENTENCES["en"] in free.reasoning
