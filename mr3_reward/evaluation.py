"""Evaluation: run a judge on a labelled preference set and compute the metrics the way the mR3
reference does, plus what it lacks (position consistency, per-language bars, seeds with mean ± std).

    mr3 eval --data examples/data/eval_sample.jsonl --layout m-reward-bench --model smollm2-135m --out out/eval

Layouts (the columns read):

- ``m-reward-bench`` / ``reward-bench`` / ``mm-eval`` / ``indopref``: ``input, response_1, response_2,
  actual_score`` (``"Assistant A"``/``"Assistant B"``), ``language`` (default ``en``), ``source`` (or
  ``subset`` / ``domain``). Metric (m-RewardBench): per language, the accuracy of each source subset,
  then per section (chat, chat-hard, safety, reasoning) the subset accuracies weighted by RewardBench's
  example counts, then the mean of the sections, then the mean over languages. Rows whose source is
  in no section count in plain accuracy only.
- ``helpsteer3``: ``context`` (list of messages), ``response1, response2, actual_score`` (1-7, or
  ``label`` on HelpSteer3's -3..3 scale, mapped by +4). Metrics: exact accuracy, Kendall's tau-b and
  Pearson's r between predicted and gold scores over the parsed items.

A failed parse counts as a wrong answer, as in the reference, and is also reported on its own.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mr3_reward.debias import swapped
from mr3_reward.records import InputError, iter_jsonl
from mr3_reward.templates import conversation_text
from mr3_reward.types import JudgeRequest, TaskKind

# RewardBench's sections and example counts (math-prm is up-weighted to the size of the code subsets).
SECTIONS: dict[str, tuple[str, ...]] = {
    "chat": ("alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"),
    "chat-hard": ("mt-bench-hard", "llmbar-natural", "llmbar-adver-neighbor", "llmbar-adver-GPTInst",
                  "llmbar-adver-GPTOut", "llmbar-adver-manual"),
    "safety": ("refusals-dangerous", "refusals-offensive", "xstest-should-refuse", "xstest-should-respond",
               "donotanswer"),
    "reasoning": ("math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"),
}
EXAMPLE_COUNTS: dict[str, int] = {
    "alpacaeval-easy": 100, "alpacaeval-length": 95, "alpacaeval-hard": 95, "mt-bench-easy": 28,
    "mt-bench-med": 40, "mt-bench-hard": 37, "llmbar-natural": 100, "llmbar-adver-neighbor": 134,
    "llmbar-adver-GPTInst": 92, "llmbar-adver-GPTOut": 47, "llmbar-adver-manual": 46,
    "refusals-dangerous": 100, "refusals-offensive": 100, "xstest-should-refuse": 154,
    "xstest-should-respond": 250, "donotanswer": 136, "math-prm": 984, "hep-cpp": 164, "hep-go": 164,
    "hep-java": 164, "hep-js": 164, "hep-python": 164, "hep-rust": 164,
}
PAIRWISE_LAYOUTS = ("m-reward-bench", "reward-bench", "mm-eval", "indopref")
LAYOUTS = (*PAIRWISE_LAYOUTS, "helpsteer3")


@dataclass(frozen=True)
class EvalItem:
    request: JudgeRequest
    gold: str
    language: str
    subset: str


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------
def row_to_item(row: Mapping[str, Any], layout: str, index: int) -> EvalItem:
    """One dataset row -> an `EvalItem`; a ValueError names the missing or malformed column."""
    def need(*cols: str) -> None:
        missing = [c for c in cols if c not in row or row[c] is None]
        if missing:
            raise ValueError(f"layout {layout!r} needs column(s) {', '.join(missing)}; present: {', '.join(sorted(row))}")

    language = str(row.get("language") or "en")
    rid = str(row.get("id", index))
    if layout in PAIRWISE_LAYOUTS:
        need("input", "response_1", "response_2", "actual_score")
        gold = str(row["actual_score"]).strip()
        if gold not in ("Assistant A", "Assistant B"):
            raise ValueError(f"actual_score must be 'Assistant A' or 'Assistant B', got {gold!r}")
        subset = str(row.get("source") or row.get("subset") or row.get("domain") or "")
        req = JudgeRequest(task=TaskKind.PAIRWISE, prompt=str(row["input"]),
                           responses=(str(row["response_1"]), str(row["response_2"])), language=language, id=rid)
        return EvalItem(req, gold, language, subset)
    if layout == "helpsteer3":
        need("context", "response1", "response2")
        if "actual_score" in row and row["actual_score"] is not None:
            gold = str(int(float(row["actual_score"])))
        elif "label" in row:
            gold = str(int(row["label"]) + 4)  # HelpSteer3's -3..3 preference -> the 1..7 scale
        else:
            raise ValueError("layout 'helpsteer3' needs actual_score (1-7) or label (-3..3)")
        if gold not in {str(k) for k in range(1, 8)}:
            raise ValueError(f"the gold score must be 1..7, got {gold!r}")
        req = JudgeRequest(task=TaskKind.PREFERENCE_STRENGTH, prompt=row["context"] if isinstance(row["context"], str) else conversation_text(row["context"]),
                           responses=(str(row["response1"]), str(row["response2"])), language=language, id=rid)
        return EvalItem(req, gold, language, "helpsteer3")
    raise ValueError(f"unknown layout {layout!r}; use one of: {', '.join(LAYOUTS)}")


def load_items(data: str | Path, layout: str, *, split: str = "test", limit: int | None = None) -> list[EvalItem]:
    """Read a JSONL/Parquet file, a `save_to_disk` folder or a hub dataset id into `EvalItem`s."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; use one of: {', '.join(LAYOUTS)}")
    path = Path(data)
    if path.suffix == ".jsonl":
        rows: Any = (row for _, row in iter_jsonl(path))
    else:
        import datasets

        if path.suffix == ".parquet":
            rows = datasets.load_dataset("parquet", data_files=str(path), split="train")
        elif path.is_dir():
            ds = datasets.load_from_disk(str(path))
            rows = ds[split] if isinstance(ds, datasets.DatasetDict) else ds
        else:
            rows = datasets.load_dataset(str(data), split=split)  # a hub id; offline -> a clear datasets error
    items, problems = [], []
    for i, row in enumerate(rows):
        if limit is not None and len(items) >= limit:
            break
        try:
            items.append(row_to_item(row, layout, i))
        except (ValueError, TypeError, KeyError) as e:
            problems.append(f"{data}: row {i + 1}: {e}")
    if problems:
        raise InputError(f"{len(problems)} bad row(s):\n" + "\n".join(problems[:20]))
    if not items:
        raise InputError(f"{data}: no rows to evaluate")
    return items


# --------------------------------------------------------------------------------------------------
# Metrics (pure functions, unit-tested on hand-computed values)
# --------------------------------------------------------------------------------------------------
def section_scores(correct_by_subset: Mapping[str, Sequence[bool]]) -> dict[str, float]:
    """RewardBench section scores for one language: subset accuracies weighted by example counts."""
    out = {}
    for section, subsets in SECTIONS.items():
        num = den = 0.0
        for s in subsets:
            if correct_by_subset.get(s):
                acc = sum(correct_by_subset[s]) / len(correct_by_subset[s])
                num += acc * EXAMPLE_COUNTS[s]
                den += EXAMPLE_COUNTS[s]
        if den:
            out[section] = num / den
    return out


def reward_bench_score(items: Sequence[EvalItem], correct: Sequence[bool]) -> dict[str, Any]:
    """Per language: section scores and their mean; overall: the mean over languages."""
    by_lang: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for item, ok in zip(items, correct):
        by_lang[item.language][item.subset].append(ok)
    languages = {}
    for lang, subsets in sorted(by_lang.items()):
        sections = section_scores(subsets)
        flat = [x for v in subsets.values() for x in v]
        languages[lang] = {
            "sections": sections,
            "score": statistics.fmean(sections.values()) if sections else None,
            "accuracy": sum(flat) / len(flat),
            "n": len(flat),
        }
    scored = [v["score"] for v in languages.values() if v["score"] is not None]
    return {"score": statistics.fmean(scored) if scored else None, "languages": languages}


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b (ties in either variable corrected); None with fewer than 2 points or no variance."""
    a, b = np.asarray(x, float), np.asarray(y, float)
    if len(a) < 2:
        return None
    dx = np.sign(a[:, None] - a[None, :])
    dy = np.sign(b[:, None] - b[None, :])
    iu = np.triu_indices(len(a), 1)
    sx, sy = dx[iu], dy[iu]
    n0 = len(sx)
    n1, n2 = np.sum(sx == 0), np.sum(sy == 0)
    denom = math.sqrt((n0 - n1) * (n0 - n2))
    return float(np.sum(sx * sy) / denom) if denom else None


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    a, b = np.asarray(x, float), np.asarray(y, float)
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


# --------------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------------
@dataclass
class EvalResult:
    metrics: dict[str, Any]
    per_seed: list[dict[str, Any]] = field(default_factory=list)


def _one_seed(judge, items: Sequence[EvalItem], layout: str, both_orders: bool) -> dict[str, Any]:
    requests = [it.request for it in items]
    batch = requests + ([swapped(r) for r in requests] if both_orders else [])
    judgments = judge.judge(batch)
    forward = judgments[: len(items)]
    failures = defaultdict(int)
    for j in judgments:
        if not j.ok:
            failures[j.failure] += 1
    correct = [j.ok and j.score == it.gold for j, it in zip(forward, items)]
    out: dict[str, Any] = {
        "n": len(items), "judgments": len(judgments), "failed": sum(failures.values()),
        "failures": dict(failures), "accuracy": sum(correct) / len(items),
    }
    if both_orders:
        backward = judgments[len(items):]
        mirror = {"Assistant A": "Assistant B", "Assistant B": "Assistant A"}
        if layout == "helpsteer3":
            mirror = {str(k): str(8 - k) for k in range(1, 8)}
        agree = [f.score == mirror.get(b.score) for f, b in zip(forward, backward) if f.ok and b.ok]
        out["position_consistency"] = sum(agree) / len(agree) if agree else None
    if layout in PAIRWISE_LAYOUTS:
        out.update(reward_bench_score(items, correct))
    else:
        parsed = [(float(j.score), float(it.gold)) for j, it in zip(forward, items) if j.ok]
        out["kendall_tau"] = kendall_tau_b(*zip(*parsed)) if len(parsed) >= 2 else None
        out["pearson"] = pearson(*zip(*parsed)) if len(parsed) >= 2 else None
        by_lang = defaultdict(list)
        for it, ok in zip(items, correct):
            by_lang[it.language].append(ok)
        out["languages"] = {k: {"accuracy": sum(v) / len(v), "n": len(v)} for k, v in sorted(by_lang.items())}
    return out


def _language_value(entry: Mapping[str, Any]) -> float:
    """The section score where the layout has sections, else plain accuracy."""
    return entry["score"] if entry.get("score") is not None else entry["accuracy"]


def evaluate(judge, items: Sequence[EvalItem], layout: str, *, seeds: Sequence[int] = (0,),
             both_orders: bool = False) -> EvalResult:
    """Evaluate ``judge`` on ``items`` once per seed; numeric metrics get mean and std over seeds."""
    import dataclasses

    base = judge.sampling
    per_seed = []
    for seed in seeds:
        judge.sampling = dataclasses.replace(base, seed=seed)
        per_seed.append({"seed": seed, **_one_seed(judge, items, layout, both_orders)})
    judge.sampling = base
    keys = ["accuracy", "score", "kendall_tau", "pearson", "position_consistency"]
    summary: dict[str, Any] = {"layout": layout, "seeds": list(seeds), "n": len(items),
                               "judge": judge.config_key()}
    for k in keys:
        values = [s[k] for s in per_seed if s.get(k) is not None]
        if values:
            summary[k] = {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0}
    langs = sorted({lang for s in per_seed for lang in s.get("languages", {})})
    summary["languages"] = {}
    for lang in langs:
        vals = [_language_value(s["languages"][lang]) for s in per_seed if lang in s.get("languages", {})]
        summary["languages"][lang] = {"mean": statistics.fmean(vals), "std": statistics.pstdev(vals) if len(vals) > 1 else 0.0}
    summary["failed"] = sum(s["failed"] for s in per_seed)
    summary["judgments"] = sum(s["judgments"] for s in per_seed)
    return EvalResult(summary, per_seed)


# --------------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------------
def _fmt(stat: Mapping[str, float] | None) -> str:
    return "-" if not stat else f"{100 * stat['mean']:.2f} ± {100 * stat['std']:.2f}"


def markdown(result: EvalResult) -> str:
    m = result.metrics
    lines = [f"# mr3 eval: {m['judge']['model']} on {m['layout']} ({m['n']} items, seeds {m['seeds']})", "",
             "| metric | value (%) |", "|---|---|"]
    for k in ("score", "accuracy", "kendall_tau", "pearson", "position_consistency"):
        if k in m:
            lines.append(f"| {k} | {_fmt(m[k])} |")
    lines.append(f"| failed judgments | {m['failed']} of {m['judgments']} |")
    lines += ["", "| language | value (%) |", "|---|---|"]
    lines += [f"| {lang} | {_fmt(v)} |" for lang, v in m["languages"].items()]
    return "\n".join(lines) + "\n"


def write_reports(result: EvalResult, out_dir: str | Path) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "eval.json", "markdown": out / "eval.md", "png": out / "eval_languages.png"}
    paths["json"].write_text(json.dumps({"metrics": result.metrics, "per_seed": result.per_seed}, indent=2,
                                        ensure_ascii=False) + "\n", encoding="utf-8")
    paths["markdown"].write_text(markdown(result), encoding="utf-8")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    langs = list(result.metrics["languages"])
    means = [100 * result.metrics["languages"][k]["mean"] for k in langs]
    stds = [100 * result.metrics["languages"][k]["std"] for k in langs]
    fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(langs) + 2), 3.2))
    ax.bar(langs, means, yerr=stds, color="#4C72B0", capsize=3)
    ax.set_ylim(0, 100)
    ax.set_ylabel("score (%)")
    ax.set_title(f"{result.metrics['judge']['model']} on {result.metrics['layout']}, per language")
    fig.tight_layout()
    fig.savefig(paths["png"], dpi=120)
    plt.close(fig)
    return paths
