"""How right a built judge is, beside its base, on items it never saw, in one run:

    .venv/bin/python -m benchmarks judge_quality [--config training/configs/tiny-judge.yaml] [--judge out/tiny-judge]
                                                 [--base smollm2-135m] [--out out/tiny-judge] [--curve-items 64]

The held-out items come from the config's ``verifiable`` source (`training.items`), never from its
training split:

- ``test``: operand pairs and phrasings (questions and answers) that never occur in training;
- ``heldout_language``: a language the judge was never trained on;
- ``probes``: binary items whose response states no answer ("Thought process:", ":", "Let's solve this
  step by step."); the right verdict is always ``false``;
- ``unlike``: ``training/data/unlike_items.jsonl``, hand-written word problems phrased unlike any of ours, in
  the `mr3 judge --input` row format.

Every pairwise item is judged in both orders (accuracy counts both; position consistency is the share of
pairs whose two verdicts pick the same answer). The serving settings are those of the README: one
`Judge` per model on a vLLM engine, ``thinking_budget=64``, ``verdict="constrained"``, temperature 0 (the
most probable label), no retries, no cache. The learning curve judges the first ``--curve-items`` test items
with every snapshot the SFT stage kept (``sft.snapshots``); the base is step 0 and the final judge the last
step (their points are read from the full runs).

Writes ``<out>/eval.json`` with ``accuracy_by_language.png`` and ``learning_curve.png`` beside it, and the
same figures to ``benchmarks/results/judge_quality.json`` / ``.png``. Each model's judgments are kept in
``<out>/eval-parts/`` under a digest of the model's weights and the settings, so a killed run resumes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
UNLIKE = ROOT / "training" / "data" / "unlike_items.jsonl"
SETTINGS = {"thinking_budget": 64, "verdict": "constrained", "explanation_tokens": 16, "temperature": 0.0,
            "max_tokens": 160}
ENGINE = {"dtype": "float32", "max_model_len": 2048, "enforce_eager": True, "kv_cache_memory_bytes": 2 << 30}
GOALS = {"overall": 0.90, "pairwise": 0.85, "binary": 0.95, "words_or_native": 0.85, "position_consistency": 0.90}


# -- the items --------------------------------------------------------------------------------------------
def swapped(row: dict[str, Any]) -> dict[str, Any]:
    """A pairwise row with its answers in the other order (and the gold label that follows)."""
    gold = "Assistant B" if row["gold"] == "Assistant A" else "Assistant A"
    return dict(row, id=row["id"] + "~swapped", responses=list(reversed(row["responses"])), gold=gold, order="BA")


def eval_rows(config_path: str | Path) -> dict[str, list[dict[str, Any]]]:
    """The held-out rows per split, pairwise rows in both orders."""
    from training.items import ItemsConfig, iter_items
    from training.pipeline import load_config

    config = load_config(config_path)
    source = next((s for s in config.data.sources if s.format == "verifiable"), None)
    if source is None:
        raise SystemExit(f"{config_path} has no verifiable source to take held-out items from")
    items = ItemsConfig.from_options(source.options)
    splits = {split: list(iter_items(items, split)) for split in ("test", "heldout_language", "probes")}
    with open(UNLIKE, encoding="utf-8") as f:
        splits["unlike"] = [json.loads(line) for line in f if line.strip()]
    out = {}
    for split, rows in splits.items():
        both = []
        for row in rows:
            row = dict(row, split=split, order="AB" if row["task"] == "pairwise" else None)
            both.append(row)
            if row["task"] == "pairwise":
                both.append(swapped(row))
        out[split] = both
    return out


# -- judging ----------------------------------------------------------------------------------------------
def model_digest(model: str, rows: Sequence[dict[str, Any]]) -> str:
    """What a model's judgments depend on: its weights (size and time of each file), the settings, the rows."""
    path = Path(model)
    files = sorted((p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in path.glob("*.safetensors")) \
        if path.is_dir() else model
    blob = json.dumps([files, SETTINGS, ENGINE, [r["id"] + r["prompt"] + "".join(r["responses"]) for r in rows]],
                      ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def judge_rows(model: str, rows: list[dict[str, Any]], parts: Path, name: str) -> list[dict[str, Any]]:
    """Each row's verdict by ``model`` (kept under ``parts``: a finished model is not judged again)."""
    from mr3_reward.judge import Judge
    from mr3_reward.records import row_to_request

    part = parts / f"{name}-{model_digest(model, rows)}.json"
    if part.is_file():
        print(f"  {name}: judged earlier ({part.name})", flush=True)
        return json.loads(part.read_text(encoding="utf-8"))
    start = time.monotonic()
    judge = Judge(model, backend="vllm", backend_options=ENGINE, cache=None, max_retries=0, **SETTINGS)
    try:
        judgments = judge.judge([row_to_request({k: v for k, v in r.items() if k != "gold"}) for r in rows])
    finally:
        judge.backend.close()
    seconds = time.monotonic() - start
    out = [{"id": r["id"], "score": j.score, "failure": j.failure, "correct": j.score == r["gold"],
            "thinking": j.reasoning[:200] if j.reasoning else None} for r, j in zip(rows, judgments)]
    parts.mkdir(parents=True, exist_ok=True)
    tmp = part.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, ensure_ascii=False), encoding="utf-8")
    tmp.replace(part)
    print(f"  {name}: {len(rows)} judgments in {seconds:.0f} s, accuracy "
          f"{sum(o['correct'] for o in out) / max(1, len(out)):.3f}", flush=True)
    return out


# -- metrics ----------------------------------------------------------------------------------------------
def _acc(pairs: list[tuple[dict, dict]]) -> float | None:
    return round(sum(v["correct"] for _, v in pairs) / len(pairs), 4) if pairs else None


def _by(pairs: list[tuple[dict, dict]], key) -> dict[str, Any]:
    groups: dict[str, list] = defaultdict(list)
    for row, verdict in pairs:
        groups[str(key(row))].append((row, verdict))
    return {k: {"accuracy": _acc(v), "n": len(v)} for k, v in sorted(groups.items())}


def consistency(pairs: list[tuple[dict, dict]]) -> float | None:
    """Share of pairwise items whose verdicts in the two orders pick the same answer."""
    by_item: dict[str, dict[str, str | None]] = defaultdict(dict)
    for row, verdict in pairs:
        if row["task"] == "pairwise":
            by_item[row["id"].removesuffix("~swapped")][row["order"]] = verdict["score"]
    flip = {"Assistant A": "Assistant B", "Assistant B": "Assistant A"}
    both = [v for v in by_item.values() if len(v) == 2]
    same = sum(v["AB"] is not None and flip.get(v["BA"]) == v["AB"] for v in both)
    return round(same / len(both), 4) if both else None


def form_of(row: dict[str, Any]) -> str:
    """The form of the answer that decides the item: the right answer's (pairwise) or the response's (binary)."""
    return (row.get("item") or {}).get("form", "unlabelled")


def metrics(rows: list[dict[str, Any]], verdicts: list[dict[str, Any]]) -> dict[str, Any]:
    pairs = list(zip(rows, verdicts))
    test = [p for p in pairs if p[0]["split"] == "test"]
    out = {
        "overall": _acc(test),
        "pairwise": _acc([p for p in test if p[0]["task"] == "pairwise"]),
        "binary": _acc([p for p in test if p[0]["task"] == "binary"]),
        "words_or_native": _acc([p for p in test if form_of(p[0]) in ("words", "native")]),
        "position_consistency": consistency(test),
        "by_task": _by(test, lambda r: r["item"]["kind"]),
        "by_language": _by(test, lambda r: r["language"]),
        "by_form": _by(test, form_of),
        "failures": sum(v["failure"] is not None for _, v in pairs),
        "judgments": len(pairs),
    }
    for split in ("heldout_language", "probes", "unlike"):
        part = [p for p in pairs if p[0]["split"] == split]
        out[split] = {"accuracy": _acc(part), "n": len(part)}
        if split == "heldout_language":
            out[split].update(pairwise=_acc([p for p in part if p[0]["task"] == "pairwise"]),
                              binary=_acc([p for p in part if p[0]["task"] == "binary"]),
                              position_consistency=consistency(part))
    non_answers = [p for p in pairs if p[0]["task"] == "binary" and form_of(p[0]) == "none"
                   or p[0]["split"] == "unlike" and p[0]["id"].startswith("unlike-probe")]
    out["non_answers_called_false"] = {"share": _acc(non_answers), "n": len(non_answers)}
    return out


# -- output -----------------------------------------------------------------------------------------------
def chart(result: dict[str, Any], out_dir: Path | None = None) -> Path:
    """Two PNGs: accuracy per language (base vs trained) and the learning curve; returns the first."""
    from benchmarks.common import RESULTS, Panel, plot

    base, trained = result["base"], result["trained"]
    languages = sorted(trained["by_language"])
    per_language = Panel("held-out accuracy per language", x=[*languages, "held-out\nlanguage"],
                         series={name: [m["by_language"].get(k, {}).get("accuracy") or 0 for k in languages]
                                 + [m["heldout_language"]["accuracy"] or 0] for name, m in (("base", base),
                                                                                            ("trained", trained))},
                         goal=GOALS["overall"])
    curve = result["learning_curve"]
    learning = Panel("learning curve (first test items)", x=[p["step"] for p in curve],
                     series={"accuracy": [p["accuracy"] for p in curve]}, kind="line", xlabel="SFT step",
                     ylabel="held-out accuracy")
    title = f"tiny judge vs its base ({Path(result['judge']).name})"
    written = plot("judge_quality", [per_language, learning], title=title, saved=result)
    if out_dir is not None:
        for name, panel in (("accuracy_by_language", per_language), ("learning_curve", learning)):
            plot(name, [panel], title=title, out_dir=out_dir, saved=result)
        shutil.copy(RESULTS / "judge_quality.json", out_dir / "eval.json")
    return written


def snapshots_of(config_path: str | Path) -> tuple[list[tuple[int, Path]], dict[str, Any]]:
    """The SFT stage's snapshots (step, folder), and its report."""
    from training.pipeline import Pipeline, load_config
    from training.sft import SNAPSHOTS

    workdir = Pipeline(load_config(config_path)).workdir
    folder = workdir.stage_dir("sft") / SNAPSHOTS
    found = [(int(p.name.split("-")[1]), p) for p in folder.glob("step-*")] if folder.is_dir() else []
    try:
        report = workdir.report("sft")
    except (FileNotFoundError, KeyError, ValueError):
        report = {}
    return sorted(found), report


def _commit() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip() or None
    except OSError:
        return None


def run(config: str, judge: str, base: str, out_dir: Path, curve_items: int) -> dict[str, Any]:
    from benchmarks.common import table, write

    started = time.monotonic()
    splits = eval_rows(config)
    rows = [r for split in splits.values() for r in split]
    parts = out_dir / "eval-parts"
    print(f"judging {len(rows)} held-out rows with the base and the trained judge", flush=True)
    base_v = judge_rows(base, rows, parts, "base")
    trained_v = judge_rows(judge, rows, parts, "trained")
    base_m, trained_m = metrics(rows, base_v), metrics(rows, trained_v)
    curve_rows = splits["test"][:curve_items]
    curve_ids = {r["id"] for r in curve_rows}

    def curve_accuracy(verdicts: list[dict[str, Any]]) -> float | None:
        return _acc([(r, v) for r, v in zip(rows, verdicts) if r["id"] in curve_ids and r["split"] == "test"])

    steps, sft_report = snapshots_of(config)
    final_step = sft_report.get("global_steps")
    curve = [{"step": 0, "model": base, "accuracy": curve_accuracy(base_v)}]
    for step, path in steps:
        if step == final_step:  # the trained judge itself: judged above
            continue
        verdicts = judge_rows(str(path), curve_rows, parts, f"step-{step}")
        curve.append({"step": step, "model": path.name, "accuracy": _acc(list(zip(curve_rows, verdicts)))})
    if final_step is not None:
        curve.append({"step": final_step, "model": judge, "accuracy": curve_accuracy(trained_v)})
    info = json.loads((Path(judge) / "mr3_training.json").read_text(encoding="utf-8"))
    result = {
        "judge": judge, "base": base_m, "trained": trained_m, "base_model": base, "goals": GOALS,
        "met": {k: trained_m[k] is not None and trained_m[k] >= g for k, g in GOALS.items()},
        "learning_curve": curve, "settings": SETTINGS, "engine": ENGINE,
        "items": {k: len(v) for k, v in splits.items()},
        "training": {**{k: info.get(k) for k in ("examples", "pipeline_digest", "filter")},
                     "sft_steps": sft_report.get("global_steps"), "train_loss": sft_report.get("train_loss")},
        "seconds": round(time.monotonic() - started, 1), "commit": _commit(),
    }
    chart(json.loads(write("judge_quality", result).read_text(encoding="utf-8")), out_dir)
    table("judge quality on held-out items (trained; base in brackets)", [
        (k, f"{trained_m[k]} ({base_m[k]})", f">= {g}", "yes" if result["met"][k] else "no") for k, g in GOALS.items()
    ] + [(name, f"{trained_m[key][sub]} ({base_m[key][sub]})", "", "") for name, key, sub in (
        ("held-out language", "heldout_language", "accuracy"), ("non-answers called false", "non_answers_called_false",
                                                                "share"), ("items unlike ours", "unlike", "accuracy"))])
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks judge_quality", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="training/configs/tiny-judge.yaml")
    parser.add_argument("--judge", default="out/tiny-judge")
    parser.add_argument("--base", default="smollm2-135m")
    parser.add_argument("--out", default=None, help="where eval.json and the PNGs go (default: the judge's folder)")
    parser.add_argument("--curve-items", type=int, default=64, help="test rows judged at each learning-curve point")
    args = parser.parse_args(argv)
    judge = str(Path(args.judge).resolve())
    if not (Path(judge) / "mr3_training.json").is_file():
        raise SystemExit(f"{args.judge} is not a judge built by training/ (no mr3_training.json): run `make judge`")
    run(args.config, judge, args.base, Path(args.out or judge), args.curve_items)


if __name__ == "__main__":
    main()
