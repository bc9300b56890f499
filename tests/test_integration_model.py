"""The real pipeline on a real small model (SmolLM2-135M on CPU): every request gets a Judgment."""

import json

import pytest

from mr3_reward.cli import main
from mr3_reward.judge import Judge
from mr3_reward.types import Failure, JudgeRequest

pytestmark = pytest.mark.model

FAILURES = {f.value for f in Failure}


def _requests():
    pairs = [
        ("en", "How do I boil an egg?", "Boil it for 9 minutes, then cool it.", "Eggs come from hens."),
        ("de", "Wie viele Tage hat eine Woche?", "Sieben.", "Zehn."),
        ("zh", "一年有几个月？", "十二个月。", "七个月。"),
        ("ar", "ما هي عاصمة مصر؟", "القاهرة.", "باريس."),
        ("sw", "Nini mji mkuu wa Kenya?", "Nairobi.", "Lagos."),
        ("ja", "日本の首都はどこですか？", "東京です。", "大阪です。"),
    ]
    reqs = [JudgeRequest(task="pairwise", prompt=p, responses=(a, b), language=lang, id=f"p-{lang}") for lang, p, a, b in pairs]
    reqs += [
        JudgeRequest(task="binary", prompt="¿Cuánto es 3 + 4?", responses=("3 + 4 = 7",), reference="7", language="es", id="b-es"),
        JudgeRequest(task="binary", prompt="Combien font 2 × 5 ?", responses=("2 × 5 = 12",), reference="10", language="fr", id="b-fr"),
        JudgeRequest(task="pointwise", prompt="Name a prime number.", responses=("7",), id="pt-en"),
        JudgeRequest(task="multiple_choice", prompt="Which planet is largest?", options="A. Mars\nB. Jupiter\nC. Venus\nD. Earth", id="mc-en"),
    ]
    return reqs


def test_real_small_judge_returns_a_judgment_for_every_request():
    judge = Judge("smollm2-135m", max_tokens=32, max_retries=1)
    reqs = _requests()
    out = judge.judge(reqs)
    assert len(out) == len(reqs) == 10
    for r, j in zip(reqs, out):
        assert (j.score is None) == (j.failure is not None)
        if j.ok:
            assert j.score in judge.render(r).labels
        else:
            assert j.failure in FAILURES and j.failure != Failure.ENGINE_ERROR.value
        assert j.prompt_tokens > 100 and j.completion_tokens > 0 and j.attempts in (1, 2)


def test_target_language_prompts_from_a_pack_on_the_real_model(pack_dir):
    judge = Judge("smollm2-135m", language_mode="tgt-prompt-tgt-thinking", pack=pack_dir, max_tokens=16, max_retries=0)
    reqs = [r for r in _requests() if r.task.value == "pairwise"][:3]
    rendered = [judge.render(r).prompt for r in reqs]
    assert rendered[1].system.startswith("Du bist Qwen3") and rendered[2].prefix.startswith("<think>好的")
    out = judge.judge(reqs)
    assert len(out) == 3 and all(j.ok or j.failure in FAILURES for j in out)


def test_cli_demo_on_the_real_model(tmp_path, capsys, reference_dir):
    from pathlib import Path

    sample = Path(__file__).resolve().parents[1] / "examples" / "data" / "multilingual_sample.jsonl"
    out = tmp_path / "judged.jsonl"
    assert main(["judge", "--input", str(sample), "--output", str(out), "--model", "smollm2-135m",
                 "--max-tokens", "24", "--max-retries", "0"]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 12 and len({r["language"] for r in rows}) >= 6
    assert all(r["judgment"]["score"] is not None or r["judgment"]["failure"] in FAILURES for r in rows)
    assert "tokens/s" in capsys.readouterr().err
