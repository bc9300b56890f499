"""What position debiasing costs on a real vLLM engine: the same pairs judged in one order and in both, with
the engine's prefix cache on and off. One run measures:

    .venv/bin/python -m benchmarks debias [--pairs 16] [--max-tokens 32] [--repeats 2] [--block-size B]
                                          [--model smollm2-135m] [--dtype D] [--max-model-len 2048] [--kv-cache-gib G]

Two engines live in the process (by default ``smollm2-135m``, float32, eager, 2 GiB KV cache each on CPU; see
`benchmarks.common.engine_options`), identical but for ``enable_prefix_caching``. On each,
``MR3Reward(mode="reference")`` scores completions against their references (multilingual pairs) three ways:

- ``one``: N pairs with ``debias="none"``, one judgment per pair;
- ``both``: the same N pairs with ``debias="both"``, the pair and its swap sent to the engine in one call;
- ``one_2n``: 2N distinct pairs with ``debias="none"``: as many judgments as ``both``, without a swap to
  share anything with. It separates what debiasing costs from how the engine scales with batch size
  (both / one_2n = 1 means the second order costs exactly what one more judgment costs).

Sampling is fixed (the mR3 defaults, seed 0, ``--max-tokens``), the result cache is off and failed items are
not re-sampled, so each side does exactly its judgments. The six sides run back to back in each repeat, in
reverse order every other repeat, each after a reset of its engine's prefix cache (what a side shares, it
shares within its own reward call); ratios are medians over repeats of the ratio within a repeat.

Reported per side: engine time (wall and CPU), judgments, prompt tokens, prompt tokens served from the prefix
cache (vLLM's ``RequestOutput.num_cached_tokens``), prompt tokens computed, completion tokens, position
consistency. Goals, with the prefix cache on: both orders cost <= 2x one order in time, and the second order
computes fewer prompt tokens than the first (computed prompt tokens both / one < 2): both orders share the
system message (instruction, rubric, format) and the input.

Writes ``benchmarks/results/debias.json`` and ``debias.png``.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODEL = "smollm2-135m"
GOAL_TIME_RATIO = 2.0
GOAL_PREFILL_RATIO = 2.0  # strictly below: the prefix cache must save something
KINDS = {"one": ("none", 1), "both": ("both", 1), "one_2n": ("none", 2)}  # kind -> (debias, pairs multiplier)
COUNTS = ("requests", "prompt_tokens", "computed_prompt_tokens", "completion_tokens")


def pairs(n: int) -> dict[str, list[str]]:
    """``n`` reward inputs from the pairwise rows of the multilingual sample: each pair's first response is the
    completion and its second the reference, then the other way round on the next pass over the sample; the
    prompt carries the pass number so every pair is distinct (and gets its own rubric variant)."""
    from mr3_reward.records import read_requests
    from mr3_reward.types import TaskKind

    path = Path(__file__).resolve().parents[1] / "examples/data/multilingual_sample.jsonl"
    sample = [r for _, r in read_requests(path) if r.task is TaskKind.PAIRWISE]
    cols: dict[str, list[str]] = {"prompts": [], "completions": [], "reference": [], "language": []}
    for i in range(n):
        base, rnd = sample[i % len(sample)], i // len(sample)
        first, second = base.responses if rnd % 2 == 0 else base.responses[::-1]
        cols["prompts"].append(f"{base.prompt} ({rnd + 1})")
        cols["completions"].append(first)
        cols["reference"].append(second)
        cols["language"].append(base.language)
    return cols


class EngineCounter:
    """Stands in for ``VLLMBackend.llm`` and adds up what vLLM reports per request, including the prompt tokens
    served from its prefix cache (``RequestOutput.num_cached_tokens``, which `Generation` does not carry)."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self.counts: dict[str, int] = {}
        self.reset()

    def reset(self) -> None:
        self.counts = {"requests": 0, "prompt_tokens": 0, "cached_prompt_tokens": 0, "completion_tokens": 0}

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        outputs = self.llm.generate(*args, **kwargs)
        for o in outputs:
            self.counts["requests"] += 1
            self.counts["prompt_tokens"] += len(o.prompt_token_ids or ())
            self.counts["cached_prompt_tokens"] += o.num_cached_tokens or 0
            self.counts["completion_tokens"] += sum(len(c.token_ids) for c in o.outputs)
        return outputs

    def __getattr__(self, name: str) -> Any:
        return getattr(self.llm, name)


def measure(n_pairs: int, max_tokens: int, repeats: int, model: str, engine: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.common import interleaved, on_gpu, ratio
    from mr3_reward.backends.vllm import VLLMBackend
    from mr3_reward.judge import Judge
    from mr3_reward.reward import MR3Reward

    if on_gpu():
        engine = {"gpu_memory_utilization": 0.45, **engine}  # two engines share the GPU
    data = pairs(2 * n_pairs)
    inputs = {m: {k: v[: m * n_pairs] for k, v in data.items()} for m in (1, 2)}
    engines: dict[str, tuple[VLLMBackend, EngineCounter]] = {}
    try:
        for cache in ("on", "off"):
            backend = VLLMBackend(model, enable_prefix_caching=cache == "on", **engine)
            counter = EngineCounter(backend.llm)
            backend.llm = counter
            engines[cache] = (backend, counter)

        def side(cache: str, kind: str):
            debias, m = KINDS[kind]
            judge = Judge(model, backend=engines[cache][0], cache=None, max_retries=0, max_tokens=max_tokens, seed=0)
            reward, counter = MR3Reward(judge=judge, mode="reference", debias=debias), engines[cache][1]

            def run() -> dict[str, Any]:
                counter.reset()
                scores = reward(**inputs[m])
                return {**counter.counts, "none_rewards": sum(s is None for s in scores),
                        "position_consistency": reward.last_metrics.get("position_consistency")}
            return run

        cache_of = {f"{kind}, cache {cache}": cache for cache in ("on", "off") for kind in KINDS}
        sides = [(name, side(cache, name.split(",")[0])) for name, cache in cache_of.items()]
        # Warm-up outside every timing: each engine's first-call allocations at the largest batch.
        for cache in ("on", "off"):
            side(cache, "both")()
        runs = interleaved(sides, repeats, before=lambda name: engines[cache_of[name]][0].llm.reset_prefix_cache())
        block = engines["on"][0].llm.llm_engine.vllm_config.cache_config.block_size
    finally:
        for backend, _ in engines.values():
            backend.close()

    result: dict[str, Any] = {"block_size": block}
    for cache in ("on", "off"):
        out: dict[str, Any] = {}
        for kind in KINDS:
            rs = runs[f"{kind}, cache {cache}"]
            counts = rs[0].value
            out[kind] = {
                "seconds": round(statistics.median(r.wall_s for r in rs), 3),
                "cpu_seconds": round(statistics.median(r.cpu_s for r in rs), 3),
                "runs_wall_s": [round(r.wall_s, 3) for r in rs], "runs_cpu_s": [round(r.cpu_s, 3) for r in rs],
                **counts, "computed_prompt_tokens": counts["prompt_tokens"] - counts["cached_prompt_tokens"],
                "cached_share": round(counts["cached_prompt_tokens"] / counts["prompt_tokens"], 4),
                "same_counts_every_repeat": all(r.value == counts for r in rs),
            }
        for base in ("one", "one_2n"):
            both, other = runs[f"both, cache {cache}"], runs[f"{base}, cache {cache}"]
            out[f"both_over_{base}"] = {
                "time": ratio(both, other), "cpu_time": ratio(both, other, "cpu_s"),
                **{k: round(out["both"][k] / out[base][k], 4) if out[base][k] else None for k in COUNTS},
            }
        result[f"cache_{cache}"] = out
    result["cache_on_over_off_time"] = {kind: ratio(runs[f"{kind}, cache on"], runs[f"{kind}, cache off"])
                                        for kind in KINDS}
    return result


def run(n_pairs: int = 16, max_tokens: int = 32, repeats: int = 2, model: str = MODEL,
        engine: dict[str, Any] | None = None, out_dir: Path | None = None) -> dict:
    from benchmarks.common import engine_options, table, write

    engine = engine or engine_options()
    print(f"debias: {model}, {n_pairs} pairs, max_tokens {max_tokens}, {repeats} repeats, two engines", flush=True)
    measured = measure(n_pairs, max_tokens, repeats, model, engine)
    result = {"model": model, "pairs": n_pairs, "max_tokens": max_tokens, "repeats": repeats, "engine": engine,
              **measured, "goal_time_both_over_one_max": GOAL_TIME_RATIO,
              "goal_computed_prompt_both_over_one_below": GOAL_PREFILL_RATIO}
    path = write("debias", result, out_dir)
    png = chart(result, out_dir)
    on, off = result["cache_on"], result["cache_off"]
    rows = []
    for cache in ("on", "off"):
        for kind, s in result[f"cache_{cache}"].items():
            if kind in KINDS:
                rows.append((f"{kind}, cache {cache}", f"{s['seconds']:.2f} s; {s['requests']} judgments; prompt "
                             f"{s['prompt_tokens']} ({s['cached_prompt_tokens']} cached); completion "
                             f"{s['completion_tokens']}", "", ""))
    t_on, p_on = on["both_over_one"]["time"], on["both_over_one"]["computed_prompt_tokens"]
    rows += [
        ("both / one time, cache on", f"{t_on:.3f}", f"<= {GOAL_TIME_RATIO}",
         "yes" if t_on <= GOAL_TIME_RATIO else "NO"),
        ("  CPU time", f"{on['both_over_one']['cpu_time']:.3f}", "", ""),
        ("both / one computed prompt tokens, cache on", f"{p_on:.3f}", f"< {GOAL_PREFILL_RATIO}",
         "yes" if p_on < GOAL_PREFILL_RATIO else "NO"),
        ("both / one completion tokens", f"{on['both_over_one']['completion_tokens']:.3f}", "", ""),
        ("both / one_2n time, cache on", f"{on['both_over_one_2n']['time']:.3f}", "", ""),
        ("both / one time, cache off", f"{off['both_over_one']['time']:.3f}", "", ""),
        ("both / one_2n time, cache off", f"{off['both_over_one_2n']['time']:.3f}", "", ""),
        *[(f"cache on / off time, {kind}", f"{r:.3f}", "", "") for kind, r in result["cache_on_over_off_time"].items()],
    ]
    table(f"debias cost ({model}, {n_pairs} pairs, max_tokens {max_tokens}, block size {result['block_size']})", rows)
    print(f"wrote {path} and {png}")
    return result


def chart(result: dict, out_dir: Path | None = None) -> Path:
    from benchmarks.common import Panel, plot

    n = result["pairs"]
    on, off = result["cache_on"], result["cache_off"]
    names = {"one": f"one order, {n} pairs", "both": f"both orders, {n} pairs", "one_2n": f"one order, {2 * n} pairs"}
    per_side = lambda key: {names[k]: [on[k][key], off[k][key]] for k in KINDS}
    ratios = lambda base: [on[base]["time"], on[base]["computed_prompt_tokens"], off[base]["time"]]
    return plot("debias", [
        Panel(f"engine time: both / one = {on['both_over_one']['time']:.2f} (cache on), "
              f"{off['both_over_one']['time']:.2f} (off)", x=["prefix cache on", "prefix cache off"],
              series=per_side("seconds"), ylabel="seconds per reward call (median)", fmt="{:.1f}"),
        Panel(f"prompt tokens computed: both / one = {on['both_over_one']['computed_prompt_tokens']:.2f} (on)",
              x=["prefix cache on", "prefix cache off"], series=per_side("computed_prompt_tokens"),
              ylabel="prompt tokens not served from the prefix cache"),
        Panel(f"ratios (goal: both / one time <= {GOAL_TIME_RATIO:g}, cache on)",
              x=["time\ncache on", "prompt tokens\ncomputed, on", "time\ncache off"],
              series={"both / one": ratios("both_over_one"),
                      f"both / one order of {2 * n} pairs": ratios("both_over_one_2n")},
              ylabel="ratio", goal=GOAL_TIME_RATIO, goal_label="goal <=", fmt="{:.2f}"),
    ], title=f"position debiasing on vLLM: {result['model']}, max_tokens {result['max_tokens']}, "
             f"block size {result['block_size']}", out_dir=out_dir, saved=result)


def main(argv: list[str] | None = None) -> None:
    from benchmarks.common import add_engine_args, engine_options

    ap = argparse.ArgumentParser(prog="python -m benchmarks debias")
    ap.add_argument("--pairs", type=int, default=16, help="pairs per reward call (N)")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per side (median reported)")
    ap.add_argument("--block-size", type=int, help="the engines' KV block size (default: vLLM's, 128 on CPU)")
    add_engine_args(ap)
    ap.add_argument("--out-dir", type=Path)
    a = ap.parse_args(argv)
    engine = engine_options(a.dtype, a.max_model_len, a.kv_cache_gib)
    if a.block_size:
        engine["block_size"] = a.block_size
    run(a.pairs, a.max_tokens, a.repeats, a.model, engine, a.out_dir)


if __name__ == "__main__":
    main()
