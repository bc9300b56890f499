"""MR3Reward on the scripted backend: modes, cache, dedup, debiasing, logging, bad input."""

import asyncio
import math
import pickle

import pytest

from mr3_reward.backends.base import Generation
from mr3_reward.backends.fake import FakeBackend
from mr3_reward.judge import Judge
from mr3_reward.debias import pair_schedule
from mr3_reward.reward import AsyncMR3Reward, MR3Reward


def answer(label, explanation="because"):
    return f'<think>…</think>{{"explanation": "{explanation}", "score": "{label}"}}'


def response_under(prompt, header):
    """The text the judge sees under a section header of the user message."""
    lines = prompt.user.split("\n")
    return lines[lines.index(f"    # {header}") + 1].strip()


def prefers_longer(prompt, sampling):
    a, b = response_under(prompt, "Assistant A"), response_under(prompt, "Assistant B")
    return answer("Assistant A" if len(a) >= len(b) else "Assistant B")


def reward(backend, **kw):
    kw.setdefault("cache", None)
    return MR3Reward(judge=Judge(backend=backend, cache=kw.pop("cache")), **kw)


class Log:
    def __init__(self):
        self.extra, self.metrics = {}, {}

    def log_extra(self, column, values):
        self.extra[column] = list(values)

    def log_metric(self, name, value):
        self.metrics[name] = value


def test_pointwise_normalizes_the_rubric_scale():
    scores = {"short": "1", "medium": "3", "a much longer answer": "5"}
    fb = FakeBackend(lambda p, s: answer(scores[response_under(p, "Response")]))
    r = reward(fb, mode="pointwise")
    assert r(["q"] * 3, list(scores)) == [0.0, 0.5, 1.0]


def test_binary_reads_the_reference_column():
    fb = FakeBackend(lambda p, s: answer("true" if response_under(p, "Response") == response_under(p, "Reference Answer") else "false"))
    r = reward(fb, mode="binary")
    assert r(["2+2?", "3+3?"], ["4", "7"], reference=["4", "6"]) == [1.0, 0.0]


def test_group_mode_gives_win_rates_and_costs_what_the_docs_say():
    fb = FakeBackend(prefers_longer)
    r = reward(fb, mode="group")  # debias both by default
    comps = ["a", "bbb", "cc", "dddd"]
    out = r(["p"] * 4, comps)
    assert out == [0.0, 2 / 3, 1 / 3, 1.0]
    assert fb.items == 4 * 3 // 2 * 2  # round robin n(n-1)/2 pairs, both orders
    assert r.last_metrics["position_consistency"] == 1.0


def test_group_schedule_with_k_opponents():
    assert sorted(pair_schedule([0, 1, 2, 3, 4, 5], 1)) == [(0, 1), (0, 5), (1, 2), (2, 3), (3, 4), (4, 5)]
    assert len(pair_schedule(list(range(8)), None)) == 28
    fb = FakeBackend(prefers_longer)
    r = reward(fb, mode="group", group_opponents=1, debias="none")
    r(["p"] * 6, ["a", "bb", "ccc", "dddd", "eeeee", "ffffff"])
    assert fb.items == 6


def test_groups_are_found_by_prompt_identity():
    fb = FakeBackend(prefers_longer)
    r = reward(fb, mode="group", debias="none")
    out = r(["p1", "p2", "p1", "p2"], ["long answer", "x", "s", "yy"])
    assert out == [1.0, 0.0, 0.0, 1.0]
    assert fb.items == 2


def test_position_bias_becomes_ties_with_both_orders():
    biased = FakeBackend(lambda p, s: answer("Assistant A"))  # always prefers the first slot
    r = reward(biased, mode="group", debias="both")
    log = Log()
    out = r(["p"] * 3, ["one", "two", "three"], log_extra=log.log_extra, log_metric=log.log_metric)
    assert out == [0.5, 0.5, 0.5]
    assert log.metrics["mr3/position_consistency"] == 0.0
    single = reward(FakeBackend(lambda p, s: answer("Assistant A")), mode="group", debias="none")
    assert single(["p"] * 2, ["one", "two"]) == [1.0, 0.0]


def test_reference_and_strength_modes():
    fb = FakeBackend(prefers_longer)
    r = reward(fb, mode="reference")
    assert r(["q", "q", "q"], ["longer one", "s", "same"], reference=["mid", "mid", "same"]) == [1.0, 0.0, 0.5]
    assert fb.items == 4  # the identical pair is a tie without a judgment

    strength = FakeBackend(lambda p, s: answer("2" if len(response_under(p, "Response 1")) > len(response_under(p, "Response 2")) else "6"))
    r = reward(strength, mode="strength")
    out = r(["q", "q"], ["longer one", "s"], reference=["mid", "mid"])
    assert out == pytest.approx([2 * (5 / 6) - 1, 2 * (1 / 6) - 1])


def test_repeating_a_batch_makes_zero_engine_calls(tmp_path):
    fb = FakeBackend(prefers_longer)
    r = reward(fb, mode="group", cache=tmp_path / "cache.sqlite")
    batch = (["p"] * 4, ["a", "bbb", "cc", "dddd"])
    first = r(*batch)
    calls, items = fb.calls, fb.items
    second = r(*batch)
    assert (fb.calls, fb.items) == (calls, items)
    assert second == first
    assert r.last_metrics["cache_hit_rate"] == 1.0


def test_duplicates_cost_one_engine_item_each():
    fb = FakeBackend(lambda p, s: answer("4"))
    r = reward(fb, mode="pointwise")
    out = r(["q"] * 6, ["x", "y", "x", "x", "y", "z"])
    assert fb.items == 3 and fb.calls == 1
    assert out == [0.75] * 6


def test_failures_are_none_and_counted_never_zero():
    fb = FakeBackend(lambda p, s: "<think>I refuse to answer in JSON</think> no verdict here" if "bad" in p.user else answer("5"))
    r = reward(fb, mode="pointwise")
    log = Log()
    out = r(["q", "q"], ["good", "bad"], log_extra=log.log_extra, log_metric=log.log_metric)
    assert out == [1.0, None]
    assert log.metrics["mr3/failure_rate"] == 0.5 and log.metrics["mr3/none_rewards"] == 1.0
    assert log.extra["mr3_verdict"][1] == "not judged: bad_json"
    assert log.extra["mr3_verdict"][0].startswith("5: because")


def test_soft_rewards_use_label_probabilities():
    def respond(p, s):
        return Generation(text=answer("true"), label_logprobs={"true": math.log(0.8), "false": math.log(0.2)})

    hard = reward(FakeBackend(respond), mode="binary")
    soft = reward(FakeBackend(respond), mode="binary", soft=True)
    assert hard(["q"], ["a"]) == [1.0]
    assert soft(["q"], ["a"]) == pytest.approx([0.8])


def test_conversational_prompts_and_completions():
    seen = []
    fb = FakeBackend(lambda p, s: seen.append(p.user) or answer("3"))
    r = reward(fb, mode="pointwise")
    prompts = [[{"role": "system", "content": "be nice"}, {"role": "user", "content": "Hello?"}]]
    completions = [[{"role": "assistant", "content": "Hi there."}]]
    assert r(prompts, completions) == [0.5]
    assert "Hello?" in seen[0] and "Hi there." in seen[0] and "be nice" not in seen[0]


def test_bad_completions_get_typed_none_or_minimum():
    fb = FakeBackend(lambda p, s: answer("5"))
    r = reward(fb, mode="pointwise")
    log = Log()
    out = r(["q"] * 4, ["fine", None, 42, "   "], log_extra=log.log_extra)
    assert out == [1.0, None, None, 0.0]
    assert log.extra["mr3_verdict"][1] == "not judged: completion is a NoneType, not text"
    assert log.extra["mr3_verdict"][3] == "empty completion: minimum reward"
    assert fb.items == 1


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda r: r(["a", "b"], ["x"]), ValueError, "2 prompts and 1 completions"),
        (lambda r: r("a", ["x"]), TypeError, "must be lists"),
        (lambda r: r(["a"], ["x"], reference=["r", "s"]), ValueError, "one value per completion"),
        (lambda r: r([3], ["x"]), TypeError, "a prompt must be a string or a list of chat messages"),
    ],
)
def test_bad_batches_give_clear_errors(call, error, match):
    r = reward(FakeBackend(), mode="binary")
    with pytest.raises(error, match=match):
        call(r)


def test_missing_columns_name_the_fix():
    r = reward(FakeBackend(), mode="reference")
    with pytest.raises(KeyError, match="no 'reference' column"):
        r(["q"], ["a"], answer=["b"])
    mapped = reward(FakeBackend(), mode="reference", columns={"reference": "answer"})
    assert mapped(["q"], ["a"], answer=["b"]) == [0.5]
    wrong = reward(FakeBackend(), mode="binary", columns={"reference": "gold"})
    with pytest.raises(KeyError, match="batch has no 'gold' column; columns present: answer"):
        wrong(["q"], ["a"], answer=["b"])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(mode="ranking"), "unknown mode 'ranking'"),
        (dict(mode="pointwise", debias="both"), "debias='both' needs a pairwise mode"),
        (dict(mode="group", task="binary"), "mode='group' needs task pairwise, preference_strength"),
        (dict(mode="binary", rubric={"yes": "y", "no": "n"}), "labels 'true' and 'false'"),
        (dict(mode="pointwise", rubric={"good": "g", "bad": "b"}), "numeric labels"),
        (dict(mode="pointwise", group_opponents=2), "group_opponents"),
        (dict(mode="group", on_disagree="coin"), "on_disagree must be one of"),
        (dict(mode="binary", columns={"gold": "answer"}), "unknown column role"),
        (dict(mode="binary", name="my reward"), "name must be"),
        (dict(mode="binary", max_tokens=0), "max_tokens must be >= 1"),
    ],
)
def test_invalid_configurations_fail_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MR3Reward(model="fake", backend="fake", cache=None, **kwargs)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ValueError) as e:
        MR3Reward(model="fake", backend="fake", cache=None, mode="pointwise", debias="both", on_disagree="coin")
    assert "debias='both'" in str(e.value) and "on_disagree" in str(e.value)


def test_judge_and_engine_options_conflict():
    with pytest.raises(ValueError, match="drop max_tokens"):
        MR3Reward(judge=Judge(backend=FakeBackend()), max_tokens=10)


def test_name_and_pickling():
    r = MR3Reward(model="fake", backend="fake", mode="binary", cache=None, name="judge_reward")
    assert r.__name__ == "judge_reward"
    clone = pickle.loads(pickle.dumps(r))
    assert clone(["q"], ["a"]) == [1.0] and clone.__name__ == "judge_reward"


def test_async_forms():
    r = MR3Reward(model="fake", backend="fake", mode="binary", cache=None)
    assert asyncio.run(r.acall(["q"], ["a"])) == [1.0]
    ar = AsyncMR3Reward(model="fake", backend="fake", mode="binary", cache=None)
    assert asyncio.iscoroutinefunction(type(ar).__call__)
    assert asyncio.run(ar(["q"], ["a"])) == [1.0]


def test_the_readme_imports_work():
    import mr3_reward
    from mr3_reward.judge import Judge

    assert (mr3_reward.MR3Reward, mr3_reward.AsyncMR3Reward, mr3_reward.Judge) == (MR3Reward, AsyncMR3Reward, Judge)
