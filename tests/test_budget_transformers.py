"""Budgeted reasoning and constrained verdicts on the transformers backend, with SmolLM2-135M on CPU: the engine
contract the phases need (stop strings, decoding under a regex, scoring continuations, batching by length),
then the shared budget cases (`budget_cases`) through `Judge`."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import dataclasses
import math
import re

import pytest
from budget_cases import BUDGET, REQUESTS, check_budgeted

from mr3_reward.backends.base import ChatPrompt, Constrains, GenerationRequest
from mr3_reward.backends.hf_generate import first_stop_end
from mr3_reward.judge import Judge
from mr3_reward.phases import CLOSING_SENTENCES, EXPLANATION_OPEN, EXPLANATION_REGEX
from mr3_reward.types import Failure, Sampling

pytestmark = pytest.mark.model

GREEDY = Sampling(temperature=0.0, max_tokens=16)
PROMPTS = [
    ChatPrompt("You are a helpful assistant.", "Say hi, then tell me about your day.", prefix=""),
    ChatPrompt("Be brief.", "What is the capital of France? Answer in one sentence.", prefix=""),
    ChatPrompt("You are a careful judge.", "Is the sky blue on a clear day? Explain your answer. " * 3,
               prefix="<think>"),
]


@pytest.fixture(scope="module")
def smol():
    # One thread: on a 2-core machine shared with other jobs, two OpenMP threads per process stall each other.
    import torch

    from mr3_reward.backends.transformers import TransformersBackend

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield TransformersBackend("smollm2-135m", batch_size=8)
    torch.set_num_threads(before)


def test_stop_strings_end_each_row_at_its_first_stop_and_keep_it(smol):
    free = smol.generate([GenerationRequest(p, GREEDY) for p in PROMPTS])
    stop = (".", "!")
    stopped = smol.generate([GenerationRequest(p, GREEDY, stop=stop) for p in PROMPTS])
    assert sum(first_stop_end(g.text, stop) is not None for g in free) >= 2  # the stops really come up
    for g, s in zip(free, stopped):
        cut = first_stop_end(g.text, stop)
        if cut is None:  # this row never wrote a stop string: it runs as without one
            assert (s.text, s.finish_reason) == (g.text, g.finish_reason)
        else:  # rows stop independently, each right after its own first stop string, which is kept
            assert s.text == g.text[:cut] and s.finish_reason == "stop"
            assert 0 < s.completion_tokens <= g.completion_tokens


def test_regex_decodes_under_the_expression_and_ends_the_row(smol):
    prompts = [dataclasses.replace(p, prefix=EXPLANATION_OPEN) for p in PROMPTS]
    for sampling in (GREEDY, Sampling(temperature=0.8, max_tokens=16, seed=3)):
        digits = smol.generate([GenerationRequest(p, sampling, regex=r'[0-9]{1,3}"') for p in prompts])
        assert all(re.fullmatch(r'[0-9]{1,3}"', g.text) and g.finish_reason == "stop" for g in digits), digits
        capped = sampling.with_(max_tokens=24)
        body = smol.generate([GenerationRequest(p, capped, regex=EXPLANATION_REGEX) for p in prompts])
        for g in body:  # a whole string body and its quote, or a cut one at the token cap
            whole = g.finish_reason == "stop" and re.fullmatch(EXPLANATION_REGEX, g.text)
            assert whole or (g.finish_reason == "length" and re.fullmatch(r'[^"\\\x00-\x1f]*', g.text)), g


def test_score_continuations_are_the_log_probabilities_of_one_forward_pass(smol):
    import torch

    from mr3_reward.backends.hf import encode, token_ids

    assert isinstance(smol, Constrains)
    items = [(p, label) for p in PROMPTS for label in ('"Assistant A"', '"richtig"')]
    items.append((ChatPrompt("Be brief.", "hello " * 9000, prefix=""), '"x"'))  # longer than the context
    scores = smol.score_continuations(items)
    assert scores[-1] is None and all(s is not None and s < 0 for s in scores[:-1])
    for (prompt, cont), score in zip(items[:-1], scores):
        ids, new = encode(smol.tokenizer, prompt), token_ids(smol.tokenizer, cont)
        with torch.inference_mode():
            logits = smol.model(input_ids=torch.tensor([ids + new])).logits[0].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        alone = sum(float(logprobs[len(ids) - 1 + k, t]) for k, t in enumerate(new))
        assert math.isclose(score, alone, abs_tol=1e-3), (cont, score, alone)


def test_a_mixed_length_batch_gives_the_texts_of_its_parts(smol, monkeypatch):
    long = ChatPrompt("Be brief.", "Summarize this essay. " + "The river runs to the sea, and the sea is wide. " * 120,
                      prefix="")
    shapes = []  # (rows, width) of each model.generate call
    generate = smol.model.generate

    def recording(**kwargs):
        shapes.append(tuple(kwargs["input_ids"].shape))
        return generate(**kwargs)

    monkeypatch.setattr(smol.model, "generate", recording)
    mixed = smol.generate([GenerationRequest(p, GREEDY) for p in [PROMPTS[0], long, *PROMPTS[1:]]])
    mixed_shapes, shapes[:] = list(shapes), []
    shorts = smol.generate([GenerationRequest(p, GREEDY) for p in PROMPTS])
    alone = smol.generate([GenerationRequest(long, GREEDY)])
    assert [g.text for g in mixed] == [shorts[0].text, alone[0].text, *(g.text for g in shorts[1:])]
    # The same batches ran either way: the short prompts were not padded to the long one.
    assert sorted(mixed_shapes) == sorted(shapes)
    assert shapes[-1] == (1, alone[0].prompt_tokens) and all(w < alone[0].prompt_tokens / 4 for _, w in shapes[:-1])


def test_budgeted_constrained_judgments_on_every_task_kind(smol):
    judge = Judge("smollm2-135m", backend=smol, thinking_budget=BUDGET, verdict="constrained", max_tokens=64,
                  explanation_tokens=24, cache=None, max_retries=0)
    check_budgeted(judge.judge(REQUESTS), REQUESTS, judge, smol.tokenizer, BUDGET)


def test_target_language_thinking_is_budgeted_and_closed_in_the_input_language(smol, pack_dir):
    judge = Judge("smollm2-135m", backend=smol, language_mode="tgt-prompt-tgt-thinking", pack=pack_dir,
                  thinking_budget=BUDGET, verdict="constrained", max_tokens=64, explanation_tokens=24, cache=None,
                  max_retries=0)
    out = judge.judge(REQUESTS)
    check_budgeted(out, REQUESTS, judge, smol.tokenizer, BUDGET)
    foreign = [(r, j) for r, j in zip(REQUESTS, out) if r.language != "en"]
    assert {r.language for r, _ in foreign} == {"de", "zh"}
    for request, j in foreign:
        assert judge.render(request).prompt.prefix != "<think>"  # the forcing sentence is in the prompt
        assert CLOSING_SENTENCES["en"] not in j.raw, request.id  # a cut reasoning is closed in its own language
    assert any(CLOSING_SENTENCES[r.language] in j.raw for r, j in foreign)  # and the budget did cut some


def test_free_verdicts_with_a_budget_still_fail_as_typed_failures(smol):
    judge = Judge("smollm2-135m", backend=smol, thinking_budget=BUDGET, verdict="free", max_tokens=48, cache=None,
                  max_retries=0)
    out = judge.judge(REQUESTS)
    typed = {f.value for f in Failure} - {Failure.ENGINE_ERROR.value, Failure.INPUT_TOO_LONG.value}
    assert all(j.meta["thinking_tokens"] <= BUDGET for j in out)
    assert all(j.ok or j.failure in typed for j in out), [(j.failure, j.meta) for j in out]
    assert any(j.failure in typed for j in out)  # a 135M judge rarely writes a valid free verdict
    for request, j in zip(REQUESTS, out):
        if j.ok:
            assert j.score in judge.render(request).labels
