"""The benchmark suites' shared pieces (charts, interleaved timing, the entry point), without an engine."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.__main__ import SUITES
from benchmarks.common import Panel, interleaved, plot, ratio, write

ROOT = Path(__file__).resolve().parents[1]


def test_plot_writes_one_png_with_bar_line_and_horizontal_panels(tmp_path):
    panels = [
        Panel("judge / raw", x=["raw", "judge"], series={"tokens/s": [100.0, 97.5]}, goal=95, goal_label="goal >="),
        Panel("grouped", x=["on", "off"], series={"one": [3.2, 5.0], "both": [5.7, 9.3]}, fmt="{:.1f} s"),
        Panel("scaling", x=[1, 2, 4], series={"measured": [10, 19, 33], "linear": [10, 20, 40]}, kind="line",
              reference="linear", xlabel="actors", ylabel="judgments / s"),
        Panel("parse times", x=[f"input {i}" for i in range(20)], series={"ms": [0.1 * (i + 1) for i in range(20)]},
              horizontal=True, log=True, goal=500),
    ]
    out = plot("demo", panels, title="demo suite", out_dir=tmp_path)
    assert out == tmp_path / "demo.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_rejects_an_unknown_kind(tmp_path):
    with pytest.raises(ValueError, match="'bar' or 'line'"):
        plot("bad", [Panel("x", x=["a"], series={"s": [1.0]}, kind="pie")], title="bad", out_dir=tmp_path)


def test_interleaved_alternates_the_order_and_ratio_pairs_runs_of_one_repeat():
    order = []
    sides = [("a", lambda: order.append("a") or 1), ("b", lambda: order.append("b") or 2)]
    runs = interleaved(sides, repeats=3, before=lambda name: order.append(f"reset {name}"))
    assert order == ["reset a", "a", "reset b", "b", "reset b", "b", "reset a", "a", "reset a", "a", "reset b", "b"]
    assert [r.value for r in runs["b"]] == [2, 2, 2]
    fake = {"a": [r._replace(wall_s=w) for r, w in zip(runs["a"], (1.0, 2.0, 4.0))],
            "b": [r._replace(wall_s=w) for r, w in zip(runs["b"], (2.0, 2.0, 2.0))]}
    assert ratio(fake["a"], fake["b"]) == 1.0  # median of 0.5, 1.0, 2.0


def test_write_records_the_date_the_machine_and_its_load(tmp_path):
    data = json.loads(write("demo", {"x": 1}, tmp_path).read_text())
    assert data["suite"] == "demo" and data["x"] == 1 and data["date"]
    assert data["machine"]["cpus"] >= 1 and 0 <= data["machine"]["other_load"]


def test_every_suite_is_importable_and_has_main():
    import importlib

    for name, module in SUITES.items():
        assert callable(importlib.import_module(module).main), name


def test_entry_point_without_a_suite_prints_usage():
    done = subprocess.run([sys.executable, "-m", "benchmarks"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "usage: python -m benchmarks" in done.stderr and "debias" in done.stderr


def test_entry_point_help_exits_zero():
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "usage: python -m benchmarks" in done.stdout and "overhead" in done.stdout


def test_debias_pairs_are_distinct_and_alternate_which_side_is_the_reference():
    from benchmarks.debias import pairs

    cols = pairs(32)
    assert all(len(v) == 32 for v in cols.values())
    assert len(set(zip(cols["prompts"], cols["completions"]))) == 32
    base = cols["prompts"][0].rsplit(" (", 1)[0]
    j = cols["prompts"].index(f"{base} (2)")  # the same sample pair on the next pass: roles swapped
    assert (cols["completions"][j], cols["reference"][j]) == (cols["reference"][0], cols["completions"][0])
