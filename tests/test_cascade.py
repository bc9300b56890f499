"""A rule checker in front of the judge: `number_match` on a table of forms, then `MR3Reward(verifier=...)`
with each ``ask_judge`` mode, counting at the engine which completions the judge saw (SmolLM2-135M), sync
and async, a verifier that raises, and a real GRPO step (the cascade example)."""

from __future__ import annotations

import asyncio
import logging
import math

import pytest

from mr3_reward.errors import ConfigError
from mr3_reward.reward import AsyncMR3Reward, MR3Reward
from mr3_reward.verifiers import number_match, read_numbers

# (language, completion, reference, expected verdict)
FORMS = [
    ("en", "The answer is 1,234.", "1234", True),
    ("en", "It is 1 234 in total", "1234", True),
    ("en", "forty-two", "42", None),
    ("en", "Let's solve this step by step.", "42", None),
    ("de", "Das Ergebnis ist 1.234.567.", "1234567", True),
    ("de", "Die Antwort ist 3,5.", "3.5", True),
    ("de", "zweiundvierzig", "42", None),
    ("fr", "Cela fait 41.", "42", False),
    ("es", "La respuesta es −7.", "-7", True),
    ("ru", "Ответ: 56.", "56", True),
    ("ru", "пятьдесят шесть", "56", None),
    ("zh", "答案是４２。", "42", True),
    ("zh", "答案是四十二。", "42", None),
    ("ja", "答えは１２０です。", "120", True),
    ("ar", "الجواب هو ٤٢.", "42", True),
    ("ar", "الجواب هو ٤٣.", "42", False),
    ("fa", "پاسخ ۴۲ است.", "42", True),
    ("hi", "उत्तर ४२ है।", "42", True),
    ("bn", "উত্তর হলো ৪২।", "42", True),
    ("th", "คำตอบคือ ๔๒", "42", True),
    ("en", "First 6 x 7, so 42.", "42", True),  # the last number is the answer
    ("en", "42", None, None),                     # no reference: cannot tell
    ("en", "42", "about forty", None),            # a reference with no number
]


@pytest.mark.parametrize("language,completion,reference,expected", FORMS)
def test_number_match_reads_digits_in_every_script(language, completion, reference, expected):
    assert number_match("q", completion, reference=reference) is expected


def test_number_match_takes_conversational_completions():
    assert number_match([{"role": "user", "content": "6x7?"}], [{"role": "assistant", "content": "42"}],
                        reference="42") is True
    assert read_numbers("") == [] and len({lang for lang, *_ in FORMS}) >= 8


def test_bad_cascade_options_fail_at_construction():
    with pytest.raises(ConfigError, match="ask_judge must be one of"):
        MR3Reward(model="fake", backend="fake", mode="binary", cache=None, verifier=number_match, ask_judge="never")
    with pytest.raises(ConfigError, match="needs mode='binary'"):
        MR3Reward(model="fake", backend="fake", mode="pointwise", cache=None, verifier=number_match)
    with pytest.raises(ConfigError, match="needs a verifier"):
        MR3Reward(model="fake", backend="fake", mode="binary", cache=None, ask_judge="always")


# -- on a real judge, counting at the engine --------------------------------------------------------------
COMPLETIONS = ["The answer is 42.", "It is 41.", "zweiundvierzig", "I am not sure."]
VERIFIED = [True, False, None, None]
ASKED = {"unsure": {2, 3}, "not_true": {1, 2, 3}, "always": {0, 1, 2, 3}}


class Counting:
    """A backend that records which completions reach the engine, around a real one."""

    def __init__(self, inner):
        self.inner, self.model_id, self.seen = inner, inner.model_id, []

    def generate(self, requests):
        self.seen += [r.prompt.user for r in requests]
        return self.inner.generate(requests)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def judged(self):
        return {i for i, c in enumerate(COMPLETIONS) if any(c in user for user in self.seen)}


@pytest.fixture(scope="module")
def smol():
    from mr3_reward.backends.transformers import TransformersBackend

    return TransformersBackend("smollm2-135m")


def _reward(smol, ask_judge, cls=MR3Reward, verifier=number_match):
    from mr3_reward.judge import Judge

    engine = Counting(smol)
    judge = Judge("smollm2-135m", backend=engine, cache=None, max_retries=0, thinking_budget=4,
                  verdict="constrained", explanation_tokens=4, max_tokens=24, temperature=0.0)
    return cls(judge=judge, mode="binary", verifier=verifier, ask_judge=ask_judge), engine


@pytest.mark.model
@pytest.mark.parametrize("ask_judge", list(ASKED))
def test_each_mode_asks_the_judge_exactly_where_it_should(smol, ask_judge):
    reward, engine = _reward(smol, ask_judge)
    logged = {}
    rewards = reward(["What is 6 x 7?"] * 4, COMPLETIONS, reference=["42"] * 4,
                     log_metric=lambda k, v: logged.__setitem__(k, v))
    assert engine.judged() == ASKED[ask_judge]
    assert all(isinstance(r, float) for r in rewards)
    for i, v in enumerate(VERIFIED):
        if i not in ASKED[ask_judge]:
            assert rewards[i] == (1.0 if v else 0.0)
    assert logged["mr3/judge_calls_saved"] == pytest.approx(1 - len(ASKED[ask_judge]) / 4)
    assert "mr3/verifier_overruled" in logged
    if ask_judge == "always":
        assert 0.0 <= logged["mr3/verifier_judge_agreement"] <= 1.0


@pytest.mark.model
def test_the_async_reward_cascades_the_same_way(smol):
    reward, engine = _reward(smol, "unsure", cls=AsyncMR3Reward)
    rewards = asyncio.run(reward(["What is 6 x 7?"] * 4, COMPLETIONS, reference=["42"] * 4))
    assert engine.judged() == ASKED["unsure"] and rewards[:2] == [1.0, 0.0]


def _raises(prompt, completion, **columns):
    if "41" in completion:
        raise RuntimeError("my rule broke")
    return number_match(prompt, completion, **columns)


@pytest.mark.model
def test_a_raising_verifier_costs_one_warning_and_that_row_goes_to_the_judge(smol, caplog):
    reward, engine = _reward(smol, "unsure", verifier=_raises)
    with caplog.at_level(logging.WARNING, logger="mr3_reward.reward"):
        rewards = reward(["What is 6 x 7?"] * 4, COMPLETIONS, reference=["42"] * 4)
    warnings = [r for r in caplog.records if "verifier failed" in r.getMessage()]
    assert len(warnings) == 1 and "my rule broke" in warnings[0].getMessage()
    assert engine.judged() == {1, 2, 3} and all(isinstance(r, float) for r in rewards)


@pytest.mark.model
def test_grpo_step_with_the_cascade_example_logs_its_rewards(tmp_path):
    from test_examples import Recording, load, same

    example = load("grpo_verifier_cascade")
    reward = Recording(model="smollm2-135m", mode="binary", cache=None, verifier=_raises, thinking_budget=8,
                       verdict="constrained", explanation_tokens=8, max_tokens=32, max_retries=0)
    trainer, reward = example.main(output_dir=str(tmp_path / "out"), reward=reward)
    assert trainer.state.global_step == 1
    rewards = reward.calls[0][3]
    assert len(rewards) == 4 and all(isinstance(r, float) for r in rewards)
    assert same(list(trainer._logs["rewards"]["mr3"]), rewards)  # the floats reached the trainer's log
    logged = trainer.state.log_history[0]
    assert 0.0 <= logged["mr3/judge_calls_saved"] <= 1.0 and "mr3/verifier_overruled" in logged


# -- judge failures stay out of GRPO's baseline -----------------------------------------------------------
@pytest.mark.model
def test_judge_failures_are_masked_and_the_group_mean_is_over_the_judged_only(tmp_path, monkeypatch):
    """A real GRPO step (tiny policy) whose judge fails on some completions: those rewards are None (NaN in
    TRL), their advantage is 0, and each group's baseline is the mean of its judged completions only."""
    import torch
    from trl import GRPOTrainer

    from mr3_reward.backends.base import Generation
    from mr3_reward.backends.fake import FakeBackend
    from test_examples import Recording, load

    class FailsEveryOther(FakeBackend):
        def generate(self, requests):
            out = super().generate(requests)
            return [Generation("", finish_reason="error", error="engine down") if i % 2 else g
                    for i, g in enumerate(out)]

    seen = []
    original = GRPOTrainer._generate_and_score_completions

    def recording(self, inputs):
        output = original(self, inputs)
        seen.append(output["advantages"].detach().clone())
        return output

    monkeypatch.setattr(GRPOTrainer, "_generate_and_score_completions", recording)
    reward = Recording(model="fake", backend=FailsEveryOther(), mode="binary", cache=None, max_retries=0)
    trainer, reward = load("grpo_mr3").main(output_dir=str(tmp_path / "out"), reward=reward)
    rewards = reward.calls[0][3]
    assert None in rewards and any(r is not None for r in rewards)
    logged = list(trainer._logs["rewards"]["mr3"])
    assert all(math.isnan(a) == (b is None) for a, b in zip(logged, rewards))
    advantages = seen[0].flatten().tolist()
    group = trainer.args.num_generations
    for start in range(0, len(rewards), group):
        part = rewards[start:start + group]
        judged = [r for r in part if r is not None]
        mean = sum(judged) / len(judged) if judged else None
        values = torch.tensor([float("nan") if r is None else r for r in part])
        std = float(torch.std(values[~values.isnan()])) if len(judged) > 1 else 0.0
        for r, a in zip(part, advantages[start:start + group]):
            expected = 0.0 if r is None else (r - mean) / (std + 1e-4)
            assert a == pytest.approx(expected, abs=1e-4), (part, advantages)
