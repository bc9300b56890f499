"""Input validation (issue #9, item 5): every public entry point rejects bad input with an exception of
the right type whose message names the fix; and a 1 MB response is cut to the judge's input limit with
a flag (``truncated_input``), or fails as a typed ``input_too_long``, never with a crash.

Entry points: `Judge` and `Judge.judge`, `JudgeRequest`, `MR3Reward` (constructor and call),
`AsyncMR3Reward`, `Rubric.coerce`, `Sampling`, `JudgmentCache`, and the ``mr3 judge | label | eval``
commands. Each row of a table below is one bad input, the exception type and a regex over the message
that must name what to change.
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from mr3_reward.backends.fake import FakeBackend
from mr3_reward.cache import JudgmentCache
from mr3_reward.cli import main as mr3
from mr3_reward.judge import DEFAULT_MAX_INPUT_TOKENS, Judge
from mr3_reward.reward import AsyncMR3Reward, MR3Reward
from mr3_reward.templates import TRUNCATION_MARK, approx_tokens
from mr3_reward.types import Failure, JudgeRequest, Rubric, Sampling

MEGABYTE = 1_000_000
PAIR = dict(task="pairwise", prompt="Which is better?", responses=("a", "b"))


def request(**kw) -> JudgeRequest:
    return JudgeRequest(**{**PAIR, **kw})


def judge(**kw) -> Judge:
    return Judge(model="fake", backend="fake", **kw)


def reward(**kw) -> MR3Reward:
    return MR3Reward(model="fake", backend="fake", cache=None, **kw)


def megabyte_response(seed: str = "") -> str:
    words = ("The answer is 42 because the sum of the parts, {x} and [y], is what was asked. " + seed) * 20_000
    return words[:MEGABYTE]


# ---------------------------------------------------------------------------------------------------
# The table: (entry point, exception type, what the message must say)

CASES = {
    # Judge and Judge.judge
    "judge(None)": (lambda: judge().judge(None), TypeError, r"takes a list of JudgeRequest, got NoneType"),
    "judge(one request)": (lambda: judge().judge(request()), TypeError, r"judge\(\[request\]\) or judge_one\(request\)"),
    "judge(a string)": (lambda: judge().judge("abc"), TypeError, r"takes a list of JudgeRequest, got str"),
    "judge([dict])": (lambda: judge().judge([{"prompt": "q"}]), TypeError, r"requests\[0\] is a dict, not a JudgeRequest"),
    "judge([None])": (lambda: judge().judge([request(), None]), TypeError, r"requests\[1\] is a NoneType"),
    "Judge(model=None)": (lambda: Judge(None, backend="fake"), ValueError, r"model must be a hub id.*alias such as 'smollm2-135m'"),
    "Judge(model='')": (lambda: Judge("  ", backend="fake"), ValueError, r"model must be a hub id"),
    "Judge(unknown backend)": (lambda: Judge("m", backend="vllmx"), ValueError, r"unknown backend 'vllmx'; use one of: transformers"),
    # backend=None is valid (a judge that renders and keys only); an object that is no backend is not.
    "Judge(backend=object())": (lambda: Judge("m", backend=object()), TypeError, r"backend must be a name .* or an object with model_id"),
    "Judge(backend=None).judge": (lambda: Judge("m", backend=None).judge([]), RuntimeError, r"backend=None"),
    "Judge(max_retries='2')": (lambda: judge(max_retries="2"), ValueError, r"max_retries must be an integer >= 0"),
    "Judge(max_retries=-1)": (lambda: judge(max_retries=-1), ValueError, r"max_retries must be an integer >= 0"),
    "Judge(sampling=dict)": (lambda: judge(sampling={"max_tokens": 5}), ValueError, r"sampling must be a Sampling, e\.g\. Sampling\(max_tokens=512\)"),
    "Judge(backend_options=list)": (lambda: judge(backend_options=[1]), ValueError, r"backend_options must be a dict"),
    "Judge(max_input_tokens=0)": (lambda: judge(max_input_tokens=0), ValueError, r"max_input_tokens must be a positive integer"),
    "Judge(unknown sampling field)": (lambda: judge(max_token=5), TypeError, r"unknown sampling field\(s\) \['max_token'\]; known: .*max_tokens"),
    "Judge(language_mode)": (lambda: judge(language_mode="target"), ValueError, r"use 'auto' or one of: en-prompt-en-thinking"),
    "Judge(cache=5)": (lambda: judge(cache=5), TypeError, r"cache must be None, 'default', a path"),
    "Judge(openai without url)": (lambda: Judge("m", backend="openai"), ValueError, r"base_url.*http://127\.0\.0\.1:8000/v1"),
    "Judge(family without pack)": (lambda: judge(family="strict_pair/general"), ValueError, r"pass pack=<pack dir> too"),
    "Judge(every problem at once)": (lambda: Judge(None, backend="fake", max_retries=-1, max_input_tokens=0), ValueError,
                                     r"model must.*max_retries must.*max_input_tokens must"),
    # JudgeRequest
    "JudgeRequest(prompt=None)": (lambda: request(prompt=None), ValueError, r"prompt must be a string, got NoneType"),
    "JudgeRequest(task=None)": (lambda: request(task=None), ValueError, r"unknown task None; use one of: pairwise"),
    "JudgeRequest(task unknown)": (lambda: request(task="ranking"), ValueError, r"unknown task 'ranking'; use one of"),
    "JudgeRequest(responses=None)": (lambda: request(responses=None), ValueError, r"responses must be a list of strings, got NoneType"),
    "JudgeRequest(responses=str)": (lambda: request(responses="ab"), ValueError, r"responses must be a list of strings, got str"),
    "JudgeRequest(responses=[])": (lambda: request(responses=[]), ValueError, r"task 'pairwise' takes 2 response\(s\), got 0"),
    "JudgeRequest(3 responses)": (lambda: request(responses=["a", "b", "c"]), ValueError, r"takes 2 response\(s\), got 3"),
    "JudgeRequest(response not str)": (lambda: request(responses=["a", 3]), ValueError, r"responses\[1\] must be a string, got int"),
    "JudgeRequest(language=None)": (lambda: request(language=None), ValueError, r"language must be a non-empty language code such as 'en'"),
    "JudgeRequest(reference=5)": (lambda: request(reference=5), ValueError, r"reference must be a string or None, got int"),
    "JudgeRequest(mcq without options)": (lambda: JudgeRequest(task="multiple_choice", prompt="q"), ValueError, r"needs options"),
    "JudgeRequest(pairwise rubric w/o labels)": (lambda: request(rubric={"good": "g", "bad": "b"}), ValueError,
                                                 r"pairwise rubric needs the labels 'Assistant A' and 'Assistant B'"),
    "JudgeRequest(strength rubric w/o labels)": (lambda: request(task="preference_strength", rubric={"1": "x", "2": "y"}),
                                                 ValueError, r"preference_strength rubric needs the labels '1'\.\.'7'"),
    "JudgeRequest(rubric=5)": (lambda: request(rubric=5), TypeError, r"a rubric must be a Rubric, a dict of label -> description"),
    # MR3Reward: construction
    "MR3Reward(mode=None)": (lambda: reward(mode=None), ValueError, r"unknown mode None; use one of: pointwise, binary"),
    "MR3Reward(mode unknown)": (lambda: reward(mode="ranking"), ValueError, r"unknown mode 'ranking'"),
    "MR3Reward(task unknown)": (lambda: reward(task="ranking"), ValueError, r"unknown task 'ranking'; use one of"),
    "MR3Reward(task for mode)": (lambda: reward(mode="group", task="binary"), ValueError, r"mode='group' needs task pairwise"),
    "MR3Reward(rubric=5)": (lambda: reward(rubric=5), ValueError, r"a rubric must be a Rubric, a dict"),
    "MR3Reward(rubric={})": (lambda: reward(rubric={}), ValueError, r"needs at least one 'label: description' entry"),
    "MR3Reward(binary rubric w/o labels)": (lambda: reward(mode="binary", rubric={"yes": "y", "no": "n"}), ValueError,
                                            r"binary rubric needs exactly the labels 'true' and 'false'"),
    "MR3Reward(pointwise rubric w/o numbers)": (lambda: reward(rubric={"good": "g", "bad": "b"}), ValueError,
                                                r"pointwise rubric needs two or more numeric labels"),
    "MR3Reward(group rubric w/o labels)": (lambda: reward(mode="group", rubric={"x": "1", "y": "2"}), ValueError,
                                           r"pairwise rubric needs the labels 'Assistant A' and 'Assistant B'"),
    "MR3Reward(model=None)": (lambda: MR3Reward(model=None, backend="fake", cache=None), ValueError, r"model must be a hub id"),
    "MR3Reward(max_tokens=0)": (lambda: reward(max_tokens=0), ValueError, r"max_tokens must be >= 1"),
    "MR3Reward(temperature=None)": (lambda: reward(temperature=None), ValueError, r"temperature must be a finite number"),
    "MR3Reward(name)": (lambda: reward(name="my reward"), ValueError, r"name must be an identifier-like string"),
    "MR3Reward(columns)": (lambda: reward(columns={"gold": "answer"}), ValueError, r"unknown column role\(s\) \['gold'\].*known: rubric"),
    # MR3Reward: calls
    "reward(mismatched lengths)": (lambda: reward()(["a", "b"], ["x"]), ValueError,
                                   r"got 2 prompts and 1 completions; pass one prompt per completion"),
    "reward(a string)": (lambda: reward()("a", ["x"]), TypeError, r"must be lists \(one item per completion\)"),
    "reward(prompt None)": (lambda: reward()([None], ["x"]), TypeError, r"a prompt must be a string or a list of chat messages"),
    "reward(column length)": (lambda: reward()(["a"], ["x"], reference=["r", "s"]), ValueError, r"one value per completion \(1\)"),
    "reward(no reference column)": (lambda: reward(mode="reference")(["a"], ["x"]), KeyError,
                                    r"no 'reference' column .* map it with columns=\{'reference': '<column>'\}"),
    "reward(None, None)": (lambda: reward()(None, None), TypeError, r"prompts must be a list with one item per completion"),
    "reward(language None)": (lambda: reward(language=None)(["a"], ["x"]), ValueError, r"language must be a non-empty language code"),
    "async reward(mismatched lengths)": (lambda: asyncio.run(AsyncMR3Reward(model="fake", backend="fake", cache=None)(["a", "b"], ["x"])),
                                         ValueError, r"pass one prompt per completion"),
    "async reward(mode)": (lambda: AsyncMR3Reward(model="fake", backend="fake", cache=None, mode="ranking"), ValueError,
                           r"unknown mode 'ranking'; use one of"),
    "acall(a string)": (lambda: asyncio.run(reward().acall("a", "x")), TypeError, r"must be lists"),
    # Rubric.coerce
    "Rubric(None)": (lambda: Rubric.coerce(None), TypeError, r"a rubric must be a Rubric, a dict of label -> description or text"),
    "Rubric({})": (lambda: Rubric.coerce({}), ValueError, r"needs at least one 'label: description' entry"),
    "Rubric([1, 2])": (lambda: Rubric.coerce([1, 2]), ValueError, r"rubric entry 1 is not a \(label, description\) pair; pass a dict"),
    "Rubric(None description)": (lambda: Rubric.coerce({"true": None}), ValueError, r"rubric description None \(for 'true'\) must be a string"),
    "Rubric(text without colon)": (lambda: Rubric.coerce("true\nfalse"), ValueError, r"rubric line 1 has no 'label: description' form"),
    "Rubric(duplicate, empty)": (lambda: Rubric.coerce([("a", "x"), ("a", "y"), ("", "z")]), ValueError,
                                 r"'a' appears twice.*label is empty"),
    # Sampling
    "Sampling(temperature=None)": (lambda: Sampling(temperature=None), ValueError, r"temperature must be a finite number, got None"),
    "Sampling(temperature='0.6')": (lambda: Sampling(temperature="0.6"), ValueError, r"temperature must be a finite number, got '0\.6'"),
    "Sampling(temperature=nan)": (lambda: Sampling(temperature=float("nan")), ValueError, r"temperature must be a finite number"),
    "Sampling(temperature=-1)": (lambda: Sampling(temperature=-1), ValueError, r"temperature must be >= 0 \(0 = greedy\)"),
    "Sampling(top_p=0)": (lambda: Sampling(top_p=0), ValueError, r"top_p must be in \(0, 1\]"),
    "Sampling(top_k=0)": (lambda: Sampling(top_k=0), ValueError, r"top_k must be -1 \(off\) or >= 1"),
    "Sampling(top_k=2.5)": (lambda: Sampling(top_k=2.5), ValueError, r"top_k must be an integer, got 2\.5"),
    "Sampling(min_p=2)": (lambda: Sampling(min_p=2), ValueError, r"min_p must be in \[0, 1\]"),
    "Sampling(max_tokens=1.5)": (lambda: Sampling(max_tokens=1.5), ValueError, r"max_tokens must be an integer, got 1\.5"),
    "Sampling(max_tokens=True)": (lambda: Sampling(max_tokens=True), ValueError, r"max_tokens must be an integer, got True"),
    "Sampling(seed='a')": (lambda: Sampling(seed="a"), ValueError, r"seed must be an integer or None"),
    "Sampling(every problem)": (lambda: Sampling(temperature=-1, top_p=2, max_tokens=0), ValueError,
                                r"temperature.*top_p.*max_tokens"),
    "Sampling.with_(unknown)": (lambda: Sampling().with_(temp=1), TypeError, r"unknown sampling field\(s\) \['temp'\]; known: temperature"),
    # JudgmentCache
    "JudgmentCache(path=123)": (lambda: JudgmentCache(123), TypeError, r"path must be a file path \(str or Path\), ':memory:', or None"),
    "JudgmentCache(memory_items=-1)": (lambda: JudgmentCache(":memory:", memory_items=-1), ValueError, r"memory_items must be an int >= 0"),
    "JudgmentCache(memory_items='5')": (lambda: JudgmentCache(":memory:", memory_items="5"), ValueError, r"memory_items must be an int >= 0"),
    "JudgmentCache(namespace=1)": (lambda: JudgmentCache(":memory:", namespace=1), TypeError, r"namespace must be a string"),
    "cache.get(None)": (lambda: JudgmentCache(":memory:").get(None), TypeError, r"cache keys must be strings, got NoneType"),
    "cache.get_many(None)": (lambda: JudgmentCache(":memory:").get_many(None), TypeError, r"get_many takes a list of string keys"),
    "cache.get_many(str)": (lambda: JudgmentCache(":memory:").get_many("key"), TypeError, r"use get\(key\) for one key"),
    "cache.put_many(None)": (lambda: JudgmentCache(":memory:").put_many(None), TypeError, r"put_many takes a dict of key -> record"),
    "cache.put(list)": (lambda: JudgmentCache(":memory:").put("k", ["x"]), TypeError, r"cache records must be dicts"),
    "cache.put(not JSON)": (lambda: JudgmentCache(":memory:").put("k", {"x": object()}), TypeError, r"not JSON serializable"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_refused_with_a_message_that_names_the_fix(name):
    call, error, message = CASES[name]
    with pytest.raises(error) as e:
        call()
    text = e.value.args[0] if isinstance(e.value, KeyError) else str(e.value)
    assert re.search(message, str(text), re.S), f"{name}: {text}"


def test_the_table_covers_every_entry_point_and_kind_of_bad_input():
    names = " ".join(CASES)
    for entry in ("judge(", "Judge(", "JudgeRequest(", "MR3Reward(", "reward(", "async reward(", "Rubric(", "Sampling(",
                  "JudgmentCache(", "cache."):
        assert entry in names, entry
    for kind in ("None", "str", "[]", "mismatched", "unknown", "w/o labels"):
        assert kind in names, kind
    assert len(CASES) >= 80


@pytest.mark.parametrize("mode, rubric, labels", [
    ("pointwise", {"good": "g", "bad": "b"}, "two or more numeric labels"),
    ("binary", {"yes": "y", "no": "n"}, "exactly the labels 'true' and 'false'"),
    ("group", {"good": "g"}, "the labels 'Assistant A' and 'Assistant B'"),
    ("reference", {"x": "1"}, "the labels 'Assistant A' and 'Assistant B'"),
    ("strength", {"true": "t", "false": "f"}, "the labels '1'..'7'"),
])
def test_a_rubric_column_without_the_modes_labels_is_that_rows_typed_failure(mode, rubric, labels, caplog):
    """Inside a training loop a bad row must not crash the step: its reward is None (masked by TRL), the
    verdict column and the log say why, and the other rows are judged."""
    logged = {}
    r = reward(mode=mode)
    # Three completions of one prompt, so in group mode the two good rows still have each other.
    rewards = r(["q"] * 3, ["x", "y", "z"], rubric=[rubric, None, None], reference=["ref"] * 3,
                log_extra=lambda k, v: logged.__setitem__(k, v))
    assert rewards[0] is None and None not in rewards[1:]
    assert logged["mr3_verdict"][0].startswith("not judged: rubric column: ") and labels in logged["mr3_verdict"][0]
    assert any(labels in rec.getMessage() for rec in caplog.records if rec.name == "mr3_reward.reward")
    # Every row of the batch with the same bad rubric: no made-up reward for any of them (in group mode
    # they would otherwise all "tie" with each other).
    assert r(["q"] * 3, ["x", "y", "z"], rubric=[rubric] * 3, reference=["ref"] * 3) == [None] * 3


def test_empty_batches_are_valid_and_cost_nothing():
    backend = FakeBackend()
    assert Judge(backend=backend).judge([]) == []
    assert MR3Reward(judge=Judge(backend=backend))([], []) == []
    assert backend.calls == 0


# ---------------------------------------------------------------------------------------------------
# The command line: bad files and bad arguments exit 2 with one line naming the fix


def write(path, lines):
    path.write_text("".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines), encoding="utf-8")
    return path


GOOD = [{"prompt": "2+2?", "responses": ["4", "5"]}]
CLI = {
    "judge: missing file": (["judge", "--input", "{tmp}/nope.jsonl", "--output", "{tmp}/o.jsonl"], "does not exist"),
    "judge: not JSON": (["judge", "--input", "{bad}", "--output", "{tmp}/o.jsonl"], r"bad\.jsonl:1: not valid JSON"),
    "judge: empty file": (["judge", "--input", "{empty}", "--output", "{tmp}/o.jsonl"], "is empty: it needs one JSON object per line"),
    "judge: unknown task": (["judge", "--input", "{good}", "--output", "{tmp}/o.jsonl", "--task", "rank"], "unknown task 'rank'; use one of"),
    "judge: max tokens 0": (["judge", "--input", "{good}", "--output", "{tmp}/o.jsonl", "--max-tokens", "0"], "max_tokens must be >= 1"),
    "judge: retries -1": (["judge", "--input", "{good}", "--output", "{tmp}/o.jsonl", "--max-retries", "-1"], "max_retries must be an integer >= 0"),
    "judge: openai without url": (["judge", "--input", "{good}", "--output", "{tmp}/o.jsonl", "--backend", "openai"],
                                  "--backend openai needs --base-url"),
    "judge: a folder": (["judge", "--input", "{tmp}", "--output", "{tmp}/o.jsonl"], "is a folder; pass a JSONL file"),
    "judge: max input tokens 0": (["judge", "--input", "{good}", "--output", "{tmp}/o.jsonl", "--max-input-tokens", "0"],
                                  "max_input_tokens must be a positive integer"),
    "eval: seeds not integers": (["eval", "--data", "{good}", "--layout", "m-reward-bench", "--seeds", "a,b"],
                                 "--seeds takes comma-separated integers, e.g. --seeds 0,1,2"),
    "judge: missing pack": (["judge", "--input", "{good}", "--output", "{tmp}/o.jsonl", "--pack", "{tmp}/nopack"],
                            "pass the folder that holds the \\*_translated_templates.json files"),
    "label: missing file": (["label", "{tmp}/nope.jsonl", "{tmp}/out"], "does not exist"),
    "label: one response": (["label", "{one}", "{tmp}/out"], r"one\.jsonl:1: 1 response\(s\)"),
    "label: shard size 0": (["label", "{good}", "{tmp}/out", "--shard-size", "0"], "shard_size must be a positive int"),
    "eval: missing file": (["eval", "--data", "{tmp}/nope.jsonl", "--layout", "m-reward-bench"], "does not exist"),
    "eval: unknown layout": (["eval", "--data", "{good}", "--layout", "arena"], "unknown layout 'arena'; use one of: m-reward-bench"),
    "eval: wrong columns": (["eval", "--data", "{good}", "--layout", "m-reward-bench"],
                            "layout 'm-reward-bench' needs column\\(s\\) input, response_1"),
}


@pytest.mark.parametrize("name", list(CLI))
def test_cli_refuses_bad_files_and_arguments_naming_the_fix(name, tmp_path, capsys):
    args, message = CLI[name]
    files = {
        "tmp": str(tmp_path),
        "good": str(write(tmp_path / "good.jsonl", GOOD)),
        "bad": str(write(tmp_path / "bad.jsonl", ["{not json"])),
        "empty": str(write(tmp_path / "empty.jsonl", [])),
        "one": str(write(tmp_path / "one.jsonl", [{"prompt": "x", "responses": ["a"]}])),
    }
    argv = [a.format(**files) for a in args] + ["--backend", "fake", "--model", "fake"] * ("--backend" not in args)
    assert mr3(argv + (["--quiet"] if args[0] != "eval" else [])) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["judge", "--input", "x", "--output", "y", "--backend", "nope"], r"invalid choice: 'nope' \(choose from 'transformers'"),
    (["label", "x", "y", "--strategy", "best"], r"invalid choice: 'best' \(choose from 'best-worst'"),
    (["judge", "--output", "y"], "the following arguments are required: --input"),
    (["judge", "--input", "x", "--output", "y", "--max-tokens", "many"], "--max-tokens: invalid int value: 'many'"),
])
def test_cli_argument_errors_show_the_choices(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        mr3(argv)
    assert e.value.code == 2
    assert re.search(message, capsys.readouterr().err)


# ---------------------------------------------------------------------------------------------------
# 1 MB responses: cut to the input limit with a flag, or a typed failure; never a crash


def test_a_one_megabyte_response_is_cut_to_the_limit_and_flagged():
    seen = []
    backend = FakeBackend(lambda prompt, sampling: seen.append(prompt) or
                          'ok</think>{"explanation": "short wins", "score": "Assistant B"}')
    j = Judge(backend=backend)  # an engine without a tokenizer or context: the documented default limit
    assert j.input_limit == DEFAULT_MAX_INPUT_TOKENS
    big = megabyte_response()
    [out] = j.judge([request(responses=(big, "A short, correct answer."))])
    assert out.score == "Assistant B" and out.truncated_input and out.failure is None
    [prompt] = seen
    assert approx_tokens(prompt) <= DEFAULT_MAX_INPUT_TOKENS
    assert approx_tokens(prompt) > 0.95 * DEFAULT_MAX_INPUT_TOKENS  # cut close to the limit, not far below it
    kept = prompt.user.split("    # Assistant A\n    ", 1)[1].split(TRUNCATION_MARK, 1)[0]
    assert big.startswith(kept) and len(kept) > 10_000  # the start of the response, as it was
    assert "A short, correct answer." in prompt.user  # the short response is whole
    assert prompt.user.endswith("# Your Response\n    ")


def test_inputs_that_fit_are_not_touched():
    j = judge()
    small = request(responses=("x" * 5_000, "y"))
    assert j.render(small) == j.renderer.render(small)
    [out] = j.judge([small])
    assert not out.truncated_input and out.ok


def test_an_input_that_cannot_fit_is_a_typed_failure_without_an_engine_call(tmp_path):
    backend = FakeBackend()
    j = Judge(backend=backend, max_input_tokens=2_000, cache=tmp_path / "c.sqlite")
    huge_prompt = request(prompt="Read this first: " + "lorem ipsum " * 1_000, responses=(megabyte_response(), "b"))
    no_response = JudgeRequest(task="binary", prompt="Is this harmful? " + "text " * 2_000)
    outs = j.judge([huge_prompt, no_response, request()])
    assert [o.failure for o in outs] == [Failure.INPUT_TOO_LONG.value, Failure.INPUT_TOO_LONG.value, None]
    assert backend.items == 1 and outs[0].attempts == 0
    assert "raise max_input_tokens" in outs[0].meta["error"] and "shorten the prompt" in outs[1].meta["error"]
    # Never cached: the same request under a larger limit is judged.
    larger = Judge(backend=backend, max_input_tokens=100_000, cache=tmp_path / "c.sqlite")
    assert larger.judge([no_response])[0].ok and backend.items == 2


@pytest.fixture(scope="module")
def tiny_judge():
    import torch

    torch.set_num_threads(1)
    return Judge("tiny-random", max_tokens=8, max_retries=0)


@pytest.mark.model
@pytest.mark.timeout(300)
def test_a_one_megabyte_response_through_the_real_transformers_backend(tiny_judge):
    # tiny-random: a 2-layer model with SmolLM2's tokenizer and its 8192-token context.
    limit = tiny_judge.input_limit
    assert limit == 8192 - 8
    big = megabyte_response("Ünïcödé 中文 😀 ")
    req = request(responses=(big, megabyte_response("other")))
    rendered = tiny_judge.render(req)
    assert rendered.truncated_input
    n = tiny_judge.backend.count_tokens(rendered.prompt)
    assert 0.95 * limit < n <= limit  # the model's own tokenizer says it fits, close to the limit
    [out] = tiny_judge.judge([req])
    assert out.truncated_input and out.failure != Failure.ENGINE_ERROR.value  # the engine took it
    assert out.prompt_tokens == n and out.completion_tokens > 0
    assert (out.score is None) == (out.failure is not None)


@pytest.mark.model
@pytest.mark.timeout(300)
def test_a_one_megabyte_completion_through_mr3reward_gives_a_reward_or_none(tiny_judge):
    for mode in ("pointwise", "group"):
        r = MR3Reward(judge=tiny_judge, mode=mode)
        log = {}
        rewards = r(["What is the answer?"] * 2, [megabyte_response(), "42."],
                    log_metric=lambda k, v: log.__setitem__(k, v))
        assert len(rewards) == 2
        assert all(x is None or (isinstance(x, float) and -1.0 <= x <= 1.0) for x in rewards), rewards
        assert log["mr3/judgments"] >= 1
