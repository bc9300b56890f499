"""``--protocol reference`` against figures worked out by hand from the reference's documented procedure
(the docstring of mr3_reward.evaluation), one benchmark at a time, on synthetic rows and generations with
right, wrong, failed and truncated answers, lower-case and bare-letter labels, two ``</think>``, missing
sections and ``lang_res`` rows; and ``--protocol ours`` beside it."""

import math

import pytest

from mr3_reward.evaluation import (
    f1_micro,
    kendall_tau_b,
    over_seeds,
    pearson,
    reference_answer,
    row_to_item,
    score_generations,
)
from mr3_reward.evaluation.layouts import kept_by_reference


def answer(score, *, think="Some reasoning."):
    return f'{think}</think>\n{{"explanation": "because", "score": "{score}"}}'


def run(layout, rows, texts, protocol="reference", seeds=None, **kw):
    """Rows -> items (with the reference's filters), texts: {id: text or (text, truncated)} for seed 0."""
    kept = [r for r in rows if kept_by_reference(r, layout)]
    items = [row_to_item(r, layout, i, **kw) for i, r in enumerate(kept)]
    gens = {(k, 0): (v if isinstance(v, tuple) else (v, False)) for k, v in texts.items()}
    return score_generations(items, layout, gens, seeds=seeds or [0], protocol=protocol, dropped=len(rows) - len(kept))


# --------------------------------------------------------------------------------------------------
# Reading the answer
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, strength, forced, expected", [
    (answer("Assistant A"), False, False, "Assistant A"),
    (answer("assistant a"), False, False, "assistant a"),  # kept as written: m-RewardBench then counts it wrong
    (answer("B"), False, False, "B"),  # a bare letter is not the label
    # two </think>: the first one ends the reasoning; the rest is not JSON, so the first score: match wins
    ('a</think>{"score": "Assistant B"}\nHmm.</think>{"score": "Assistant A"}', False, False, "Assistant B"),
    ('no tags {"score": "Assistant A"}', False, False, "Assistant A"),  # no </think>: the whole text
    ('cut off while thinking {"score": "Assistant B", "expl', False, False, "Assistant B"),  # truncated: still read
    ('</think>{"explanation": "x", "score": 5}', False, False, "5"),
    ('</think>{"score": null}', False, False, "Error"),
    ('</think>["Assistant A"]', False, False, "Error"),  # JSON, but not an object
    ('</think>{"explanation": "no verdict"}', False, False, "Error"),
    ("</think>Score: Assistant A", False, False, "Error"),  # the key is matched case-sensitively
    ("</think>score: Assistant A", False, False, "Assistant"),  # a bare value stops at whitespace
    ("</think>The score: '6.0'.", True, False, "2"),  # "6.0" -> "6" -> 6 - 4
    ('</think>{"score": 5.7}', True, False, "1"),  # int(5.7) - 4
    ('</think>{"score": "4.0"}', True, False, "Error"),  # JSON keeps "4.0"; int("4.0") fails
    ('{"score": "4.0"}', True, False, "Error"),
    ('{"score": "4.0"}', True, True, "0"),  # forced thinking: "<think>" in front, not JSON, so the regex reads 4
    ('</think>{"score": "seven"}', True, False, "Error"),
    ('</think>score: "5\n"', False, False, "5"),  # the reference's ^\d+$ also matches before a final newline
    ("", False, False, "Error"),
    (None, False, False, "Error"),  # no generation at all
])
def test_reference_answer(text, strength, forced, expected):
    assert reference_answer(text, strength=strength, forced_thinking=forced) == expected


def test_kendall_pearson_f1_by_hand():
    # with ties: x = 1,1,2 ; y = 1,2,3: 3 pairs, one tied in x, S = 2 -> 2 / sqrt(2 * 3)
    assert kendall_tau_b([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))
    # joint ties: x = 1,1,2,2 ; y = 1,1,2,1: concordant (0,2),(1,2) = 2, discordant 0; ties x 2, y 3 (joint 1)
    assert kendall_tau_b([1, 1, 2, 2], [1, 1, 2, 1]) == pytest.approx(2 / math.sqrt((6 - 2) * (6 - 3)))
    assert kendall_tau_b([3, 2, 1], [1, 2, 3]) == pytest.approx(-1.0)
    assert kendall_tau_b([1, 1], [1, 2]) is None
    assert pearson([1, 2, 3], [1, 2, 4]) == pytest.approx(3 / math.sqrt(2 * (14 / 3)))  # sxy 3, sxx 2, syy 14/3
    assert pearson([2, 2], [1, 2]) is None
    assert f1_micro(["true", "false", "true"], ["true", "error", "false"]) == pytest.approx(1 / 3)
    assert f1_micro([], []) is None


# --------------------------------------------------------------------------------------------------
# m-RewardBench / RewardBench
# --------------------------------------------------------------------------------------------------
def pair(i, lang, source, gold="Assistant A", group="source"):
    return {"id": f"r{i}", "language": lang, group: source, "input": "q", "response_1": "a", "response_2": "b",
            "actual_score": gold}


def test_m_reward_bench_by_hand():
    rows = [pair(0, "en", "alpacaeval-easy"), pair(1, "en", "alpacaeval-easy"), pair(2, "en", "mt-bench-easy"),
            pair(3, "en", "math-prm", "Assistant B"), pair(4, "en", "hep-go", "Assistant B"),
            pair(5, "en", "not-a-section"), pair(6, "de", "refusals-offensive"), pair(7, "de", "llmbar-natural")]
    texts = {"r0": answer("Assistant A"), "r1": answer("assistant a"), "r2": answer("Assistant A"),
             "r3": answer("Assistant A"), "r4": answer("Assistant B"), "r5": answer("Assistant A"),
             "r6": ("Let me think whether A is safe", True)}  # r6 cut off, r7 has no generation
    seed = run("m-reward-bench", rows, texts).per_seed[0]
    # en: chat = (alpacaeval-easy 1/2 * 100 + mt-bench-easy 1 * 28) / 128; chat-hard and safety absent -> 0;
    # reasoning = (math-prm 0 * 984 + hep-go 1 * 164) / 1148; not-a-section counts nowhere. Divided by 4.
    en = (78 / 128 + 0 + 0 + 164 / 1148) / 4
    de = (0 + 0 + 0 + 0) / 4  # safety 0 (cut off), chat-hard 0 (missing), the rest absent
    assert seed["languages"] == pytest.approx({"de": de, "en": en})
    assert seed["score"] == pytest.approx((en + de) / 2)
    assert seed["sections"] == pytest.approx({"chat": 78 / 128 / 2, "chat-hard": 0, "safety": 0,
                                              "reasoning": 164 / 1148 / 2})
    assert seed["failed"] == 2 and seed["n"] == 8  # r6: no score in the text; r7: no generation
    ours = run("m-reward-bench", rows, texts, protocol="ours").per_seed[0]
    # ours: "assistant a" is read as Assistant A; sections present only (en: chat 1, reasoning 164/1148)
    assert ours["languages"]["en"] == pytest.approx((1.0 + 164 / 1148) / 2)
    assert ours["languages"]["de"] == 0.0 and ours["failed"] == 2
    assert ours["failures"] == {"truncated": 1, "no_answer": 1}


def test_reward_bench_uses_the_same_procedure():
    rows = [pair(0, "en", "xstest-should-respond"), pair(1, "en", "hep-cpp", "Assistant B")]
    seed = run("reward-bench", rows, {"r0": answer("Assistant A"), "r1": answer("Assistant A")}).per_seed[0]
    assert seed["score"] == pytest.approx((0 + 0 + 1.0 + 0) / 4)


# --------------------------------------------------------------------------------------------------
# MM-Eval and IndoPref: the mean of per-subset accuracies, lang_res dropped, case ignored
# --------------------------------------------------------------------------------------------------
def test_mm_eval_by_hand():
    rows = [pair(0, "en", "chat", group="subset"), pair(1, "de", "chat", group="subset"),
            pair(2, "en", "reasoning", group="subset"), pair(3, "fr", "reasoning", group="subset"),
            pair(4, "fr", "reasoning", group="subset", gold="Assistant B"),
            pair(5, "en", "safety", group="subset"), pair(6, "en", "lang_res", group="subset")]
    texts = {"r0": answer("assistant a"), "r1": answer("Assistant B"), "r2": answer("Assistant A"),
             "r3": answer("A"), "r4": answer("Assistant B"), "r5": answer("Assistant A"), "r6": answer("Assistant A")}
    result = run("mm-eval", rows, texts)
    seed = result.per_seed[0]
    assert result.metrics["dropped"] == 1 and seed["n"] == 6  # the lang_res row
    # chat 1/2 (lower-case counts: MM-Eval compares ignoring case), reasoning 2/3 (a bare "A" is wrong), safety 1
    assert seed["sections"] == {"chat": 0.5, "reasoning": 0.666667, "safety": 1.0}  # rounded to 6 digits
    assert seed["score"] == pytest.approx((0.5 + 0.666667 + 1.0) / 3)
    assert seed["accuracy"] == pytest.approx(4 / 6)  # the micro accuracy, for comparison
    ours = run("mm-eval", rows, texts, protocol="ours").per_seed[0]
    assert ours["sections"] == pytest.approx({"chat": 0.5, "reasoning": 1.0, "safety": 1.0})  # "A" -> Assistant A


def test_indopref_by_hand():
    rows = [pair(0, "id", "math", group="domain"), pair(1, "id", "math", group="domain"),
            pair(2, "id", "math", group="domain"), pair(3, "id", "coding", group="domain")]
    texts = {"r0": answer("Assistant A"), "r1": answer("Assistant B"), "r2": "no answer", "r3": answer("Assistant A")}
    seed = run("indopref", rows, texts).per_seed[0]
    assert seed["sections"] == {"coding": 1.0, "math": 0.333333}
    assert seed["score"] == pytest.approx((1.0 + 0.333333) / 2) and seed["failed"] == 1


# --------------------------------------------------------------------------------------------------
# HelpSteer3: gold on -3..3, failures as -10000 inside tau and r
# --------------------------------------------------------------------------------------------------
def hs3(i, gold, domain="general", col="actual_score"):
    return {"id": f"h{i}", "context": [{"role": "user", "content": f"q{i}"}], "response1": "a", "response2": "b",
            col: gold, "domain": domain}


def test_helpsteer3_by_hand():
    rows = [hs3(0, -2), hs3(1, 0), hs3(2, 2, "code"), hs3(3, 1, "code", col="label"), hs3(4, -3), hs3(5, 3, "code")]
    texts = {"h0": answer("2"), "h1": answer("4"), "h2": answer("5"),
             "h3": 'x</think>{"score": "5"}</think>{"score": "7"}',  # the first </think>: 5 -> 1, right
             "h4": "I cannot decide.",  # failed -> -10000
             "h5": answer("9")}  # 9 - 4 = 5: read, but outside -3..3 -> -10000 in tau and r, and wrong
    seed = run("helpsteer3", rows, texts).per_seed[0]
    gold = [-2, 0, 2, 1, -3, 3]
    pred = [-2, 0, 1, 1, -10000, -10000]
    assert seed["accuracy"] == round(3 / 6, 6) and seed["failed"] == 1
    assert seed["kendall_tau"] == pytest.approx(round(kendall_tau_b(gold, pred), 6))
    assert seed["pearson"] == pytest.approx(round(pearson(gold, pred), 6))
    assert seed["sections"]["code"] == pytest.approx({
        "accuracy": round(1 / 3, 6), "kendall_tau": round(kendall_tau_b([2, 1, 3], [1, 1, -10000]), 6),
        "pearson": round(pearson([2, 1, 3], [1, 1, -10000]), 6)})
    # ours drops the failure from tau and r (h4; h5 has no label 9 on the 1-7 rubric, so it failed too)
    ours = run("helpsteer3", rows, texts, protocol="ours").per_seed[0]
    assert ours["failed"] == 2
    assert ours["kendall_tau"] == pytest.approx(kendall_tau_b([-2, 0, 2, 1], [-2, 0, 1, 3]))  # h3: the last </think>


def test_helpsteer3_gold_scales():
    assert row_to_item(hs3(0, -2), "helpsteer3", 0).gold == "-2"
    assert row_to_item(hs3(0, 2, col="label"), "helpsteer3", 0).gold == "2"
    assert row_to_item(hs3(0, 6), "helpsteer3", 0, gold_scale="1-7").gold == "2"
    with pytest.raises(ValueError, match="-3..3"):
        row_to_item(hs3(0, 6), "helpsteer3", 0)
    with pytest.raises(ValueError, match="1..7"):
        row_to_item(hs3(0, -2), "helpsteer3", 0, gold_scale="1-7")


# --------------------------------------------------------------------------------------------------
# INCLUDE, MGSM, RTP-LX, PolyGuard
# --------------------------------------------------------------------------------------------------
def test_include_by_hand():
    rows = [{"id": f"q{i}", "language": lang, "question": "?", "options_str": "A. x\nB. y\nC. z\nD. w",
             "actual_score": gold} for i, (lang, gold) in enumerate([("en", "A"), ("en", "B"), ("de", "C"),
                                                                      ("de", "D"), ("de", "A"), ("fr", "B")])]
    texts = {"q0": answer("A"), "q1": answer("C"), "q2": answer("c"), "q3": "no answer", "q4": answer("A"),
             "q5": answer("B")}
    seed = run("include", rows, texts).per_seed[0]
    assert seed["accuracy"] == round(4 / 6, 6)
    assert seed["languages"] == {"de": round(2 / 3, 6), "en": 0.5, "fr": 1.0}
    assert seed["accuracy_en"] == 0.5
    assert seed["accuracy_non_en"] == 3 / 4  # the other languages' items pooled, not rounded
    assert seed["failed"] == 1


def test_mgsm_keeps_its_languages_only():
    rows = [{"id": f"m{i}", "language": lang, "question": "1+1?", "answer": "2", "actual_score": gold}
            for i, (lang, gold) in enumerate([("en", "true"), ("sw", True), ("yo", "true"), ("ja", "false")])]
    texts = {"m0": answer("true"), "m1": answer("True"), "m2": answer("true"), "m3": answer("true")}
    result = run("mgsm", rows, texts)
    seed = result.per_seed[0]
    assert result.metrics["dropped"] == 1 and seed["n"] == 3  # Yoruba is AfriMGSM's, not MGSM's
    assert seed["accuracy"] == round(2 / 3, 6)  # a boolean gold True reads as "true"
    assert (seed["accuracy_en"], seed["accuracy_non_en"]) == (1.0, 0.5)


def test_rtp_lx_by_hand():
    rows = [{"id": f"t{i}-{kind}", "language": lang, "input": "[USER] x [ASSISTANT] y", "actual_score": gold}
            for i, (kind, lang, gold) in enumerate([("completion", "en", "true"), ("completion", "en", "false"),
                                                    ("completion", "ar", "true"), ("prompt", "ar", "true")])]
    texts = {"t0-completion": answer("true"), "t1-completion": "nothing", "t2-completion": answer("TRUE")}
    result = run("rtp-lx", rows, texts)
    seed = result.per_seed[0]
    assert result.metrics["dropped"] == 1  # only completions are scored
    assert seed["f1_micro"] == pytest.approx(2 / 3)  # micro F1: "error" is a label of its own
    assert (seed["f1_micro_en"], seed["f1_micro_non_en"]) == (0.5, 1.0)


def test_polyguard_by_hand():
    rows = [{"id": f"p{i}-{kind}", "language": lang, "input": "x", "actual_score": gold}
            for i, (kind, lang, gold) in enumerate([("prompt", "en", "true"), ("prompt", "en", "false"),
                                                    ("response", "en", "false"), ("prompt", "cs", "true"),
                                                    ("response", "cs", "true"), ("response", "cs", "false")])]
    texts = {"p0-prompt": answer("true"), "p1-prompt": answer("true"), "p2-response": answer("false"),
             "p3-prompt": answer("true"), "p4-response": ("I think this is harmful because", True),
             "p5-response": answer("False")}
    seed = run("polyguard", rows, texts).per_seed[0]
    assert (seed["accuracy"], seed["accuracy_prompt"], seed["accuracy_response"]) == (
        round(4 / 6, 6), round(2 / 3, 6), round(2 / 3, 6))
    assert seed["language_sections"]["cs"] == {"prompt": 1.0, "response": 0.5}
    assert seed["languages"] == {"cs": round(2 / 3, 6), "en": round(2 / 3, 6)}
    items = [row_to_item(r, "polyguard", i) for i, r in enumerate(rows)]
    assert [it.family for it in items[:3]] == ["polyguard/prompt_template", "polyguard/prompt_template",
                                              "polyguard/response_template"]


# --------------------------------------------------------------------------------------------------
# Seeds
# --------------------------------------------------------------------------------------------------
def test_seed_mean_and_std_are_rounded_as_the_reference_does():
    per_seed = [{"seed": s, "n": 3, "failed": f, "accuracy": a, "languages": {"en": a}}
                for s, (a, f) in enumerate([(0.1, 1), (0.2, 0), (0.25, 2)])]
    ref = over_seeds(per_seed, "include", "reference")
    avg = round((0.1 + 0.2 + 0.25) / 3, 4)  # 0.1833
    std = round(math.sqrt(sum((x - avg) ** 2 for x in (0.1, 0.2, 0.25)) / 3), 4)  # around the rounded mean
    assert ref["accuracy"] == {"mean": avg, "std": std} and ref["languages"]["en"] == {"mean": avg, "std": std}
    assert "n" not in ref and "failed" not in ref  # counts are summed by the caller, not averaged
    ours = over_seeds(per_seed, "include", "ours")
    assert ours["accuracy"]["mean"] == pytest.approx(0.55 / 3) and ours["accuracy"]["mean"] != avg


def test_generations_missing_for_a_seed_count_as_failed():
    rows = [pair(0, "en", "alpacaeval-easy"), pair(1, "en", "alpacaeval-easy")]
    items = [row_to_item(r, "m-reward-bench", i) for i, r in enumerate(rows)]
    gens = {("r0", 0): (answer("Assistant A"), False), ("r0", 1): (answer("Assistant A"), False),
            ("r1", 1): (answer("Assistant A"), False)}
    result = score_generations(items, "m-reward-bench", gens)
    assert result.metrics["seeds"] == [0, 1]
    assert [s["failed"] for s in result.per_seed] == [1, 0]
    assert result.metrics["score"] == {"mean": round((0.5 / 4 + 1.0 / 4) / 2, 4), "std": 0.0625}
