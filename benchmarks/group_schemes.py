"""How well each group scheme ranks one prompt's completions for the judgments it costs: a scripted judge that
errs with a known probability judges groups whose true order is hidden from the scheme, and the rewards are
compared with that order: Kendall's tau-b (scipy's default, the goal's measure) and tau-a (correct minus wrong
pairs over all pairs, where a pair left tied counts as not ordered), and top-1 (the best completion alone on
top). Pure logic, no engine:

    .venv/bin/python -m benchmarks group_schemes [--trials 400] [--seed 0] [--sizes 4 8 16]
                                                 [--noise 0.10 0.25] [--debias both]

Each judgment errs on its own with probability ``noise``. With ``--debias both`` (group mode's default) every
pair is judged in both orders and combined by `mr3_reward.debias.combine` (orders that disagree are a tie), and
the judgments reported count both orders, as the engine sees them. The error coins are drawn per trial for
every (pair, order) before any scheme plays, so two schemes that judge the same pair get the same verdict.

The goal: at N = 8 and 16, one run uses at most 40% of round robin's judgments and reaches a tau-b of at least
0.9x round robin's at every noise level. Beside it, the tau-b a noiseless merge sort reaches with the same
number of pairs: about the ceiling for any scheme at that budget.

`engine_run` is the same comparison with a real judge, one group judged under every scheme. With ``--engine``,
`reward_engine_run` plays one group of 8 short completions through ``MR3Reward(mode="group", group_scheme=...)``
on a real vLLM engine (float32 on CPU, as the other engine suites) instead, and writes its figures under the
JSON's ``engine`` key, keeping the scripted results:

    .venv/bin/python -m benchmarks group_schemes --engine smollm2-135m [--thinking-budget 32]
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mr3_reward.debias import combine
from mr3_reward.judgment import Judgment
from mr3_reward.reward.schemes import DEFAULT_RATING, RATINGS, Pair, Tournament, bradley_terry, play
from mr3_reward.types import TaskKind

# (label, scheme, Tournament options for a group of N): the schemes as a reward plays them by default.
SCHEME_RUNS: list[tuple[str, str, Callable[[int], dict[str, Any]]]] = [
    ("round_robin", "round_robin", lambda n: {}),
    ("opponents k=1", "opponents", lambda n: {"opponents": 1}),
    ("opponents k=2", "opponents", lambda n: {"opponents": 2}),
    ("swiss", "swiss", lambda n: {}),
    ("knockout", "knockout", lambda n: {}),
]


def _other(scheme: str) -> str:
    return next(r for r in RATINGS if r != DEFAULT_RATING[scheme])


def _budget_rounds(n: int) -> int:
    """Swiss rounds of floor(N/2) pairs that fit in 40% of a round robin's N(N-1)/2 pairs."""
    return max(1, int(0.4 * (n - 1)))


# Measured beside them: each scheme under its other rating, and what more swiss rounds buy.
VARIANT_RUNS: list[tuple[str, str, Callable[[int], dict[str, Any]]]] = [
    *[(f"{label}, {_other(scheme)}", scheme, lambda n, o=options, s=scheme: {**o(n), "rating": _other(s)})
      for label, scheme, options in SCHEME_RUNS],
    ("swiss, log2 N + 1 rounds", "swiss", lambda n: {"rounds": (n - 1).bit_length() + 1}),
    ("swiss, 40% budget", "swiss", lambda n: {"rounds": _budget_rounds(n)}),
    ("swiss, 40% budget, " + _other("swiss"), "swiss",
     lambda n: {"rounds": _budget_rounds(n), "rating": _other("swiss")}),
]
GOAL = {"sizes": [8, 16], "max_judgments_vs_round_robin": 0.40, "min_tau_vs_round_robin": 0.90}
_FIRST, _SECOND = Judgment(score="Assistant A"), Judgment(score="Assistant B")


def kendall_tau(x: Sequence[float], y: Sequence[float], *, tie_corrected: bool = True) -> float:
    """Kendall's tau of two equally long sequences: (concordant - discordant pairs) over, for tau-b (the default,
    as `scipy.stats.kendalltau`), the geometric mean of the pairs untied in each, or for tau-a
    (``tie_corrected=False``) all pairs, so that a pair left tied counts as not ordered; 0.0 when either is constant.

    >>> round(kendall_tau([1, 2, 2], [1, 2, 3]), 3), round(kendall_tau([1, 2, 2], [1, 2, 3], tie_corrected=False), 3)
    (0.816, 0.667)
    """
    concordant = discordant = ties_x = ties_y = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        dx, dy = x[i] - x[j], y[i] - y[j]
        ties_x += dx == 0
        ties_y += dy == 0
        concordant += dx * dy > 0
        discordant += dx * dy < 0
    pairs = len(x) * (len(x) - 1) // 2
    denominator = math.sqrt((pairs - ties_x) * (pairs - ties_y)) if tie_corrected else pairs
    return (concordant - discordant) / denominator if denominator else 0.0


class ScriptedJudge:
    """Judges pairs of members against a hidden true strength, wrong with probability ``noise`` per judgment.

    coins (`dict`): (first, second) -> the uniform draw of that order's first judgment in this trial; a pair
        judged again (a swiss round that had to repeat one) draws anew from ``rng``.
    """

    def __init__(self, truth: Sequence[int], noise: float, coins: dict[Pair, float], rng: random.Random,
                 both: bool) -> None:
        self.truth, self.noise, self.coins, self.rng, self.both = truth, noise, coins, rng, both
        self.judgments, self.calls = 0, 0
        self._seen: set[tuple[int, int]] = set()

    def _verdict(self, first: int, second: int) -> Judgment:
        coin = self.coins[first, second] if (first, second) not in self._seen else self.rng.random()
        self._seen.add((first, second))
        self.judgments += 1
        right = self.truth[first] > self.truth[second]
        return _FIRST if right != (coin < self.noise) else _SECOND

    def __call__(self, pairs: list[Pair]) -> list[float | None]:
        self.calls += 1
        out = []
        for a, b in pairs:
            backward = self._verdict(b, a) if self.both else None
            out.append(combine(self._verdict(a, b), backward, TaskKind.PAIRWISE).p_first)
        return out


def trial(n: int, noise: float, seed: int, index: int, runs: Sequence[tuple], both: bool) -> dict[str, dict]:
    """One hidden order of a group of ``n`` and one set of error coins, played under every run."""
    rng = random.Random(f"{seed}/{n}/{index}")
    truth = list(range(n))
    rng.shuffle(truth)
    coin_rng = random.Random(f"{seed}/{n}/{noise}/{index}")
    coins = {(a, b): coin_rng.random() for a in range(n) for b in range(n) if a != b}
    best = truth.index(n - 1)
    out = {}
    for label, scheme, options in runs:
        judge = ScriptedJudge(truth, noise, coins, random.Random(f"{seed}/{n}/{noise}/{index}/{label}"), both)
        rewards = play([Tournament(scheme, range(n), **options(n))], judge)[0]
        values = [rewards.get(m, 0.5) for m in range(n)]
        top = max(values)
        out[label] = {"tau": kendall_tau(values, truth), "tau_a": kendall_tau(values, truth, tie_corrected=False),
                      "judgments": judge.judgments, "rounds": judge.calls,
                      "top1": values[best] == top and values.count(top) == 1}
    return out


def sweep(sizes: Sequence[int], noises: Sequence[float], trials: int, seed: int, both: bool,
          runs: Sequence[tuple]) -> list[dict[str, Any]]:
    """Per (N, noise, run): mean tau-b (with its standard error) and tau-a, judgments, rounds (judge calls) and
    top-1 (the share of groups whose best completion alone has the highest reward)."""
    cells = []
    for n, noise in itertools.product(sizes, noises):
        started = time.perf_counter()
        played = [trial(n, noise, seed, i, runs, both) for i in range(trials)]
        for label, scheme, options in runs:
            taus = [t[label]["tau"] for t in played]
            mean = sum(taus) / trials
            se = math.sqrt(sum((x - mean) ** 2 for x in taus) / max(trials - 1, 1) / trials)
            cells.append({"n": n, "noise": noise, "run": label, "scheme": scheme,
                          "rating": Tournament(scheme, range(n), **options(n)).rating, "tau": round(mean, 4),
                          "tau_se": round(se, 4), "tau_a": round(sum(t[label]["tau_a"] for t in played) / trials, 4),
                          "judgments": sum(t[label]["judgments"] for t in played) / trials,
                          "rounds": max(t[label]["rounds"] for t in played),
                          "top1": round(sum(t[label]["top1"] for t in played) / trials, 4)})
        print(f"  N={n:<3} noise {noise:.2f}: {trials} trials in {time.perf_counter() - started:.1f} s", flush=True)
    return cells


def noiseless_sort_reference(n: int, budget: int, trials: int, seed: int) -> float:
    """Mean tau-b of a noiseless merge sort stopped after ``budget`` comparisons, ranked by Bradley-Terry on what it
    saw: about the best a scheme can do with that many pairs whatever its rounds, for judging the goal."""
    taus = []
    for index in range(trials):
        truth = list(range(n))
        random.Random(f"{seed}/{n}/{index}").shuffle(truth)
        results: list[tuple[int, int, float]] = []
        runs = [[m] for m in range(n)]
        while len(runs) > 1:
            merged = []
            for left, right in zip(runs[::2], runs[1::2]):
                out = []
                while left and right and len(results) < budget:
                    a, b = left[0], right[0]
                    results.append((a, b, 1.0 if truth[a] > truth[b] else 0.0))
                    out.append(left.pop(0) if truth[a] > truth[b] else right.pop(0))
                merged.append(out + left + right)
            runs = merged + (runs[-1:] if len(runs) % 2 else [])
        rewards = bradley_terry(range(n), results)
        taus.append(kendall_tau([rewards.get(m, 0.5) for m in range(n)], truth))
    return round(sum(taus) / trials, 4)


def goal_check(cells: list[dict[str, Any]], noises: Sequence[float], trials: int, seed: int) -> dict[str, Any]:
    """For each run, whether it meets the goal at every size of `GOAL` and every noise level (judgments at most
    40% of round robin's, tau-b at least 0.9x round robin's, both at the same N and noise); beside it, what a
    noiseless merge sort reaches with the same budget of pairs (`noiseless_sort_reference`)."""
    at = {(c["n"], c["noise"], c["run"]): c for c in cells}
    per_run: dict[str, dict[str, Any]] = {}
    for label in dict.fromkeys(c["run"] for c in cells):
        if label == "round_robin":
            continue
        checks = {}
        for n, noise in itertools.product(GOAL["sizes"], noises):
            cell, base = at.get((n, noise, label)), at.get((n, noise, "round_robin"))
            if cell is None or base is None:
                continue
            judgments, tau = cell["judgments"] / base["judgments"], cell["tau"] / base["tau"]
            checks[f"N={n}, noise {noise:g}"] = {
                "judgments_vs_round_robin": round(judgments, 3), "tau_vs_round_robin": round(tau, 3),
                "met": judgments <= GOAL["max_judgments_vs_round_robin"] and tau >= GOAL["min_tau_vs_round_robin"]}
        per_run[label] = {"met": bool(checks) and all(c["met"] for c in checks.values()), "cells": checks}
    by = [label for label, r in per_run.items() if r["met"]]
    budget = {n: int(GOAL["max_judgments_vs_round_robin"] * n * (n - 1) / 2) for n in GOAL["sizes"]}
    reference = {f"N={n}, {pairs} pairs": noiseless_sort_reference(n, pairs, trials, seed)
                 for n, pairs in budget.items()}
    return {**GOAL, "rule": "one run, at every N in sizes and every noise level", "met": bool(by), "by": by,
            "by_default_scheme": [label for label in by if label in {r[0] for r in SCHEME_RUNS}],
            "noiseless_merge_sort_tau_at_budget": reference, "per_run": per_run}


def engine_run(judge_round: Callable[[list[tuple[str, str]]], Sequence[float | None]], completions: Sequence[str],
               quality: Sequence[float] | None = None, runs: Sequence[tuple] = SCHEME_RUNS) -> list[dict[str, Any]]:
    """One group judged by a real engine under every run: wall time, judge calls (rounds) and pairs, the rewards,
    and tau against ``quality`` when the completions' true order is known.

    judge_round (`Callable`): (first, second) text pairs -> the preference for each first, in one engine call
        (debiasing is the callable's business, e.g. `mr3_reward.debias.judge_pairs` on pairwise requests).
    completions (`Sequence[str]`): one prompt's completions.
    quality (`Sequence[float]`, *optional*): their known quality, higher is better.
    """
    out = []
    for label, scheme, options in runs:
        calls, pairs = 0, 0

        def judge(round_pairs: list[Pair]) -> Sequence[float | None]:
            nonlocal calls, pairs
            calls, pairs = calls + 1, pairs + len(round_pairs)
            return judge_round([(completions[a], completions[b]) for a, b in round_pairs])

        started = time.perf_counter()
        rewards = play([Tournament(scheme, range(len(completions)), **options(len(completions)))], judge)[0]
        seconds = time.perf_counter() - started
        values = [rewards.get(m, 0.5) for m in range(len(completions))]
        out.append({"run": label, "seconds": round(seconds, 3), "rounds": calls, "pairs": pairs, "rewards": values,
                    "tau": None if quality is None else round(kendall_tau(values, quality), 4)})
    return out


# One prompt's completions for the engine run, with the quality they were written to have (higher is better).
ENGINE_PROMPT = "What is the capital of France? Answer in one sentence."
ENGINE_GROUP = [
    ("The capital of France is Lyon.", 3), ("The capital of France is Paris.", 7), ("I don't know.", 1),
    ("Paris is the capital of France and its largest city.", 6), ("Bananas are yellow.", 0), ("Paris.", 5),
    ("France's capital is Berlin.", 2), ("I think the capital of France is Paris, but I am not sure.", 4),
]


def reward_engine_run(judge: Any, prompt: str, completions: Sequence[str], quality: Sequence[float],
                      runs: Sequence[tuple] = SCHEME_RUNS, reset: Callable[[], None] | None = None) -> list[dict]:
    """One group judged by ``judge`` (a `Judge` on a real engine, result cache off) under every run, through
    ``MR3Reward(mode="group", group_scheme=...)``: the engine seconds, judge calls (the scheme's rounds), the
    judgments made (both orders), failures, the rewards and tau-b against ``quality`` and against round robin's
    rewards (the first run's). ``reset`` (e.g. clearing vLLM's prefix cache) runs before each run."""
    from mr3_reward.reward import MR3Reward

    out = []
    for label, scheme, options in runs:
        options = options(len(completions))
        reward = MR3Reward(judge=judge, mode="group", group_scheme=scheme, group_opponents=options.get("opponents"),
                           name="group")
        if reset is not None:
            reset()
        started = time.perf_counter()
        values = reward([prompt] * len(completions), list(completions))
        seconds = time.perf_counter() - started
        metrics = reward.last_metrics
        scored = [0.5 if v is None else v for v in values]  # a completion the judge could not place: the middle
        baseline = scored if not out else [0.5 if v is None else v for v in out[0]["rewards"]]
        rounds = Tournament(scheme, range(len(completions)), **options).rounds
        out.append({"run": label, "seconds": round(seconds, 1), "rounds": rounds,
                    "judgments": int(metrics["judgments"]), "failure_rate": round(metrics["failure_rate"], 3),
                    "position_consistency": round(metrics.get("position_consistency", float("nan")), 3),
                    "rewards": [None if v is None else round(v, 4) for v in values],
                    "tau_vs_quality": round(kendall_tau(scored, quality), 4),
                    "tau_vs_round_robin": round(kendall_tau(scored, baseline), 4)})
        print(f"  {label:<14} {out[-1]['judgments']:3d} judgments in {seconds:6.1f} s", flush=True)
    return out


def engine(model: str, thinking_budget: int = 32, explanation_tokens: int = 16,
           out_dir: Path | None = None) -> dict[str, Any]:
    """`reward_engine_run` on one `VLLMBackend` (`benchmarks.common.engine_options`), constrained verdicts with a
    thinking budget (the cheapest real judgment, see the budget suite); written into ``group_schemes.json``."""
    import json

    from benchmarks.common import engine_options, machine, other_load
    from mr3_reward.backends.vllm import VLLMBackend
    from mr3_reward.judge import Judge

    options = engine_options()
    started = time.perf_counter()
    backend = VLLMBackend(model, **options)
    load_s = time.perf_counter() - started
    sampling = {"verdict": "constrained", "thinking_budget": thinking_budget, "explanation_tokens": explanation_tokens}
    try:
        judge = Judge(backend.model_id, backend=backend, cache=None, max_retries=0, **sampling)
        completions, quality = [c for c, _ in ENGINE_GROUP], [q for _, q in ENGINE_GROUP]
        runs = reward_engine_run(judge, ENGINE_PROMPT, completions, quality, reset=backend.llm.reset_prefix_cache)
    finally:
        backend.close()
    path, result = _saved(out_dir)
    result = result or {"suite": "group_schemes"}
    result["engine"] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": {**machine(), "other_load": other_load()},
        "model": model, "backend": "vllm", "engine_options": options, "sampling": sampling, "debias": "both",
        "load_seconds": round(load_s, 1), "prompt": ENGINE_PROMPT, "completions": completions, "quality": quality,
        "runs": runs,
        "note": "seconds: the reward call (every round), prefix cache reset before each run; judgments count both "
                "orders; tau_vs_quality is against the quality the completions were written to have"}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote the engine run into {path}")
    return result["engine"]


def run(sizes: Sequence[int] = (4, 8, 16), noises: Sequence[float] = (0.10, 0.25), trials: int = 400,
        seed: int = 0, debias: str = "both", variants: bool = True, out_dir: Path | None = None) -> dict[str, Any]:
    from benchmarks.common import table, write
    from benchmarks.judge_quality import _commit

    runs = SCHEME_RUNS + (VARIANT_RUNS if variants else [])
    print(f"group_schemes: N in {list(sizes)}, noise {list(noises)}, {trials} trials, debias={debias!r}", flush=True)
    started = time.monotonic()
    cells = sweep(sizes, noises, trials, seed, debias == "both", runs)
    goal = goal_check(cells, noises, trials, seed)
    result = {"trials": trials, "seed": seed, "debias": debias, "commit": _commit(),
              "judgments_counted": ("every judgment the engine would run: 2 per pair (both orders)"
                                    if debias == "both" else "1 per pair (one order)"),
              "judge": "scripted: each judgment wrong with probability noise, independently; both orders combined "
                       "by mr3_reward.debias.combine (disagreeing orders are a tie)",
              "seconds": round(time.monotonic() - started, 1), "cells": cells, "goal": goal}
    result.update(_kept_engine_run(out_dir))
    path = write("group_schemes", result, out_dir)
    png = chart(result, out_dir)
    table(f"group schemes ({trials} trials per cell, debias={debias})", table_rows(result))
    print(f"wrote {path} and {png}")
    return result


def _saved(out_dir: Path | None) -> tuple[Path, dict[str, Any]]:
    """The suite's JSON file and what it holds ({} before the first run)."""
    import json

    from benchmarks.common import RESULTS

    path = (out_dir or RESULTS) / "group_schemes.json"
    return path, json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _kept_engine_run(out_dir: Path | None) -> dict[str, Any]:
    """The last ``--engine`` run in the JSON, if any: a scripted run rewrites the file and keeps it."""
    saved = _saved(out_dir)[1]
    return {"engine": saved["engine"]} if "engine" in saved else {}


def table_rows(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """One row per cell (with its goal check where the goal applies) and the goal's verdict."""
    checks = {label: r["cells"] for label, r in result["goal"]["per_run"].items()}
    rows = []
    for c in result["cells"]:
        check = checks.get(c["run"], {}).get(f"N={c['n']}, noise {c['noise']:g}")
        rounds = f"{c['rounds']} round" + ("s" if c["rounds"] != 1 else "")
        value = (f"{c['judgments']:g} judgments, {rounds}; tau-b {c['tau']:.3f} ± {c['tau_se']:.3f}, "
                 f"tau-a {c['tau_a']:.3f}, top-1 {c['top1']:.2f}")
        against = (f"{check['judgments_vs_round_robin']:.0%} of RR judgments, tau {check['tau_vs_round_robin']:.2f}x"
                   if check else "")
        rows.append((f"N={c['n']}, {c['noise']:.0%} errors: {c['run']}", value, against,
                     ("yes" if check["met"] else "no") if check else ""))
    goal = result["goal"]
    rows.append(("goal: one run <= 40% of RR's judgments and tau >= 0.9x RR's at N = 8 and 16, every noise",
                 ", ".join(goal["by"]) or "no run", "", "yes" if goal["met"] else "NO"))
    return rows


def chart(result: dict[str, Any], out_dir: Path | None = None) -> Path:
    """Tau-b against judgments per group, one panel per noise level, a colour per run and a marker per N; the
    goal's region (at most 40% of round robin's judgments, at least 0.9x its tau) shaded at each goal size."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    from benchmarks.common import RESULTS, describe, machine, other_load

    cells, noises = result["cells"], sorted({c["noise"] for c in result["cells"]})
    labels = list(dict.fromkeys(c["run"] for c in cells))
    defaults = {r[0] for r in SCHEME_RUNS}
    markers = dict(zip(sorted({c["n"] for c in cells}), "o^sDv*"))
    fig, axes = plt.subplots(1, len(noises), figsize=(7.2 * len(noises), 5.6), squeeze=False)
    for ax, noise in zip(axes[0], noises):
        at = {(c["run"], c["n"]): c for c in cells if c["noise"] == noise}
        for n in result["goal"]["sizes"]:
            base = at.get(("round_robin", n))
            if base:  # the goal's region at this N: few enough judgments and a tau close enough to round robin's
                x = GOAL["max_judgments_vs_round_robin"] * base["judgments"]
                y = GOAL["min_tau_vs_round_robin"] * base["tau"]
                ax.add_patch(plt.Rectangle((0.1, y), x - 0.1, 1 - y, color="#2ca02c", alpha=0.07))
                ax.plot([x, x, 0.1], [1, y, y], color="#2ca02c", linewidth=0.8, linestyle="--")
                ax.annotate(f"goal, N={n}", (x, y), fontsize=7, color="#2ca02c", xytext=(-48, -10),
                            textcoords="offset points")
        for k, label in enumerate(labels):
            for (run_label, n), c in at.items():
                if run_label == label:
                    default = label in defaults
                    ax.scatter(c["judgments"], c["tau"], marker=markers[n], s=46 if default else 26,
                               color=plt.cm.tab20(k % 20), edgecolors="black" if default else "none",
                               linewidths=0.6, label=label if n == min(markers) else None)
        for n, marker in markers.items():
            ax.scatter([], [], marker=marker, color="#777777", label=f"N = {n}")
        ax.set_xscale("log")
        ax.set_xlim(3, 400)
        ax.set_ylim(0, 1.0)
        ax.set_xlabel(f"judgments per group ({'both orders' if result['debias'] == 'both' else 'one order'})")
        ax.set_ylabel("mean Kendall tau-b to the true order")
        ax.set_title(f"judge wrong in {noise:.0%} of judgments (outlined: the schemes' defaults)", fontsize=10)
        ax.legend(fontsize=6.5, loc="lower right", ncol=2)
    met = ", ".join(result["goal"]["by"]) or "no run"
    if "machine" in result:  # redrawn from the JSON: its own date and machine
        m, date = result["machine"], str(result.get("date", ""))[:10]
    else:
        m, date = {**machine(), "other_load": other_load()}, time.strftime("%Y-%m-%d")
    fig.suptitle(f"group schemes: ranking quality for the judgments ({result['trials']} trials a cell; goal met "
                 f"by: {met})\n{date}, {describe(m)}", fontsize=10)
    fig.tight_layout()
    out = (out_dir or RESULTS) / "group_schemes.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks group_schemes")
    ap.add_argument("--trials", type=int, default=400, help="groups per (N, noise) cell")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sizes", type=int, nargs="+", default=[4, 8, 16], help="completions per group (N)")
    ap.add_argument("--noise", type=float, nargs="+", default=[0.10, 0.25], help="the judge's error rates")
    ap.add_argument("--debias", choices=("both", "none"), default="both")
    ap.add_argument("--no-variants", action="store_true", help="only the schemes as a reward plays them")
    ap.add_argument("--out-dir", type=Path)
    ap.add_argument("--engine", metavar="MODEL", help="instead: one group through MR3Reward on a real vLLM engine")
    ap.add_argument("--thinking-budget", type=int, default=32, help="with --engine: the reasoning's token budget")
    a = ap.parse_args(argv)
    if a.engine:
        engine(a.engine, a.thinking_budget, out_dir=a.out_dir)
        return
    run(a.sizes, a.noise, a.trials, a.seed, a.debias, not a.no_variants, a.out_dir)


if __name__ == "__main__":
    main()
