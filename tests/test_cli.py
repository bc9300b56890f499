"""`mr3 judge` end to end on the scripted backend, and its errors for bad input files."""

import json
import re

import pytest

from mr3_reward.cli import main


def write(path, lines):
    path.write_text("".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines), encoding="utf-8")
    return path


def run(tmp_path, lines, *extra):
    src = write(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out" / "judged.jsonl"
    code = main(["judge", "--input", str(src), "--output", str(out), "--backend", "fake", "--model", "fake", "--quiet", *extra])
    return code, out


def test_judge_writes_one_judgment_per_line(tmp_path, capsys):
    lines = [
        {"id": "p1", "prompt": "2+2?", "responses": ["4", "5"], "language": "en"},
        {"id": "b1", "prompt": "2+2?", "response": "4", "reference": "4"},
        {"id": "p2", "input": "hi", "response_a": "hello", "response_b": "bye"},
        {"id": "m1", "question": "Capital of France?", "options": "A. Rome\nB. Paris"},
    ]
    code, out = run(tmp_path, lines)
    assert code == 0
    rows = [json.loads(l) for l in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["p1", "b1", "p2", "m1"]
    assert [r["judgment"]["score"] for r in rows] == ["Assistant A", "true", "Assistant A", "A"]
    assert all(r["judgment"]["failure"] is None for r in rows)


def test_summary_table_is_printed(tmp_path, capsys):
    src = write(tmp_path / "in.jsonl", [{"prompt": "2+2?", "responses": ["4", "5"]}])
    assert main(["judge", "--input", str(src), "--output", str(tmp_path / "o.jsonl"), "--backend", "fake", "--model", "fake"]) == 0
    err = capsys.readouterr().err
    assert "verdict Assistant A" in err and "tokens/s" in err and "wrote 1 judgment" in err


@pytest.mark.parametrize(
    "lines, message",
    [
        ([], "is empty"),
        (["", "   "], "is empty"),
        (['{"prompt": "x", "responses": ["a", "b"]}', "{not json"], r"in.jsonl:2: not valid JSON"),
        ([{"responses": ["a", "b"]}], r"in.jsonl:1: missing the prompt: add a 'prompt' column"),
        ([{"prompt": 3, "responses": ["a", "b"]}], r"'prompt' must be a string, got int"),
        ([{"prompt": "  ", "responses": ["a", "b"]}], r"'prompt' is empty"),
        ([{"prompt": "p", "responses": "a"}], r"'responses' must be a list of strings, got str"),
        ([{"prompt": "p", "responses": ["a", None]}], r"response 2 must be a string, got NoneType"),
        ([{"prompt": "p", "response_a": "a"}], r"needs both 'response_a' and 'response_b'"),
        ([{"prompt": "p", "responses": ["a", "b", "c"]}], r"takes 0 to 1 response"),
        ([{"prompt": "p", "task": "ranking", "responses": ["a", "b"]}], r"unknown task 'ranking'"),
        ([{"prompt": "p", "language": 5, "responses": ["a", "b"]}], r"'language' must be a string"),
        (["[1, 2]"], r"each line must be a JSON object"),
    ],
)
def test_bad_input_names_the_line_and_the_fix(tmp_path, capsys, lines, message):
    code, out = run(tmp_path, lines)
    assert code == 2
    assert not out.exists()
    assert re.search(message, capsys.readouterr().err)


def test_every_bad_line_is_reported_at_once(tmp_path, capsys):
    code, _ = run(tmp_path, [{"prompt": "ok", "responses": ["a", "b"]}, {"responses": []}, {"prompt": 1}])
    err = capsys.readouterr().err
    assert code == 2 and "2 bad line(s)" in err and "in.jsonl:2:" in err and "in.jsonl:3:" in err


def test_bad_json_and_bad_rows_are_reported_together(tmp_path, capsys):
    code, _ = run(tmp_path, [{"prompt": "ok", "responses": ["a", "b"]}, "{not json", {"prompt": "p", "responses": 5},
                             "[1, 2"])
    err = capsys.readouterr().err
    assert code == 2 and "3 bad line(s)" in err
    assert "in.jsonl:2: not valid JSON" in err and "in.jsonl:3: 'responses' must be a list" in err
    assert "in.jsonl:4: not valid JSON" in err


def test_missing_input_file(tmp_path, capsys):
    code = main(["judge", "--input", str(tmp_path / "nope.jsonl"), "--output", str(tmp_path / "o.jsonl"), "--backend", "fake"])
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_non_english_rows_need_a_pack_in_target_modes(tmp_path, capsys):
    code, _ = run(tmp_path, [{"prompt": "Wie?", "responses": ["a", "b"], "language": "de"}],
                  "--language-mode", "tgt-prompt-en-thinking")
    err = capsys.readouterr().err
    assert code == 2 and "row 1" in err and "pass pack=" in err


def test_pack_renders_target_language(tmp_path, pack_dir):
    code, out = run(tmp_path, [{"prompt": "Wie?", "responses": ["a", "b"], "language": "de"}],
                    "--language-mode", "tgt-prompt-tgt-thinking", "--pack", str(pack_dir))
    assert code == 0
    assert json.loads(out.read_text(encoding="utf-8"))["judgment"]["score"] == "Assistant A"


def test_bench_names_its_suites_and_where_it_runs(tmp_path, capsys, monkeypatch):
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(repo)
    assert main(["bench", "nope"]) == 2
    assert "unknown benchmark suite 'nope'; choose one of: overhead, parser, vllm, debias, pool" in capsys.readouterr().err

    # Outside a source checkout (the suites are not installed with the package): a clear error, no traceback.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if Path(p or ".").resolve() != repo])
    for name in ("benchmarks", "benchmarks.__main__"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert main(["bench", "parser"]) == 2
    assert "run it from the repository root" in capsys.readouterr().err


def test_bench_help_prints_help_and_exits_zero(capsys):
    with pytest.raises(SystemExit) as done:
        main(["bench", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "usage: mr3 bench" in out and "--help" in out and "suite" in out
