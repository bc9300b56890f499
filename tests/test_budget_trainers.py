"""Real TRL steps with a budgeted, constrained SmolLM2-135M judge: every ordinary completion gets a float
reward, and those floats are what the trainer logged (GRPO's rewards table, Online DPO's objective/scores)."""

import statistics

import pytest

from test_examples import Recording, load, same

pytestmark = pytest.mark.model
BUDGETED = dict(thinking_budget=16, verdict="constrained", explanation_tokens=16, max_tokens=48, max_retries=0)


def test_grpo_step_gets_a_float_reward_for_every_completion(tmp_path):
    reward = Recording(model="smollm2-135m", mode="binary", cache=None, **BUDGETED)
    trainer, reward = load("grpo_mr3").main(output_dir=str(tmp_path / "out"), reward=reward)
    assert trainer.state.global_step == 1
    prompts, completions, _, rewards, _ = reward.calls[0]
    assert len(rewards) == 4 and all(isinstance(r, float) and 0.0 <= r <= 1.0 for r in rewards), rewards
    assert same(list(trainer._logs["rewards"]["mr3"]), rewards)  # the floats reached the trainer's log
    logged = trainer.state.log_history[0]
    assert logged["mr3/failure_rate"] == 0.0 and logged["mr3/none_rewards"] == 0.0
    assert 0.0 <= logged["mr3/label_entropy"] <= 0.7  # two labels: at most ln 2
    verdicts = list(trainer._logs["extra"]["mr3_verdict"])
    assert all(v.startswith(("true", "false", "empty completion")) for v in verdicts), verdicts


def test_online_dpo_step_ranks_both_completions_with_floats(tmp_path):
    reward = Recording(model="smollm2-135m", mode="group", cache=None, **BUDGETED)
    trainer, reward = load("online_dpo_mr3").main(output_dir=str(tmp_path / "out"), reward=reward)
    assert trainer.state.global_step == 1
    prompts, completions, _, rewards, _ = reward.calls[0]
    assert len(rewards) == 4 and all(isinstance(r, float) for r in rewards), rewards
    for i in range(2):  # the two completions of a prompt: win rates that sum to 1
        assert rewards[i] + rewards[i + 2] == pytest.approx(1.0)
    logged = trainer.state.log_history[0]
    # Online DPO logs the mean reward of the batch; None would have counted as 0 there.
    assert logged["objective/scores"] == pytest.approx(statistics.fmean(rewards), abs=1e-6)
