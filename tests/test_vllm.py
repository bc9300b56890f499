"""vLLM in-process and OpenAI-compatible backends.

Two kinds of tests live here:

* fast ones, unmarked: label log-probabilities from token pieces (pure), and `OpenAIBackend` against a tiny
  stdlib HTTP server on 127.0.0.1 that scripts 5xx, 4xx, slow and malformed answers;
* ``vllm``-marked ones, on the real CPU build of vLLM with ``smollm2-135m``: one in-process engine for the
  `TestInProcessEngine` class, then one ``vllm serve`` subprocess for `TestServer` (started, killed
  mid-request and restarted by the tests). The engine is closed before the server starts so the two never
  hold memory and cores at once.

Every server binds 127.0.0.1 and is stopped in a fixture teardown.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before anything imports huggingface_hub, which reads it once

import asyncio
import dataclasses
import json
import math
import socket
import threading
import time
from pathlib import Path

import pytest

from mr3_reward.backends.base import ChatPrompt, GenerationRequest, chat_text
from mr3_reward.backends.label_logprobs import label_logprobs, schema_labels
from mr3_reward.backends.openai import OpenAIBackend
from mr3_reward.judge import Judge, judgment_from_generation, make_backend
from mr3_reward.records import read_requests
from mr3_reward.types import Failure, JudgeRequest, Sampling
from tests.openai_stub import StubServer, completion

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "data" / "multilingual_sample.jsonl"
FAILURES = {f.value for f in Failure}
GREEDY = Sampling(temperature=0.0, max_tokens=24)

# Small engine settings for CPU: float32 (bf16 is several times slower here), a short context, a 2 GiB KV
# cache, and eager mode (torch.compile would add ~45 s to every engine start for ~5% speed).
MAX_MODEL_LEN = 2048
KV_CACHE_BYTES = 2 << 30


def _sample_requests() -> list[JudgeRequest]:
    return [request for _, request in read_requests(SAMPLE)]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# =========================================================================================================
# Label log-probabilities (pure)
# =========================================================================================================


def _alts(pieces, overrides):
    """Every position offers only its own piece, except the ``overrides`` (index -> alternatives)."""
    alts = [[(p, -0.05)] for p in pieces]
    for i, options in overrides.items():
        alts[i] = options
    return alts


def test_label_logprobs_pairwise_labels_diverge_after_their_shared_prefix():
    pieces = ["Both", " fine", ".", "</think>", '{"', "score", '":', ' "', "Ass", "istant", " B", '"}']
    text = "".join(pieces)
    # At "Ass" both labels are still possible: alternatives there say nothing about A vs B.
    alts = _alts(pieces, {8: [("Ass", -0.01), ("A", -4.0)], 10: [(" B", -0.3), (" A", -1.4), (" C", -3.0)]})
    out = label_logprobs(text, pieces, alts, ["Assistant A", "Assistant B"], prefix="<think>")
    assert out == {"Assistant B": -0.3, "Assistant A": -1.4}


def test_label_logprobs_value_token_with_its_quote_and_an_explanation_after_it():
    # '"4' holds the opening quote and the value; an explanation follows the score; a stop token ends it.
    pieces = ["x", "</think>", "{'", "score", "':", ' "4', '",', ' "explanation"', ': "', "ok", '"}', "<|im_end|>"]
    text = "".join(pieces[:-1])  # engines leave the stop token out of the text
    alts = _alts(pieces, {5: [(' "4', -0.2), (' "5', -2.0), (' "3', -2.5), (' "', -6.0)]})
    out = label_logprobs(text, pieces, alts, [str(i) for i in range(1, 8)])
    assert out == {"4": -0.2, "5": -2.0, "3": -2.5}


def test_label_logprobs_unquoted_boolean_and_case():
    pieces = ["</think>", '{"score":', " True", "}"]
    alts = _alts(pieces, {2: [(" True", -0.1), (" False", -2.5), (" true", -3.0)]})
    out = label_logprobs("".join(pieces), pieces, alts, ["true", "false"])
    # Both spellings of true lead to the label: their probabilities add up.
    assert set(out) == {"true", "false"} and out["false"] == -2.5
    assert out["true"] == pytest.approx(-0.1 + math.log(1 + math.exp(-2.9)))


def test_label_logprobs_multibyte_pieces_before_the_answer_and_a_suffix_of_tokens():
    # Bytes of one character spread over tokens decode to '' and then the whole character: aligning from the
    # end is unaffected; only the last tokens are given.
    pieces = ["好", "", "的", "</think>", '{"score": "', "true", '"}']
    text = "思考" + "".join(pieces)
    alts = _alts(pieces, {5: [("true", -0.5), ("false", -0.9)]})
    assert label_logprobs(text, pieces, alts, ["true", "false"]) == {"true": -0.5, "false": -0.9}


@pytest.mark.parametrize("text", ['no reasoning end {"score": "true"}', "</think> I think it is right."])
def test_label_logprobs_none_without_a_located_value(text):
    # No </think> (the parser fails such an answer anyway), or no score key after it.
    assert label_logprobs(text, [text], [[(text, -0.1)]], ["true", "false"]) is None


def test_label_logprobs_value_right_after_a_forced_prefix():
    # The prefix ends where the value starts: the first generated token is the verdict.
    pieces = ['true"', "}"]
    alts = _alts(pieces, {0: [('true"', -0.1), ('false"', -2.4)]})
    out = label_logprobs('true"}', pieces, alts, ["true", "false"], prefix='<think>x</think>{"score": "')
    assert out == {"true": -0.1, "false": -2.4}
    # A value written inside the prefix was not generated: nothing to report.
    assert label_logprobs("}", ["}"], [[("}", -0.1)]], ["true"], prefix='</think>{"score": "true"') is None


def test_label_logprobs_misaligned_pieces_give_none():
    pieces = ["</think>", '{"score": "', "tru", 'e"}']
    alts = _alts(pieces, {})
    assert label_logprobs('</think>{"score": "false"}', pieces, alts, ["true", "false"]) is None


def test_schema_labels_reads_the_rendered_prompt():
    judge = Judge(model="fake", backend="fake")
    for task, kw in [("pairwise", {"responses": ("a", "b")}), ("binary", {"responses": ("a",)}),
                     ("preference_strength", {"responses": ("a", "b")}), ("pointwise", {"responses": ("a",)})]:
        rendered = judge.render(JudgeRequest(task=task, prompt="q", **kw))
        assert schema_labels(rendered.prompt) == rendered.labels


# =========================================================================================================
# OpenAIBackend against a scripted local HTTP server (no vLLM)
# =========================================================================================================


class _WordTokenizer:
    """Just enough of a tokenizer for `chat_text` and token counting."""

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True, enable_thinking=True):
        return "".join(f"<|{m['role']}|>{m['content']}\n" for m in messages) + "<|assistant|>"

    def __call__(self, text, add_special_tokens=False, **_):
        return {"input_ids": list(range(len(text.split())))}


def _backend(url, **kw):
    kw.setdefault("backoff_s", 0.01)
    return OpenAIBackend("judge", url, tokenizer=_WordTokenizer(), **kw)


def _req(sampling=Sampling(max_tokens=32), user="Is 2+2=4?"):
    return GenerationRequest(ChatPrompt("You judge.", user), sampling)


def test_openai_retries_5xx_with_backoff_then_succeeds():
    def script(n, body, headers):
        return (500, {"error": {"message": "engine overloaded"}}, 0) if n < 2 else (200, completion(), 0)

    with StubServer(script) as server:
        [gen] = _backend(server.url, max_retries=3).generate([_req()])
    assert gen.finish_reason == "stop" and gen.text.endswith('"true"}')
    assert (gen.prompt_tokens, gen.completion_tokens) == (11, 7)  # from the server's usage
    assert len(server.requests) == 3


def test_openai_5xx_every_time_is_a_typed_failure_after_the_retries():
    with StubServer(lambda n, b, h: (503, {"error": {"message": "down for maintenance"}}, 0)) as server:
        judge = Judge("judge", backend=_backend(server.url, max_retries=2), max_retries=0)
        [j] = judge.judge([JudgeRequest(task="binary", prompt="2+2?", responses=("4",))])
    assert j.failure == Failure.ENGINE_ERROR.value and j.score is None
    assert "HTTP 503" in j.meta["error"] and "3 attempt(s)" in j.meta["error"] and server.url in j.meta["error"]
    assert len(server.requests) == 3


def test_openai_4xx_is_not_retried_and_names_the_fix():
    def script(n, body, headers):
        if body["model"] != "judge":
            return 404, {"error": {"message": f"The model `{body['model']}` does not exist."}}, 0
        return 400, {"error": {"message": "This model's maximum context length is 2048 tokens. However, your "
                                          "prompt contains at least 2049 input tokens (parameter=input_tokens)"}}, 0

    with StubServer(script) as server:
        unknown = OpenAIBackend("no-such-model", server.url, tokenizer=_WordTokenizer(), backoff_s=0.01)
        [gen] = unknown.generate([_req()])
        assert gen.finish_reason == "error" and "HTTP 404" in gen.error
        assert "'no-such-model'" in gen.error and f"{server.url}/models" in gen.error
        assert len(server.requests) == 1  # no retry

        [gen] = _backend(server.url).generate([_req()])
        assert "HTTP 400" in gen.error and "--max-model-len" in gen.error
        assert len(server.requests) == 2


def test_openai_unreachable_server_is_a_typed_engine_error_naming_the_url():
    url = f"http://127.0.0.1:{_free_port()}/v1"  # nothing listens there
    judge = Judge("judge", backend=_backend(url, max_retries=1), max_retries=1)
    started = time.perf_counter()
    [j] = judge.judge([JudgeRequest(task="binary", prompt="2+2?", responses=("4",))])
    assert time.perf_counter() - started < 10
    assert j.failure == Failure.ENGINE_ERROR.value and j.attempts == 2  # the judge re-sampled it once
    assert url in j.meta["error"] and "could not reach" in j.meta["error"] and "2 attempt(s)" in j.meta["error"]


def test_openai_timeout_is_reported_with_the_setting_to_change():
    with StubServer(lambda n, b, h: (200, completion(), 2.0)) as server:
        [gen] = _backend(server.url, timeout_s=0.3, max_retries=0).generate([_req()])
    assert gen.finish_reason == "error" and "timeout_s=0.3" in gen.error


def test_openai_api_key_never_appears_in_errors_or_repr(monkeypatch):
    secret = "sk-test-DO-NOT-LEAK-4242"
    monkeypatch.setenv("MR3_TEST_KEY", secret)

    def script(n, body, headers):  # a careless server echoing the credentials it got
        auth = headers.get("authorization", "")
        return (401 if n == 0 else 500), {"error": {"message": f"bad credentials: {auth}"}}, 0

    with StubServer(script) as server:
        backend = _backend(server.url, api_key_env="MR3_TEST_KEY", max_retries=1)
        [unauthorized] = backend.generate([_req()])
        [server_error] = backend.generate([_req()])
    assert server.headers[0]["authorization"] == f"Bearer {secret}"  # the key was sent...
    for text in (unauthorized.error, server_error.error, repr(backend), str(vars(backend))):
        assert secret not in text  # ...and is shown nowhere
    assert "***" in unauthorized.error and "MR3_TEST_KEY" in unauthorized.error


def test_openai_sends_every_request_at_once_up_to_the_concurrency_limit():
    with StubServer(lambda n, b, h: (200, completion(), 0.2)) as server:
        backend = _backend(server.url, max_concurrency=4)
        started = time.perf_counter()
        gens = backend.generate([_req(user=f"q{i}") for i in range(12)])
        elapsed = time.perf_counter() - started
    assert all(g.finish_reason == "stop" for g in gens)
    assert server.max_in_flight == 4
    assert elapsed < 12 * 0.2  # concurrent, not one after another


def test_openai_request_fields_context_cap_and_length():
    models = [{"id": "judge", "object": "model", "max_model_len": 64}]
    with StubServer(lambda n, b, h: (200, completion("partial reasoning", finish="length"), 0), models) as server:
        backend = _backend(server.url)
        long_prompt = _req(user="word " * 80)  # more words than the 64-token context
        short = _req(Sampling(temperature=0.6, top_p=0.9, top_k=20, min_p=0.05, max_tokens=16384, seed=7))
        too_long, gen = backend.generate([long_prompt, short])
    assert backend.max_model_len == 64
    assert too_long.finish_reason == "error" and "context of 64 tokens" in too_long.error
    assert gen.finish_reason == "length"
    [body] = server.requests  # the over-long prompt never left the machine
    n_prompt = len(body["prompt"].split())
    assert body["max_tokens"] == 64 - n_prompt  # capped to the context, as an in-process engine stops there
    assert (body["temperature"], body["top_p"], body["top_k"], body["min_p"], body["seed"]) == (0.6, 0.9, 20, 0.05, 7)
    assert body["prompt"] == chat_text(_WordTokenizer(), short.prompt)  # our template, as rendered
    assert body["skip_special_tokens"] is False


def test_openai_generate_works_inside_a_running_event_loop_and_agenerate_is_native():
    with StubServer(lambda n, b, h: (200, completion(), 0)) as server:
        backend = _backend(server.url)

        async def caller():
            in_loop = backend.generate([_req()])  # a sync call from async code: runs on a worker thread
            native = await backend.agenerate([_req(), _req()])
            return in_loop + native

        gens = asyncio.run(caller())
    assert [g.finish_reason for g in gens] == ["stop"] * 3


def test_openai_malformed_answer_and_bad_options():
    with StubServer(lambda n, b, h: (200, {"unexpected": True}, 0)) as server:
        [gen] = _backend(server.url).generate([_req()])
    assert gen.finish_reason == "error" and server.url in gen.error
    with pytest.raises(ValueError) as info:
        OpenAIBackend("judge", "localhost:8000", tokenizer=_WordTokenizer(), max_concurrency=0, max_retries=-1)
    assert all(word in str(info.value) for word in ("base_url", "max_concurrency", "max_retries"))
    with pytest.raises(ValueError, match="base_url"):
        make_backend("openai", "judge")
    with pytest.raises(ValueError, match="tokenizer="):
        OpenAIBackend("served-name-without-local-files", "http://127.0.0.1:1/v1")


def test_vllm_backend_rejects_bad_options_and_a_wrong_model_path_before_any_engine(tmp_path):
    from mr3_reward.backends.vllm import VLLMBackend

    with pytest.raises(ValueError) as info:
        VLLMBackend("smollm2-135m", dtype="int3", tensor_parallel_size=0, label_logprobs=-1)
    assert all(word in str(info.value) for word in ("dtype", "tensor_parallel_size", "label_logprobs"))
    started = time.perf_counter()
    with pytest.raises(ValueError, match="does not exist"):
        VLLMBackend(str(tmp_path / "no-such-model"))
    assert time.perf_counter() - started < 2  # no engine was started


# =========================================================================================================
# The real vLLM engine, in process
# =========================================================================================================


@pytest.mark.vllm
def test_vllm_folder_without_a_usable_model_is_a_clear_engine_start_error(tmp_path):
    from mr3_reward.backends.vllm import EngineStartError, VLLMBackend

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["NoSuchForCausalLM"]}))
    with pytest.raises(EngineStartError) as info:
        VLLMBackend(str(tmp_path), dtype="float32", kv_cache_memory_bytes=KV_CACHE_BYTES, enforce_eager=True)
    message = str(info.value)
    assert str(tmp_path) in message and "complete model" in message


@pytest.fixture(scope="class")
def engine():
    from mr3_reward.backends.vllm import VLLMBackend

    started = time.perf_counter()
    backend = VLLMBackend(
        "smollm2-135m", dtype="float32", max_model_len=MAX_MODEL_LEN, enforce_eager=True,
        kv_cache_memory_bytes=KV_CACHE_BYTES,
    )
    backend.start_seconds = time.perf_counter() - started
    print(f"\nvLLM engine start: {backend.start_seconds:.1f} s")
    try:
        yield backend
    finally:
        backend.close()


@pytest.mark.vllm
class TestInProcessEngine:
    def test_judges_the_multilingual_sample(self, engine):
        judge = Judge("smollm2-135m", backend=engine, max_tokens=48, max_retries=1)
        requests = _sample_requests()
        out = judge.judge(requests)
        assert len(out) == len(requests) == 12
        for request, j in zip(requests, out):
            assert (j.score is None) == (j.failure is not None)
            if j.ok:
                assert j.score in judge.render(request).labels
            else:
                assert j.failure in FAILURES and j.failure != Failure.ENGINE_ERROR.value, j.meta
            assert j.prompt_tokens > 100 and j.completion_tokens > 0

    def test_greedy_output_equals_raw_vllm_generate_on_the_same_text(self, engine):
        from vllm import SamplingParams

        prompts = [ChatPrompt("You are a helpful assistant.", "Say hi.", prefix=""),
                   ChatPrompt("You are a careful judge.", "Is the sky blue? Think, then answer.", prefix="<think>")]
        ours = engine.generate([GenerationRequest(p, GREEDY) for p in prompts])
        texts = [chat_text(engine.tokenizer, p) for p in prompts]
        raw = engine.llm.generate(texts, SamplingParams(temperature=0.0, max_tokens=24), use_tqdm=False)
        for gen, out in zip(ours, raw):
            assert gen.text == out.outputs[0].text and gen.finish_reason == out.outputs[0].finish_reason
            assert gen.prompt_tokens == len(out.prompt_token_ids)
            assert gen.completion_tokens == len(out.outputs[0].token_ids)

    def test_seeded_sampling_is_reproducible_and_async_matches(self, engine):
        sampled = Sampling(temperature=0.6, top_p=0.95, top_k=20, max_tokens=24, seed=3)
        request = GenerationRequest(ChatPrompt("Be creative.", "Name three colors."), sampled)
        first = engine.generate([request, request])
        again = asyncio.run(engine.agenerate([request]))
        assert first[0].text == first[1].text == again[0].text  # per-request seeds, not batch position

    def test_truncation_is_a_typed_failure(self, engine):
        judge = Judge("smollm2-135m", backend=engine, max_tokens=4, max_retries=0)
        [j] = judge.judge([JudgeRequest(task="binary", prompt="2+2?", responses=("4",))])
        assert j.failure == Failure.TRUNCATED.value and j.completion_tokens == 4

    def test_over_long_prompt_fails_alone(self, engine):
        judge = Judge("smollm2-135m", backend=engine, max_tokens=8, max_retries=0)
        long = JudgeRequest(task="binary", prompt="word " * (MAX_MODEL_LEN + 100), responses=("4",))
        short = JudgeRequest(task="binary", prompt="2+2?", responses=("4",))
        # The judge counts with the engine's tokenizer and sees that even empty responses cannot make the
        # prompt fit: a typed failure before any engine call.
        too_long, fine = judge.judge([long, short])
        assert too_long.failure == Failure.INPUT_TOO_LONG.value
        assert fine.failure != Failure.ENGINE_ERROR.value and fine.completion_tokens > 0
        # Sent to the engine anyway, it fails alone as an engine error that names the limit.
        rendered = Judge("smollm2-135m", backend="fake").render(long)
        gens = engine.generate([GenerationRequest(rendered.prompt, Sampling(max_tokens=8)),
                                GenerationRequest(judge.render(short).prompt, Sampling(max_tokens=8))])
        assert gens[0].finish_reason == "error"
        assert f"context of {MAX_MODEL_LEN} tokens" in gens[0].error and "max_model_len" in gens[0].error
        assert gens[1].finish_reason != "error" and gens[1].completion_tokens > 0

    def test_label_logprobs_at_the_generated_verdict(self, engine):
        judge = Judge("smollm2-135m", backend="fake")
        rendered = judge.render(JudgeRequest(task="binary", prompt="Is 2+2=4?", responses=("Yes, 4.",)))
        # Everything up to the score value is forced, so the first generated token is the verdict.
        prompt = dataclasses.replace(rendered.prompt, prefix='<think>Easy.</think>\n{"explanation": "ok", "score": "')
        request = GenerationRequest(prompt, Sampling(temperature=0.0, max_tokens=6))
        [off] = engine.generate([request])
        assert off.label_logprobs is None  # off by default: it costs engine time on every token
        engine.label_logprobs = 20
        try:
            [gen] = engine.generate([request])
        finally:
            engine.label_logprobs = 0
        assert gen.text == off.text
        # SmolLM2 writes 'true' (or 'True', counted for the same label) and would write 'false' far less often.
        assert set(gen.label_logprobs) == {"true", "false"}, gen
        assert gen.label_logprobs["true"] > gen.label_logprobs["false"] and all(v < 0 for v in gen.label_logprobs.values())
        parsed = judgment_from_generation(gen, dataclasses.replace(rendered, prompt=prompt))
        if parsed.ok:  # greedy picks the most likely label
            assert parsed.score == max(gen.label_logprobs, key=gen.label_logprobs.get)
            assert parsed.meta["label_logprobs"] == dict(gen.label_logprobs)


# =========================================================================================================
# The real vLLM engine behind its OpenAI-compatible server
# =========================================================================================================


@pytest.fixture(scope="class")
def server(tmp_path_factory):
    from mr3_reward.backends.vllm import VLLMServer

    srv = VLLMServer(
        "smollm2-135m", dtype="float32", max_model_len=MAX_MODEL_LEN,
        args=["--enforce-eager", "--kv-cache-memory-bytes", str(KV_CACHE_BYTES)],
        log_path=tmp_path_factory.mktemp("vllm-serve") / "server.log",
    )
    srv.start_seconds = srv.start()
    print(f"\nvllm serve start: {srv.start_seconds:.1f} s")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.mark.vllm
class TestServer:
    def test_judges_the_multilingual_sample_through_the_server(self, server):
        backend = OpenAIBackend("smollm2-135m", server.url, label_logprobs=5)
        judge = Judge("smollm2-135m", backend=backend, max_tokens=48, max_retries=1)
        requests = _sample_requests()
        out = judge.judge(requests)
        assert backend.max_model_len == MAX_MODEL_LEN  # read from the server's /models
        assert len(out) == 12
        for request, j in zip(requests, out):
            assert (j.score is None) == (j.failure is not None)
            assert j.failure in FAILURES | {None} and j.failure != Failure.ENGINE_ERROR.value, j.meta
            assert j.prompt_tokens > 100 and j.completion_tokens > 0

    def test_unknown_model_and_over_long_prompt_are_clear_errors(self, server):
        [gen] = OpenAIBackend("no-such-model", server.url, tokenizer="smollm2-135m").generate(
            [GenerationRequest(ChatPrompt("s", "u"), GREEDY)]
        )
        assert "HTTP 404" in gen.error and "'no-such-model'" in gen.error
        backend = OpenAIBackend("smollm2-135m", server.url)
        long, short = backend.generate([GenerationRequest(ChatPrompt("s", "word " * (MAX_MODEL_LEN + 50)), GREEDY),
                                        GenerationRequest(ChatPrompt("s", "Say hi."), GREEDY)])
        assert long.finish_reason == "error" and "--max-model-len" in long.error
        assert short.finish_reason in ("stop", "length") and short.completion_tokens > 0

    def test_label_logprobs_through_the_server(self, server):
        rendered = Judge("smollm2-135m", backend="fake").render(
            JudgeRequest(task="binary", prompt="Is 2+2=4?", responses=("Yes, 4.",)))
        prompt = dataclasses.replace(rendered.prompt, prefix='<think>Easy.</think>\n{"explanation": "ok", "score": "')
        backend = OpenAIBackend("smollm2-135m", server.url, label_logprobs=20)
        [gen] = backend.generate([GenerationRequest(prompt, Sampling(temperature=0.0, max_tokens=6))])
        assert set(gen.label_logprobs) == {"true", "false"}, gen
        assert gen.label_logprobs["true"] > gen.label_logprobs["false"]

    def test_killed_mid_request_is_a_typed_failure_and_works_after_a_restart(self, server):
        backend = OpenAIBackend("smollm2-135m", server.url, max_retries=1, backoff_s=0.2)
        judge = Judge("smollm2-135m", backend=backend, max_tokens=48, max_retries=1)
        requests = _sample_requests()
        results: list = []
        worker = threading.Thread(target=lambda: results.append(judge.judge(requests)))
        worker.start()
        deadline = time.perf_counter() + 60
        while server.running_requests() < 1 and time.perf_counter() < deadline:
            time.sleep(0.05)
        assert server.running_requests() >= 1, "no request reached the engine"
        server.kill()
        worker.join(timeout=120)
        [first] = results
        failed = [j for j in first if j.failure == Failure.ENGINE_ERROR.value]
        assert failed, "killing the server failed no request"
        assert all(j.attempts == 2 for j in failed)  # the judge re-sampled them, and the retry failed too
        assert all(server.url in j.meta["error"] for j in failed)

        server.start()
        second = judge.judge(requests)  # engine errors are never cached: everything is judged again
        assert all(j.failure != Failure.ENGINE_ERROR.value for j in second), [j.meta for j in second]
