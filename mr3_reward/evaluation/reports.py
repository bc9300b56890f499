"""Reports of an `EvalResult`: ``eval.json``, ``eval.md`` (the headline figures, the reference's summary
columns, per-subset or per-domain results, per language; both protocols side by side) and a PNG of
per-language bars."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mr3_reward.evaluation.layouts import REWARD_BENCH_LAYOUTS
from mr3_reward.evaluation.run import EvalResult
from mr3_reward.evaluation.score import HEADLINES

# The reference's names of the RewardBench sections, its summary columns.
SECTION_NAMES = {"chat": "Chat", "chat-hard": "Chat Hard", "safety": "Safety", "reasoning": "Reasoning"}
_UNSCALED = ("kendall_tau", "pearson")  # correlations are shown as they are, everything else in %
_BREAKDOWN_TITLES = {"mm-eval": "Per subset", "indopref": "Per domain", "polyguard": "Prompts and responses"}


def protocols(result: EvalResult) -> dict[str, Mapping[str, Any]]:
    """The summary of each protocol in the result, by name."""
    m = result.metrics
    return {"reference": m, "ours": m["ours"]} if m["protocol"] == "both" else {m["protocol"]: m}


def _fmt(stat: Mapping[str, float] | None, key: str = "") -> str:
    if not stat or "mean" not in stat:
        return "-"
    if key in _UNSCALED:
        return f"{stat['mean']:.4f} ± {stat['std']:.4f}"
    return f"{100 * stat['mean']:.2f} ± {100 * stat['std']:.2f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows), ""]


def _who(m: Mapping[str, Any]) -> str:
    return m["judge"]["model"] if "judge" in m else f"saved generations ({m['generations']['source']})"


def _title(m: Mapping[str, Any]) -> str:
    return f"# mr3 eval: {_who(m)} on {m['layout']} ({m['n']} items, seeds {m['seeds']}, protocol {m['protocol']})"


def _breakdown(runs: Mapping[str, Mapping[str, Any]], layout: str) -> list[str]:
    """The reference's breakdown beside the headline: RewardBench's sections, or the subsets / domains."""
    names = list(dict.fromkeys(k for m in runs.values() for k in m.get("sections", {})))
    if not names:
        return []
    if layout == "helpsteer3":  # per domain: accuracy, tau and r for each protocol
        cols = [f"{key} ({p})" for p in runs for key in HEADLINES[layout]]
        rows = [[d, *(_fmt(m.get("sections", {}).get(d, {}).get(key), key) for m in runs.values()
                      for key in HEADLINES[layout])] for d in names]
        return ["## Per domain", "", *_table(["domain", *cols], rows)]
    if layout in REWARD_BENCH_LAYOUTS:
        header = ["protocol", "Average", *SECTION_NAMES.values()]
        rows = [[p, _fmt(m.get("score")), *(_fmt(m.get("sections", {}).get(s)) for s in SECTION_NAMES)]
                for p, m in runs.items()]
        return ["## Summary (the reference's columns: means over languages)", "", *_table(header, rows)]
    title = _BREAKDOWN_TITLES.get(layout, "Per group")
    rows = [[name, *(_fmt(m.get("sections", {}).get(name)) for m in runs.values())] for name in names]
    return [f"## {title}", "", *_table(["", *runs], rows)]


def markdown(result: EvalResult) -> str:
    """The report as markdown."""
    runs = protocols(result)
    m = result.metrics
    layout = m["layout"]
    keys = [*HEADLINES[layout], *(k for k in ("accuracy", "position_consistency") if k not in HEADLINES[layout])]
    rows = [[k, *(_fmt(r.get(k), k) for r in runs.values())] for k in keys if any(k in r for r in runs.values())]
    rows.append(["failed parses", *(f"{r['failed']} of {r['judgments']}" for r in runs.values())])
    lines = [_title(m), ""]
    if m.get("dropped"):
        lines += [f"{m['dropped']} row(s) left out as the reference leaves them out.", ""]
    lines += _table(["metric", *runs], rows)
    lines += _breakdown(runs, layout)
    langs = list(dict.fromkeys(k for r in runs.values() for k in r.get("languages", {})))
    lines += ["## Per language", "", *_table(["language", *runs], [
        [lang, *(_fmt(r.get("languages", {}).get(lang)) for r in runs.values())] for lang in langs])]
    return "\n".join(lines).rstrip("\n") + "\n"


def _plot(result: EvalResult, path: Path) -> None:
    import matplotlib

    from mr3_reward.data import replacing

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = protocols(result)
    langs = list(dict.fromkeys(k for r in runs.values() for k in r.get("languages", {})))
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(langs) * len(runs) + 2), 3.2))
    for n, (name, r) in enumerate(runs.items()):
        stats = [r.get("languages", {}).get(lang) or {"mean": 0.0, "std": 0.0} for lang in langs]
        xs = [k + (n - (len(runs) - 1) / 2) * width for k in range(len(langs))]
        ax.bar(xs, [100 * s["mean"] for s in stats], width, yerr=[100 * s["std"] for s in stats], capsize=3, label=name)
    ax.set_xticks(range(len(langs)), langs)
    ax.set_ylim(0, 100)
    ax.set_ylabel(f"{HEADLINES[result.metrics['layout']][0]} (%)")
    ax.set_title(f"{_who(result.metrics)} on {result.metrics['layout']}, per language", fontsize=9)
    if len(runs) > 1:
        ax.legend()
    fig.tight_layout()
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def write_reports(result: EvalResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``eval.json`` (``{"metrics", "per_seed"}``), ``eval.md`` and ``eval_languages.png`` to ``out_dir``."""
    from mr3_reward.data import write_atomic, write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "eval.json", "markdown": out / "eval.md", "png": out / "eval_languages.png"}
    write_json(paths["json"], {"metrics": result.metrics, "per_seed": result.per_seed})
    write_atomic(paths["markdown"], markdown(result))
    _plot(result, paths["png"])
    return paths
