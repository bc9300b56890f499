"""Shared bits of the benchmark suites: the machine description, interleaved timing, tables, JSON and charts.

A suite measures, then calls `write` (JSON), `plot` (PNG) and `table` (the console):

```python
from benchmarks.common import Panel, plot, table, write

result = {"judge_over_raw": 0.97, "goal": 1.03}
write("mysuite", result)                     # benchmarks/results/mysuite.json, with date and machine
plot("mysuite", [Panel("judge time / raw time", x=["judge"], series={"measured": [0.97]}, goal=1.03)],
     title="my suite")                       # benchmarks/results/mysuite.png
table("my suite", [("judge / raw", "0.97", "<= 1.03", "yes")])
```

A scaling suite draws a line chart instead, with the ideal as a dashed reference:

```python
Panel("throughput vs actors", x=[1, 2, 4], series={"measured": [10, 19, 33], "linear": [10, 20, 40]},
      kind="line", reference="linear", xlabel="actors", ylabel="judgments / s")
```
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

RESULTS = Path(__file__).resolve().parent / "results"


# -- the machine and how busy it was -----------------------------------------------------------------------
def cpu_seconds() -> float:
    """CPU time of this process and its children (vLLM's engine processes, live or already reaped): the work
    done, which other programs on a shared machine inflate far less than they inflate wall-clock time."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:4])  # user, system, and those of reaped children
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


def _busy_seconds() -> float:
    import psutil

    t = psutil.cpu_times()
    return sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq"))


# Taken when a suite first imports this module (each suite imports it at the start of its run).
_START = (time.monotonic(), _busy_seconds(), cpu_seconds())


def other_load() -> float:
    """Share of the machine's CPU that *other* programs used since the suite started (0 = quiet machine,
    0.5 = half of every core went elsewhere): the note that says how much to trust absolute times."""
    wall = time.monotonic() - _START[0]
    others = (_busy_seconds() - _START[1]) - (cpu_seconds() - _START[2])
    return round(max(0.0, others) / (wall * (os.cpu_count() or 1)), 3) if wall > 0 else 0.0


def machine() -> dict[str, Any]:
    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def describe(m: Mapping[str, Any]) -> str:
    """One line for chart titles: ``AMD EPYC (2 cores), other programs used 45% of the CPU``."""
    text = f"{m.get('gpu') or m.get('cpu') or m.get('platform', '')} ({m.get('cpus')} cores)"
    return text + (f", other programs used {m['other_load']:.0%} of the CPU" if "other_load" in m else "")


# -- engine options shared by the suites that start vLLM --------------------------------------------------------
def on_gpu() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def add_engine_args(ap: Any, model: str = "smollm2-135m", max_model_len: int = 2048) -> None:
    """The options that pick the judge model and size its engine; the defaults fit the 2-core CPU machine."""
    ap.add_argument("--model", default=model, help=f"alias, local directory or hub id (default {model})")
    ap.add_argument("--dtype", help="default: float32 on CPU, the checkpoint's own (auto: bf16 for mR3) on GPU")
    ap.add_argument("--max-model-len", type=int, default=max_model_len, help="engine context in tokens")
    ap.add_argument("--kv-cache-gib", type=float,
                    help="KV cache size; default 2 on CPU, on GPU what gpu_memory_utilization=0.9 leaves")


def engine_options(dtype: str | None = None, max_model_len: int = 2048,
                   kv_cache_gib: float | None = None) -> dict[str, Any]:
    """`VLLMBackend` keyword arguments (from `add_engine_args`' options). On CPU: float32, eager (no graph
    capture to wait for) and a 2 GiB KV cache; on GPU: the checkpoint's dtype, CUDA graphs and vLLM's own
    memory split."""
    gpu = on_gpu()
    opts: dict[str, Any] = {"dtype": dtype or ("auto" if gpu else "float32"), "max_model_len": max_model_len}
    if not gpu:
        opts["enforce_eager"] = True
    kv = kv_cache_gib if kv_cache_gib is not None else (None if gpu else 2)
    if kv:
        opts["kv_cache_memory_bytes"] = int(kv * 2**30)
    return opts


# -- measuring -----------------------------------------------------------------------------------------------
class Run(NamedTuple):
    wall_s: float
    cpu_s: float
    value: Any  # what the side returned (token counts, ...)


def interleaved(sides: Sequence[tuple[str, Callable[[], Any]]], repeats: int,
                before: Callable[[str], None] | None = None) -> dict[str, list[Run]]:
    """Run every side once per repeat, back to back, in reverse order every other repeat, so the sides of one
    repeat saw the same load from the rest of the machine; ``before(name)`` (e.g. resetting a cache) runs
    outside the timing. Compare sides with `ratio`, not with absolute times."""
    runs: dict[str, list[Run]] = {name: [] for name, _ in sides}
    for rep in range(repeats):
        for name, fn in (sides if rep % 2 == 0 else sides[::-1]):
            if before is not None:
                before(name)
            cpu, wall = cpu_seconds(), time.perf_counter()
            value = fn()
            wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
            runs[name].append(Run(wall, cpu, value))
            print(f"  {name:<24} run {rep + 1}: {wall:7.2f} s wall, {cpu:7.2f} s CPU", flush=True)
    return runs


def ratio(a: Sequence[Run], b: Sequence[Run], field: str = "wall_s") -> float:
    """The median over repeats of a/b within each repeat (runs from `interleaved`)."""
    return round(statistics.median(getattr(x, field) / getattr(y, field) for x, y in zip(a, b)), 4)


# -- output --------------------------------------------------------------------------------------------------
def write(name: str, payload: dict[str, Any], out_dir: Path | None = None) -> Path:
    out = (out_dir or RESULTS) / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"suite": name, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
               "machine": {**machine(), "other_load": other_load()}, **payload}
    out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return out


def table(title: str, rows: list[tuple[str, str, str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for col in ("measure", "value", "goal", "met"):
        t.add_column(col)
    for row in rows:
        t.add_row(*row)
    Console().print(t)


@dataclass(frozen=True)
class Panel:
    """One chart of a suite's figure.

    title (`str`): the chart's title (put the headline ratio in it).
    x (`Sequence[str | float]`): bar labels (``kind="bar"``) or x values (``kind="line"``).
    series (`Mapping[str, Sequence[float]]`): name -> one value per x; bars of several series are grouped.
    kind (`str`): ``"bar"`` (measured values against a goal) or ``"line"`` (scaling).
    goal (`float`, *optional*): drawn as a dashed red line labelled ``goal_label``.
    reference (`str`, *optional*): in a line chart, the series drawn dashed grey (the ideal, e.g. linear).
    horizontal (`bool`): horizontal bars, for many or long labels.
    log (`bool`): logarithmic value axis.
    fmt (`str`): format of the value printed on each bar, e.g. ``"{:.2f}"``; default: 3 significant digits.
    """

    title: str
    x: Sequence[str | float]
    series: Mapping[str, Sequence[float]]
    kind: str = "bar"
    ylabel: str = ""
    xlabel: str = ""
    goal: float | None = None
    goal_label: str = "goal"
    reference: str | None = None
    horizontal: bool = False
    log: bool = False
    fmt: str = ""


_COLORS = ("#1f77b4", "#888888", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


def _label(value: float, fmt: str) -> str:
    if fmt:
        return fmt.format(value)
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _draw(ax: Any, p: Panel) -> None:
    if p.kind not in ("bar", "line"):
        raise ValueError(f"Panel.kind must be 'bar' or 'line', got {p.kind!r}")
    names = list(p.series)
    if p.kind == "line":
        for k, name in enumerate(names):
            ref = name == p.reference
            ax.plot(p.x, p.series[name], marker="" if ref else "o", label=name,
                    linestyle="--" if ref else "-", color="#999999" if ref else _COLORS[k % len(_COLORS)])
        ax.set_xticks(list(p.x))
    else:
        width = 0.8 / len(names)
        pos = range(len(p.x))
        for k, name in enumerate(names):
            at = [i - 0.4 + width * (k + 0.5) for i in pos]
            draw = ax.barh if p.horizontal else ax.bar
            bars = draw(at, p.series[name], width, label=name, color=_COLORS[k % len(_COLORS)])
            ax.bar_label(bars, labels=[_label(v, p.fmt) for v in p.series[name]], fontsize=8, padding=2)
        (ax.set_yticks if p.horizontal else ax.set_xticks)(list(pos), [str(x) for x in p.x],
                                                           fontsize=8 if p.horizontal else 9)
        if p.horizontal:
            ax.invert_yaxis()  # first label on top, as in the table
        elif len(p.x) * len(names) <= 2:
            ax.set_xlim(-1, len(p.x))  # one or two bars: keep them from filling the chart
    if p.log:
        (ax.set_xscale if p.horizontal else ax.set_yscale)("log")
    legend = len(names) > 1 or p.goal is not None
    if p.kind == "bar":  # room for the value labels past the longest bar, and for the legend above the bars
        top = max([max(v) for v in p.series.values()] + [p.goal or 0])
        top *= 8 if p.log else (1.18 if p.horizontal or not legend else 1.18 + 0.09 * (len(names) + 1))
        if p.horizontal:
            ax.set_xlim(right=top)
        else:
            ax.set_ylim(top=top)
    if p.goal is not None:
        (ax.axvline if p.horizontal else ax.axhline)(p.goal, color="#d62728", linestyle="--", linewidth=1.2,
                                                     label=f"{p.goal_label} {_label(p.goal, '')}")
    value_label, x_label = (p.ylabel, p.xlabel)
    ax.set_xlabel(value_label if p.horizontal else x_label)
    ax.set_ylabel(x_label if p.horizontal else value_label)
    ax.set_title(p.title, fontsize=10)
    if legend:
        ax.legend(fontsize=8, loc="best")


def plot(name: str, panels: Sequence[Panel], *, title: str, out_dir: Path | None = None,
         saved: Mapping[str, Any] | None = None) -> Path:
    """Draw ``panels`` side by side into ``results/NAME.png`` (or ``out_dir/NAME.png``), with the date and the
    machine under the title; returns the path. When redrawing a result read back from its JSON, pass it as
    ``saved``: its own date and machine go under the title, not today's."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    rows = max((len(p.x) for p in panels if p.horizontal), default=0)
    height = max(4.2, 0.32 * rows + 1.8)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels), height), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        _draw(ax, panel)
    if saved and "machine" in saved:
        m, date = saved["machine"], str(saved.get("date", ""))[:10]
    else:
        m, date = {**machine(), "other_load": other_load()}, time.strftime("%Y-%m-%d")
    fig.suptitle(f"{title}\n{date}, {describe(m)}", fontsize=10)
    fig.tight_layout()
    out = (out_dir or RESULTS) / f"{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
