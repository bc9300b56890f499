"""Evaluation metrics on hand-computed values, the eval loop on the scripted backend, and the real model.

The reference's own procedure, layout by layout, is checked in tests/test_eval_reference.py; saved
generations and the command in tests/test_eval_cli.py."""

import json
import math
from pathlib import Path

import pytest

from mr3_reward.backends.fake import FakeBackend
from mr3_reward.evaluation import (
    EvalItem,
    evaluate,
    kendall_tau_b,
    load_items,
    pearson,
    reward_bench_score,
    section_scores,
    write_reports,
)
from mr3_reward.judge import Judge
from mr3_reward.errors import InputError
from mr3_reward.types import JudgeRequest

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "data" / "eval_sample.jsonl"


def item(lang, subset, gold="Assistant A"):
    return EvalItem(JudgeRequest(task="pairwise", prompt="p", responses=("a", "b")), gold, lang, subset)


def test_section_weighting_by_example_counts():
    # chat: alpacaeval-easy (100 examples) at 1.0 and mt-bench-easy (28) at 0.5 -> (100 + 14) / 128
    # reasoning: math-prm (984) at 0.0 and hep-python (164) at 1.0 -> 164 / 1148
    scores = section_scores({
        "alpacaeval-easy": [True, True], "mt-bench-easy": [True, False],
        "math-prm": [False], "hep-python": [True, True, True],
        "unknown-source": [False],
    })
    assert scores == pytest.approx({"chat": 114 / 128, "reasoning": 164 / 1148})
    # The reference scores a section with none of its subsets 0 (calculate_scores_per_section).
    zeroed = section_scores({"alpacaeval-easy": [True]}, zero_missing=True)
    assert zeroed == {"chat": 1.0, "chat-hard": 0.0, "safety": 0.0, "reasoning": 0.0}


def test_language_mean_of_section_means():
    items = [item("en", "alpacaeval-easy"), item("en", "refusals-dangerous"), item("de", "alpacaeval-easy"),
             item("de", "alpacaeval-easy"), item("de", "xstest-should-refuse")]
    correct = [True, False, True, False, True]
    # ours: the mean of the sections present
    out = reward_bench_score(items, correct, zero_missing=False)
    en = (1.0 + 0.0) / 2  # chat 1.0, safety 0.0
    de = (0.5 + 1.0) / 2  # chat 0.5, safety 1.0
    assert out["languages"]["en"]["score"] == pytest.approx(en)
    assert out["languages"]["de"]["score"] == pytest.approx(de)
    assert out["score"] == pytest.approx((en + de) / 2)
    assert out["languages"]["de"]["accuracy"] == pytest.approx(2 / 3)
    # the reference (the default): chat-hard and reasoning are missing, score 0, and each language divides by 4
    ref = reward_bench_score(items, correct)
    assert ref["languages"]["en"]["score"] == pytest.approx((1.0 + 0.0) / 4)
    assert ref["languages"]["de"]["score"] == pytest.approx((0.5 + 1.0) / 4)
    assert ref["score"] == pytest.approx((1.0 / 4 + 1.5 / 4) / 2)
    assert ref["sections"] == pytest.approx({"chat": 0.75, "chat-hard": 0.0, "safety": 0.5, "reasoning": 0.0})


def test_kendall_and_pearson_against_hand_values():
    # x = 1,2,3,4 ; y = 1,3,2,4: pairs concordant 5, discordant 1, no ties -> tau = 4/6
    assert kendall_tau_b([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # with ties: x = 1,1,2 ; y = 1,2,3: n0=3, ties_x=1, ties_y=0, S = 2 -> 2/sqrt(2*3)
    assert kendall_tau_b([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 1, 1], [1, 2, 3]) is None
    assert kendall_tau_b([1], [1]) is None


def test_evaluate_on_scripted_judge_counts_failures_as_wrong():
    items = load_items(SAMPLE, "m-reward-bench")
    golds = {it.request.prompt: it.gold for it in items}

    def respond(p, s):
        prompt = p.user.split("\n")[1].strip()
        if "poison" in prompt:
            return "<think>no verdict</think> I will not say."
        return f'</think>{{"explanation": "x", "score": "{golds[prompt]}"}}'

    judge = Judge(backend=FakeBackend(respond), max_retries=0)
    result = evaluate(judge, items, "m-reward-bench", seeds=(0, 1))  # --protocol reference
    m = result.metrics
    assert m["accuracy"]["mean"] == pytest.approx(7 / 8) and m["accuracy"]["std"] == 0
    assert m["failed"] == 2 and len(result.per_seed) == 2  # the poison row, in both seeds
    # en: chat 1, safety 0 (the poison row failed), reasoning 1, chat-hard absent -> 0; the reference divides by 4
    assert m["languages"]["en"]["mean"] == pytest.approx((1.0 + 0.0 + 1.0 + 0.0) / 4)
    ours = evaluate(judge, items, "m-reward-bench", seeds=(0, 1), protocol="ours").metrics
    assert ours["languages"]["en"]["mean"] == pytest.approx((1.0 + 0.0 + 1.0) / 3)  # the sections present


def test_position_consistency_with_both_orders():
    items = load_items(SAMPLE, "m-reward-bench", limit=4)
    biased = Judge(backend=FakeBackend(lambda p, s: '</think>{"score": "Assistant A"}'), max_retries=0)
    m = evaluate(biased, items, "m-reward-bench", both_orders=True, protocol="ours").metrics
    assert m["position_consistency"]["mean"] == 0.0 and m["judgments"] == 8
    with pytest.raises(ValueError, match="one order"):
        evaluate(biased, items, "m-reward-bench", both_orders=True)  # the reference judges one order


def test_helpsteer3_layout(tmp_path):
    rows = [{"context": [{"role": "user", "content": f"q{i}"}], "response1": "a", "response2": "b", "label": lab}
            for i, lab in enumerate([-3, 0, 2, 1])]
    path = tmp_path / "hs3.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = load_items(path, "helpsteer3")
    # The gold stays on HelpSteer3's -3..3 scale, as the reference reads it (the old harness mapped it to 1..7).
    assert [it.gold for it in items] == ["-3", "0", "2", "1"]
    preds = {"q0": "1", "q1": "4", "q2": "5", "q3": "6"}  # the judge's 1..7 labels: -3, 0, 1, 2
    judge = Judge(backend=FakeBackend(lambda p, s: f'</think>{{"score": "{preds[p.user.split(chr(10))[2]]}"}}'))
    for protocol in ("reference", "ours"):
        m = evaluate(judge, items, "helpsteer3", protocol=protocol).metrics
        assert m["accuracy"]["mean"] == 0.5
        assert m["kendall_tau"]["mean"] == pytest.approx(kendall_tau_b([-3, 0, 1, 2], [-3, 0, 2, 1]), abs=1e-4)


def test_bad_rows_name_the_column(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"input": "x", "response_1": "a"}) + "\n" + json.dumps(
        {"input": "x", "response_1": "a", "response_2": "b", "actual_score": "Tie"}) + "\n")
    with pytest.raises(InputError) as e:
        load_items(path, "m-reward-bench")
    assert "bad.jsonl:1: layout 'm-reward-bench' needs column(s) response_2, actual_score" in str(e.value)
    assert "bad.jsonl:2: actual_score must be 'Assistant A' or 'Assistant B', got 'Tie'" in str(e.value)
    with pytest.raises(ValueError, match="unknown layout"):
        load_items(path, "arena")


def test_reports_are_written(tmp_path):
    items = load_items(SAMPLE, "m-reward-bench")
    result = evaluate(Judge(backend=FakeBackend()), items, "m-reward-bench")
    paths = write_reports(result, tmp_path)
    assert json.loads(paths["json"].read_text())["metrics"]["n"] == 8
    text = paths["markdown"].read_text()
    assert "| en |" in text and "| Average | Chat | Chat Hard | Safety | Reasoning |" in text
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.model
def test_eval_cli_on_the_real_small_judge(tmp_path, capsys):
    from mr3_reward.cli import main

    code = main(["eval", "--data", str(SAMPLE), "--layout", "m-reward-bench", "--model", "smollm2-135m",
                 "--max-tokens", "24", "--max-retries", "0", "--out", str(tmp_path)])
    assert code == 0
    m = json.loads((tmp_path / "eval.json").read_text())["metrics"]
    assert m["n"] == 8 and set(m["languages"]) == {"en", "de", "zh", "es"}
    assert 0.0 <= m["accuracy"]["mean"] <= 1.0 and m["judgments"] == 8
    assert (tmp_path / "eval_languages.png").exists()
    assert "mr3 eval" in capsys.readouterr().out
