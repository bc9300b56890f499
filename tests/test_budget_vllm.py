"""Budgeted reasoning and constrained verdicts on real vLLM engines (CPU build, SmolLM2-135M): one in-process
`VLLMBackend` for `TestInProcess`, then one ``vllm serve`` behind `OpenAIBackend` for `TestServer` (the engine
is closed before the server starts, so the two never hold memory and cores at once).

Each class checks the backend contract the phases rely on (`mr3_reward.phases`): a stop string ends the
generation and stays in the text, a regular expression is decoded by vLLM's structured outputs, and
`score_continuations` gives the same log-probabilities as the engine's own sampling log-probabilities of the
same tokens; then the shared cases (`budget_cases`: every task kind, three languages, German labels) are
judged with a budget and constrained verdicts, one engine call per phase.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before anything imports huggingface_hub, which reads it once

import re

import pytest

from budget_cases import BUDGET, REQUESTS, check_budgeted
from mr3_reward.backends.base import ChatPrompt, GenerationRequest
from mr3_reward.backends.hf import encode, token_ids
from mr3_reward.backends.openai import OpenAIBackend
from mr3_reward.judge import Judge
from mr3_reward.phases import CLOSING_SENTENCES, EXPLANATION_REGEX
from mr3_reward.types import THINK_CLOSE, JudgeRequest, Sampling
from vllm_engines import MAX_MODEL_LEN, engine, server  # noqa: F401 (class-scoped fixtures)

pytestmark = pytest.mark.vllm

MAX_TOKENS = BUDGET + 64
EXPLANATION_TOKENS = 24
PROMPT = ChatPrompt("You are a careful judge.", "Is the sky blue? Think step by step, then answer.")
SAMPLED = Sampling(temperature=0.6, top_p=0.95, top_k=20, max_tokens=48, seed=5)


def budget_judge(backend, **options) -> Judge:
    return Judge("smollm2-135m", backend=backend, cache=None, max_retries=0, max_tokens=MAX_TOKENS, seed=3,
                 thinking_budget=BUDGET, verdict="constrained", explanation_tokens=EXPLANATION_TOKENS, **options)


class Phases:
    """Records what the judge asks of a backend: ("generate", n requests) or ("score", n items) per call."""

    def __init__(self, backend) -> None:
        self.calls: list[tuple[str, int]] = []
        generate, score = backend.generate, backend.score_continuations

        def counted_generate(requests):
            self.calls.append(("generate", len(requests)))
            return generate(requests)

        def counted_score(items):
            self.calls.append(("score", len(items)))
            return score(items)

        backend.generate, backend.score_continuations = counted_generate, counted_score
        self._undo = lambda: (vars(backend).pop("generate"), vars(backend).pop("score_continuations"))

    def __enter__(self) -> Phases:
        return self

    def __exit__(self, *exc_info) -> None:
        self._undo()


def expected_phases(judge: Judge) -> list[tuple[str, int]]:
    labels = sum(len(judge.render(r).labels) for r in REQUESTS)
    return [("generate", len(REQUESTS)), ("generate", len(REQUESTS)), ("score", labels)]


def check_contract(backend, sampled_logprobs) -> None:
    """Stop strings, regular expressions and continuation scores, as `mr3_reward.phases` needs them.

    ``sampled_logprobs(request)`` generates greedily and returns (token ids, their log-probabilities)."""
    stopped, free, constrained, capped, choice = backend.generate([
        GenerationRequest(PROMPT, SAMPLED, stop=(".",)),
        GenerationRequest(PROMPT, SAMPLED),
        GenerationRequest(PROMPT, SAMPLED, regex=EXPLANATION_REGEX),
        GenerationRequest(PROMPT, SAMPLED.with_(max_tokens=4), regex=EXPLANATION_REGEX),
        GenerationRequest(PROMPT, SAMPLED, regex="(yes|no)"),  # nothing the model would write on its own
    ])
    assert choice.text in ("yes", "no") and choice.finish_reason == "stop", choice
    assert "." in free.text  # the same seed without the stop string goes on past the first period
    assert stopped.finish_reason == "stop" and stopped.text == free.text[:free.text.index(".") + 1], (stopped, free)
    # Under the grammar: the body of a JSON string, then its closing quote, or a prefix of it at the cap.
    assert re.fullmatch(EXPLANATION_REGEX, constrained.text) or constrained.finish_reason == "length", constrained
    assert re.fullmatch(r'[^"\\\x00-\x1f]*"?', constrained.text), constrained
    assert capped.finish_reason == "length" and capped.completion_tokens == 4 and '"' not in capped.text[:-1]

    # A continuation's score is the engine's own log-probability of those tokens, summed.
    # (Without the <think> prefix the reply starts with words, whose text tokenizes back to the same tokens.)
    answer = ChatPrompt(PROMPT.system, PROMPT.user, prefix="")
    ids, logprobs = sampled_logprobs(GenerationRequest(answer, Sampling(temperature=0.0, max_tokens=6)))
    text = backend.tokenizer.decode(ids)
    assert token_ids(backend.tokenizer, text) == ids, (text, ids)
    labels = backend.score_continuations([(answer, text), (PROMPT, '"true"'), (PROMPT, '"false"'), (PROMPT, "")])
    assert labels[0] == pytest.approx(sum(logprobs), abs=1e-2), (labels, logprobs)
    assert all(v is not None and v < 0 for v in labels[1:3]) and labels[3] is None
    too_long = ChatPrompt("s", "word " * (MAX_MODEL_LEN + 10))
    refused, again = backend.score_continuations([(too_long, '"true"'), (PROMPT, '"true"')])
    assert refused is None and again == pytest.approx(labels[1], abs=1e-3)


# =========================================================================================================
# In process
# =========================================================================================================


class TestInProcess:
    def test_stop_strings_regular_expressions_and_scores(self, engine):
        def sampled_logprobs(request):
            from vllm import SamplingParams
            from vllm.inputs import TokensPrompt

            ids = encode(engine.tokenizer, request.prompt)
            [out] = engine.llm.generate([TokensPrompt(prompt_token_ids=ids)],
                                        SamplingParams(temperature=0.0, max_tokens=6, logprobs=0), use_tqdm=False)
            completion = out.outputs[0]
            return list(completion.token_ids), [step[t].logprob for t, step in zip(completion.token_ids, completion.logprobs)]

        check_contract(engine, sampled_logprobs)

    def test_budgeted_constrained_judgments_one_generate_per_phase(self, engine, monkeypatch):
        judge = budget_judge(engine)
        sizes, generate = [], engine.llm.generate

        def counted(prompts, *args, **kwargs):
            sizes.append(len(prompts))
            return generate(prompts, *args, **kwargs)

        monkeypatch.setattr(engine.llm, "generate", counted)
        with Phases(engine) as phases:
            judgments = judge.judge(REQUESTS)
        check_budgeted(judgments, REQUESTS, judge, engine.tokenizer, BUDGET)
        assert phases.calls == expected_phases(judge)
        assert len(sizes) == len(phases.calls)  # every call of the backend was one LLM.generate
        assert sizes[:2] == [n for _, n in phases.calls[:2]]  # a generate phase: each item one prompt of it
        # The scoring call asks each label token after its prefix; the labels of a request share the prompt.
        assert sizes[2] > len(REQUESTS)
        # Some reasoning ran into the budget and was closed for the judge; a constrained answer is its JSON.
        assert any(sentence in j.raw for j in judgments for sentence in CLOSING_SENTENCES.values())
        assert all(j.raw.rstrip().endswith("}") and THINK_CLOSE in j.raw for j in judgments)

    def test_free_verdicts_under_a_budget(self, engine):
        judge = Judge("smollm2-135m", backend=engine, cache=None, max_retries=0, max_tokens=MAX_TOKENS, seed=3,
                      thinking_budget=8)
        request = JudgeRequest(task="binary", prompt="What is 7 times 8?", responses=("56",))
        with Phases(engine) as phases:
            [j] = judge.judge([request])
        assert phases.calls == [("generate", 1), ("generate", 1)]  # reasoning, then the answer after it
        assert j.meta["thinking_tokens"] <= 8 and CLOSING_SENTENCES["en"] in j.raw
        assert j.completion_tokens > j.meta["thinking_tokens"]


# =========================================================================================================
# Through the server
# =========================================================================================================


def served_requests(server) -> float:
    """Requests the server has finished, from its Prometheus ``/metrics``."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in (server.get("/metrics") or "").splitlines()
               if line.startswith("vllm:request_success_total"))


class TestServer:
    def test_stop_strings_regular_expressions_and_scores(self, server):
        backend = OpenAIBackend("smollm2-135m", server.url)

        def sampled_logprobs(request):
            import openai

            answer = openai.OpenAI(base_url=server.url, api_key="EMPTY").completions.create(
                model="smollm2-135m", prompt=encode(backend.tokenizer, request.prompt), max_tokens=6,
                temperature=0.0, logprobs=0, extra_body={"return_token_ids": True})
            choice = answer.choices[0]
            return list(choice.token_ids), list(choice.logprobs.token_logprobs)

        check_contract(backend, sampled_logprobs)

    def test_budgeted_constrained_judgments_one_batch_per_phase(self, server):
        backend = OpenAIBackend("smollm2-135m", server.url)
        judge = budget_judge(backend)
        before = served_requests(server)
        with Phases(backend) as phases:
            judgments = judge.judge(REQUESTS)
        check_budgeted(judgments, REQUESTS, judge, backend.tokenizer, BUDGET)
        assert phases.calls == expected_phases(judge)
        assert served_requests(server) - before == sum(n for _, n in phases.calls)  # each item: one request
        assert all(j.raw.rstrip().endswith("}") and THINK_CLOSE in j.raw for j in judgments)
