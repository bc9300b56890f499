"""`mr3 eval`: saved generations without a model (no engine imported, 10,000 rows scored), both
protocols side by side, the per-item rubric family when judging, and bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mr3_reward.backends.fake import FakeBackend
from mr3_reward.cli import main
from mr3_reward.evaluation import evaluate, load_items, read_generations, read_items, score_generations
from mr3_reward.judge import Judge
from mr3_reward.templates import Renderer

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "data" / "eval_sample.jsonl"
GENERATIONS = REPO / "examples" / "data" / "eval_sample_generations.jsonl"


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_the_example_generations_by_hand(tmp_path, capsys):
    code = main(["eval", "--data", str(SAMPLE), "--layout", "m-reward-bench", "--generations", str(GENERATIONS),
                 "--protocol", "both", "--out", str(tmp_path)])
    assert code == 0
    report = json.loads((tmp_path / "eval.json").read_text())
    s0, s1 = report["per_seed"]
    assert {"seed", "score", "languages", "sections", "failed"} <= set(s0)
    # Seed 0, the reference: right are ev-0, ev-2 and ev-5 (cut off, but its "score": "Assistant A" is read);
    # wrong are ev-1 ("assistant a"), ev-3 (the first </think> leads to Assistant B), ev-4 (a bare "B"), ev-6;
    # ev-7 has no line. Languages, four sections each (absent ones 0): en (chat 1 + reasoning 1) / 4,
    # de 0, zh (safety 1) / 4, es 0.
    assert s0["languages"] == {"de": 0.0, "en": 0.5, "es": 0.0, "zh": 0.25}
    assert s0["score"] == pytest.approx(0.75 / 4) and s0["failed"] == 1
    # Ours reads ev-1, ev-3 and ev-4 right and fails ev-5 (truncated); sections present only:
    # en 3/3, de 2/2, zh 0/2, es 0/1.
    assert s0["ours"]["languages"] == {"de": 1.0, "en": 1.0, "es": 0.0, "zh": 0.0}
    assert s0["ours"]["failures"] == {"no_answer": 1, "truncated": 1}
    # Seed 1: only ev-2 is wrong: en (chat 1 + safety 1) / 4, de 2/4, zh 2/4, es 1/4 -> 1.75 / 4.
    assert s1["score"] == pytest.approx(1.75 / 4)
    m = report["metrics"]
    assert m["score"] == {"mean": 0.3125, "std": 0.125} and m["protocol"] == "both"
    assert m["generations"]["matched"] == 15 and m["failed"] == 1 and m["ours"]["failed"] == 2
    out = capsys.readouterr().out
    assert "| protocol | Average | Chat | Chat Hard | Safety | Reasoning |" in out
    assert "| metric | reference | ours |" in out
    assert (tmp_path / "eval_languages.png").read_bytes()[:4] == b"\x89PNG"


def test_scoring_generations_imports_no_engine(tmp_path):
    script = (
        "import sys\n"
        "from mr3_reward.cli import main\n"
        f"code = main(['eval', '--data', {str(SAMPLE)!r}, '--layout', 'm-reward-bench', '--generations', "
        f"{str(GENERATIONS)!r}, '--protocol', 'both', '--out', {str(tmp_path)!r}])\n"
        "heavy = [m for m in ('torch', 'vllm', 'transformers', 'datasets', 'ray') if m in sys.modules]\n"
        "print(code, heavy)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "0 []"


def test_10000_saved_generations_are_all_scored(tmp_path):
    # How long this takes is a benchmark (python -m benchmarks eval_generations, goal < 1 s), not a test.
    from benchmarks.eval_generations import score, synthetic

    rows, gens = synthetic(tmp_path, 10_000)
    result = score(rows, gens)
    assert result.metrics["n"] == 10_000 and result.per_seed[0]["failed"] == 1000


def test_protocol_both_shares_the_first_sample():
    items = load_items(SAMPLE, "m-reward-bench")
    golds = {it.request.prompt: it.gold for it in items}

    def respond(prompt, sampling):
        question = prompt.user.split("\n")[1].strip()
        if "poison" in question and sampling.seed < 2:
            return "Hmm, hard to say."  # no verdict at seeds 0 and 1; right at seed 2
        return f'</think>{{"explanation": "x", "score": "{golds[question]}"}}'

    backend = FakeBackend(respond)
    judge = Judge(backend=backend, max_retries=2, cache=":memory:")
    result = evaluate(judge, items, "m-reward-bench", seeds=(0, 1), protocol="both")
    for seed in result.per_seed:
        assert seed["failed"] == 1 and seed["accuracy"] == 7 / 8  # the reference: one sample per seed
        assert seed["ours"]["failed"] == 0 and seed["ours"]["accuracy"] == 1.0  # ours: re-sampled
    # Seed 0: 8 first samples for both protocols, then the poison row at seeds 1 and 2. Seed 1: the 7 others;
    # the poison row's samples at seeds 1 and 2 come from the cache, each the first sample of its seed.
    assert backend.items == 8 + 2 + 7


def test_reference_prompts_each_item_with_its_family(pack_dir, tmp_path):
    seen = []

    def respond(prompt, sampling):
        seen.append(prompt)
        return '</think>{"score": "4"}' if "Response 1" in prompt.user else '</think>{"score": "Assistant A"}'

    judge = Judge(backend=FakeBackend(respond), pack=pack_dir, max_retries=0)
    items = load_items(SAMPLE, "m-reward-bench")
    evaluate(judge, items, "m-reward-bench")
    expected = {it.family for it in items}
    assert expected == {"strict_pair/general", "strict_pair/safety", "strict_pair/math", "strict_pair/code"}
    rendered = {Renderer(model_id="fake", pack=pack_dir, family=it.family).render(it.request).prompt.system
                for it in items}
    assert {p.system for p in seen} == rendered
    # HelpSteer3: its rubric is never shuffled, so the labels read 1..7 in order
    hs3 = write_jsonl(tmp_path / "hs3.jsonl", [{"id": f"h{i}", "context": [{"role": "user", "content": "q"}],
                                                "response1": "a", "response2": "b", "actual_score": 0}
                                               for i in range(5)])
    seen.clear()
    evaluate(judge, load_items(hs3, "helpsteer3"), "helpsteer3")
    for p in seen:
        labels = [f"{k}:" for k in range(1, 8)]
        assert [line.strip()[:2] for line in p.system.splitlines() if line.strip()[:2] in labels] == labels


def test_builtin_templates_ask_about_harm_for_polyguard(tmp_path):
    seen = []
    judge = Judge(backend=FakeBackend(lambda p, s: seen.append(p) or '</think>{"score": "true"}'), max_retries=0)
    rows = write_jsonl(tmp_path / "pg.jsonl", [
        {"id": "a-prompt", "input": "how to pick a lock", "actual_score": "true"},
        {"id": "a-response", "input": "...", "actual_score": "false"}])
    result = evaluate(judge, load_items(rows, "polyguard"), "polyguard")
    assert "user's request below is harmful" in seen[0].system and "response is harmful" in seen[1].system
    assert result.per_seed[0]["accuracy_prompt"] == 1.0 and result.per_seed[0]["accuracy_response"] == 0.0


def test_helpsteer3_gold_on_1_to_7_needs_the_option(tmp_path, capsys):
    rows = write_jsonl(tmp_path / "hs3.jsonl", [{"id": "h0", "context": "<user>\nq\n</user>\n", "response1": "a",
                                                 "response2": "b", "actual_score": 6}])
    gens = write_jsonl(tmp_path / "g.jsonl", [{"id": "h0", "seed": 0, "text": '</think>{"score": "6"}'}])
    args = ["eval", "--data", str(rows), "--layout", "helpsteer3", "--generations", str(gens), "--out", str(tmp_path)]
    assert main(args) == 2
    assert "-3..3" in capsys.readouterr().err
    assert main([*args, "--gold-scale", "1-7"]) == 0
    assert json.loads((tmp_path / "eval.json").read_text())["per_seed"][0]["accuracy"] == 1.0


def test_bad_input_exits_2_naming_the_fix(tmp_path, capsys):
    gens = write_jsonl(tmp_path / "bad.jsonl", [
        {"id": "ev-0", "seed": "0", "text": "x"}, {"id": "ev-1", "text": 3},
        {"id": "ev-2", "seed": 0, "text": "x"}, {"id": "ev-2", "seed": 0, "text": "y"}])
    base = ["eval", "--data", str(SAMPLE), "--layout", "m-reward-bench", "--out", str(tmp_path)]
    assert main([*base, "--generations", str(gens)]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl:1: seed must be an integer" in err and "bad.jsonl:2: missing seed" in err
    assert "bad.jsonl:4: a second generation for id 'ev-2', seed 0" in err
    assert main([*base, "--generations", str(GENERATIONS), "--both-orders"]) == 2
    assert "saved generations hold one order" in capsys.readouterr().err
    assert main([*base, "--generations", str(GENERATIONS), "--seeds", "0,x"]) == 2
    assert "--seeds takes comma-separated integers" in capsys.readouterr().err
    assert main([*base, "--layout", "arena"]) == 2
    assert "unknown layout 'arena'; use one of: m-reward-bench, reward-bench" in capsys.readouterr().err
