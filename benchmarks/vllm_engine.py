"""What the judge costs on a real vLLM engine, and what concurrency buys against a server. One run measures:

    .venv/bin/python -m benchmarks vllm [--n 64] [--max-tokens 128] [--repeats 3] [--seq-n 24]

1. In process, on one engine (``smollm2-135m``, float32, eager, 2 GiB KV cache on CPU): the same prompts
   through raw ``vllm.LLM.generate`` (the rendered texts, the same sampling and seeds) and through
   ``Judge`` on `VLLMBackend` (render, tokenize, generate, parse; result cache off, no retries), with the
   backend's defaults and with label log-probabilities on (``--soft-k``, what soft rewards cost). The
   engine's prefix cache is reset before every timed run; the sides run back to back in each repeat, in
   alternating order, and the ratio is the median over repeats of the ratio within a repeat (runs that
   saw the same load from the rest of the machine). CPU time of the process tree is reported beside wall
   time, as a check that is less sensitive to other programs. Goal: judge time / raw time <= 1.03.
2. Against ``vllm serve`` with the same model and settings: the naive loop of hand-written reward
   functions (one ``openai.OpenAI().completions.create`` per sample, each awaited before the next) and
   ``Judge`` on `OpenAIBackend` (all requests in flight at once). The naive loop runs on the first
   ``--seq-n`` of the same prompts (it takes minutes); throughputs are compared. Goal: >= 10x.

Writes ``benchmarks/results/vllm.json`` and a bar chart ``benchmarks/results/vllm.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

GOAL_OVERHEAD = 1.03
GOAL_SPEEDUP = 10.0
MODEL = "smollm2-135m"
MAX_MODEL_LEN = 2048
KV_CACHE_BYTES = 2 << 30


def requests(n: int) -> list:
    """``n`` distinct requests: the multilingual sample, cycled, each copy with its own prompt text and id
    (identical requests would be judged once by the judge's deduplication, which raw vLLM cannot do)."""
    from mr3_reward.records import read_requests

    sample = [r for _, r in read_requests(Path(__file__).resolve().parents[1] / "examples/data/multilingual_sample.jsonl")]
    out = []
    for i in range(n):
        base = sample[i % len(sample)]
        out.append(dataclasses.replace(base, prompt=f"{base.prompt} ({i // len(sample) + 1})", id=f"{base.id}-{i}"))
    return out


def _stats(seconds: float, judgments: int, tokens: int, prompt_tokens: int | None = None) -> dict[str, Any]:
    out = {"seconds": round(seconds, 3), "judgments": judgments, "completion_tokens": tokens,
           "judgments_per_s": round(judgments / seconds, 3), "tokens_per_s": round(tokens / seconds, 2)}
    if prompt_tokens is not None:
        out["prompt_tokens"] = prompt_tokens
    return out


def _cpu_seconds() -> float:
    """CPU time of this process and its children (vLLM's engine processes): the work done, which other
    programs on a shared machine inflate far less than they inflate wall-clock time."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


def in_process(reqs: list, max_tokens: int, repeats: int, soft_k: int) -> dict[str, Any]:
    from mr3_reward.backends.base import chat_text
    from mr3_reward.backends.vllm import VLLMBackend
    from mr3_reward.judge import Judge

    t = time.perf_counter()
    backend = VLLMBackend(MODEL, dtype="float32", max_model_len=MAX_MODEL_LEN, enforce_eager=True,
                          kv_cache_memory_bytes=KV_CACHE_BYTES)
    start_s = time.perf_counter() - t
    default_k = backend.label_logprobs
    try:
        judge = Judge(MODEL, backend=backend, cache=None, max_retries=0, max_tokens=max_tokens)
        # Exactly what the judge sends: the rendered texts and the backend's sampling parameters (seeds
        # included), with no log-probabilities, as a hand-written loop would ask.
        texts = [chat_text(backend.tokenizer, judge.render(r).prompt) for r in reqs]
        raw_params = _params_without_logprobs(backend, judge.sampling)

        def raw() -> tuple[int, int]:
            outs = backend.llm.generate(texts, [raw_params] * len(texts), use_tqdm=False)
            return sum(len(o.outputs[0].token_ids) for o in outs), sum(len(o.prompt_token_ids) for o in outs)

        def judged(k: int) -> tuple[int, int]:
            backend.label_logprobs = k
            try:
                out = judge.judge(reqs)
            finally:
                backend.label_logprobs = default_k
            return sum(j.completion_tokens for j in out), sum(j.prompt_tokens for j in out)

        # Warm-up, outside every timing: the engine's first-call allocations on both paths (text prompts;
        # token-id prompts with log-probabilities).
        raw()
        judged(soft_k)
        sides = [("raw", raw), ("judge", lambda: judged(default_k)), ("judge_soft", lambda: judged(soft_k))]
        runs: dict[str, list[tuple[float, float, int, int]]] = {name: [] for name, _ in sides}
        for rep in range(repeats):
            for name, fn in (sides if rep % 2 == 0 else sides[::-1]):
                backend.llm.reset_prefix_cache()  # every run starts cold, whatever ran before it
                cpu, wall = _cpu_seconds(), time.perf_counter()
                tokens, prompt_tokens = fn()
                wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
                runs[name].append((wall, cpu, tokens, prompt_tokens))
                print(f"  in-process {name:<11} run {rep + 1}: {wall:6.2f} s wall, {cpu:6.2f} s CPU, "
                      f"{tokens} tokens", flush=True)
    finally:
        backend.close()

    result: dict[str, Any] = {"engine_start_s": round(start_s, 1), "repeats": repeats,
                              "label_logprobs_default": default_k, "label_logprobs_soft": soft_k}
    for name, values in runs.items():
        wall = statistics.median(v[0] for v in values)
        result[name] = {**_stats(wall, len(reqs), values[0][2], values[0][3]),
                        "runs_wall_s": [round(v[0], 3) for v in values],
                        "runs_cpu_s": [round(v[1], 3) for v in values]}
    result["tokens_equal"] = all(result[n]["completion_tokens"] == result["raw"]["completion_tokens"] for n in runs)
    # Each repeat runs the sides back to back, so a ratio within one repeat compares runs that saw the same
    # load from the rest of the machine; the median over repeats is the reported ratio.
    for name in ("judge", "judge_soft"):
        result[f"ratio_{name}_over_raw"] = round(
            statistics.median(j[0] / r[0] for j, r in zip(runs[name], runs["raw"])), 4)
        result[f"cpu_ratio_{name}_over_raw"] = round(
            statistics.median(j[1] / r[1] for j, r in zip(runs[name], runs["raw"])), 4)
    return result


def _params_without_logprobs(backend: Any, sampling: Any) -> Any:
    k = backend.label_logprobs
    backend.label_logprobs = 0
    try:
        return backend._sampling_params(sampling)
    finally:
        backend.label_logprobs = k


def against_server(reqs: list, max_tokens: int, seq_n: int, long_tokens: int, long_seq_n: int,
                   log_dir: Path) -> dict[str, Any]:
    from mr3_reward.backends.vllm import VLLMServer

    server = VLLMServer(MODEL, dtype="float32", max_model_len=MAX_MODEL_LEN,
                        args=["--enforce-eager", "--kv-cache-memory-bytes", str(KV_CACHE_BYTES)],
                        log_path=log_dir / "vllm-serve.log")
    start_s = server.start()
    try:
        result = {"server_start_s": round(start_s, 1),
                  **_compare(server.url, reqs, max_tokens, seq_n, extra={}, label="")}
        if long_tokens:
            # mR3 writes hundreds to thousands of reasoning tokens; SmolLM2 stops after ~65. Fixed-length
            # generations (vLLM's ignore_eos, on both sides) stand in for that regime, where decoding, and so
            # batching, dominates.
            result["long"] = {"max_tokens": long_tokens, "ignore_eos": True,
                              **_compare(server.url, reqs, long_tokens, long_seq_n, {"ignore_eos": True}, "long ")}
    finally:
        server.stop()
    return result


def _compare(url: str, reqs: list, max_tokens: int, seq_n: int, extra: dict, label: str) -> dict[str, Any]:
    import openai

    from mr3_reward.backends.base import chat_text
    from mr3_reward.backends.openai import OpenAIBackend
    from mr3_reward.judge import Judge

    backend = OpenAIBackend(MODEL, url, max_concurrency=256, extra_body=extra)
    judge = Judge(MODEL, backend=backend, cache=None, max_retries=0, max_tokens=max_tokens)
    judge.judge(reqs[:2])  # warm-up: connections, the server's first-call allocations

    t = time.perf_counter()
    out = judge.judge(reqs)
    concurrent = _stats(time.perf_counter() - t, len(reqs), sum(j.completion_tokens for j in out),
                        sum(j.prompt_tokens for j in out))
    print(f"  server {label}OpenAIBackend ({len(reqs)} samples): {concurrent['seconds']:.2f} s", flush=True)

    # The naive loop, written the way reward functions usually are: a blocking client, one sample at a time.
    # Same texts, same sampling, same server.
    client = openai.OpenAI(base_url=url, api_key="EMPTY", timeout=600)
    s = judge.sampling
    texts = [chat_text(backend.tokenizer, judge.render(r).prompt) for r in reqs[:seq_n]]
    t = time.perf_counter()
    tokens = prompt_tokens = 0
    for text in texts:
        answer = client.completions.create(
            model=MODEL, prompt=text, max_tokens=s.max_tokens, temperature=s.temperature, top_p=s.top_p,
            seed=s.seed, extra_body={"top_k": s.top_k, "min_p": s.min_p, **extra},
        )
        tokens += answer.usage.completion_tokens
        prompt_tokens += answer.usage.prompt_tokens
    sequential = _stats(time.perf_counter() - t, len(texts), tokens, prompt_tokens)
    print(f"  server {label}naive loop ({len(texts)} samples): {sequential['seconds']:.2f} s", flush=True)
    return {
        "max_concurrency": backend.max_concurrency, "openai_backend": concurrent, "naive_sequential": sequential,
        "speedup_judgments_per_s": round(concurrent["judgments_per_s"] / sequential["judgments_per_s"], 2),
        "speedup_tokens_per_s": round(concurrent["tokens_per_s"] / sequential["tokens_per_s"], 2),
    }


def chart(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    ip, sv = result["in_process"], result["server"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = ["raw\nLLM.generate", "Judge +\nVLLMBackend", f"Judge +\nVLLMBackend\n(label logprobs {ip['label_logprobs_soft']})"]
    values = [ip["raw"]["tokens_per_s"], ip["judge"]["tokens_per_s"], ip["judge_soft"]["tokens_per_s"]]
    bars = left.bar(names, values, color=["#888888", "#1f77b4", "#6baed6"])
    left.bar_label(bars, fmt="%.0f")
    left.set_ylim(top=max(values) * 1.15)
    left.set_ylabel("completion tokens / s")
    left.set_title(f"in process: judge/raw time = {ip['ratio_judge_over_raw']:.3f} (goal <= {GOAL_OVERHEAD})")
    groups = [(f"judge outputs\n(max_tokens {result['max_tokens']})", sv)]
    if "long" in sv:
        groups.append((f"fixed {sv['long']['max_tokens']}-token\ngenerations", sv["long"]))
    xs = range(len(groups))
    naive = right.bar([x - 0.2 for x in xs], [g["naive_sequential"]["tokens_per_s"] for _, g in groups], 0.4,
                      label="naive sequential OpenAI client loop", color="#888888")
    ours = right.bar([x + 0.2 for x in xs], [g["openai_backend"]["tokens_per_s"] for _, g in groups], 0.4,
                     label=f"Judge + OpenAIBackend ({sv['max_concurrency']} in flight)", color="#2ca02c")
    right.bar_label(naive, fmt="%.0f")
    right.bar_label(ours, labels=[f"{g['openai_backend']['tokens_per_s']:.0f} ({g['speedup_judgments_per_s']:.1f}x)"
                                  for _, g in groups])
    right.set_xticks(list(xs), [name for name, _ in groups])
    right.set_ylim(top=max(g["openai_backend"]["tokens_per_s"] for _, g in groups) * 1.25)
    right.set_ylabel("completion tokens / s")
    right.legend(fontsize=8, loc="upper left")
    right.set_title(f"vllm serve: {sv['speedup_judgments_per_s']:.1f}x judgments/s (goal >= {GOAL_SPEEDUP:.0f}x)")
    fig.suptitle(f"{MODEL} on vLLM (CPU build), {result['n']} judgments, max_tokens {result['max_tokens']}; "
                 f"{result['machine_cpu']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(n: int = 64, max_tokens: int = 128, repeats: int = 3, seq_n: int = 24, soft_k: int = 5,
        long_tokens: int = 256, long_seq_n: int = 6, out_dir: Path | None = None) -> dict:
    from benchmarks.common import RESULTS, machine, table, write

    reqs = requests(n)
    print(f"in process: {n} judgments, max_tokens {max_tokens}, {repeats} repeats", flush=True)
    ip = in_process(reqs, max_tokens, repeats, soft_k)
    print(f"vllm serve: {n} judgments concurrently, {min(seq_n, n)} sequentially", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        sv = against_server(reqs, max_tokens, min(seq_n, n), long_tokens, min(long_seq_n, n), Path(tmp))
    result = {"model": MODEL, "n": n, "max_tokens": max_tokens, "dtype": "float32", "max_model_len": MAX_MODEL_LEN,
              "in_process": ip, "server": sv, "goal_ratio_max": GOAL_OVERHEAD, "goal_speedup_min": GOAL_SPEEDUP}
    path = write("vllm", result, out_dir)
    png = (out_dir or RESULTS) / "vllm.png"
    chart({**result, "machine_cpu": f"{machine().get('cpu', '')} ({machine()['cpus']} cores)"}, png)
    ratio, speedup = ip["ratio_judge_over_raw"], sv["speedup_judgments_per_s"]
    table(f"vLLM engine ({MODEL}, CPU, {n} judgments, max_tokens {max_tokens})", [
        ("engine start (in process)", f"{ip['engine_start_s']:.1f} s", "", ""),
        ("raw LLM.generate", f"{ip['raw']['tokens_per_s']:.0f} tok/s, {ip['raw']['judgments_per_s']:.2f} judgments/s", "", ""),
        ("Judge + VLLMBackend", f"{ip['judge']['tokens_per_s']:.0f} tok/s, {ip['judge']['judgments_per_s']:.2f} judgments/s", "", ""),
        ("judge / raw time", f"{ratio:.3f}", f"<= {GOAL_OVERHEAD}", "yes" if ratio <= GOAL_OVERHEAD else "NO"),
        ("  judge / raw CPU time", f"{ip['cpu_ratio_judge_over_raw']:.3f}", "", ""),
        (f"  with label logprobs {ip['label_logprobs_soft']} (soft rewards)", f"{ip['ratio_judge_soft_over_raw']:.3f}", "", ""),
        ("naive sequential loop", f"{sv['naive_sequential']['tokens_per_s']:.0f} tok/s, "
                                  f"{sv['naive_sequential']['judgments_per_s']:.2f} judgments/s", "", ""),
        ("Judge + OpenAIBackend", f"{sv['openai_backend']['tokens_per_s']:.0f} tok/s, "
                                  f"{sv['openai_backend']['judgments_per_s']:.2f} judgments/s", "", ""),
        ("OpenAIBackend / naive (judgments/s)", f"{speedup:.1f}x", f">= {GOAL_SPEEDUP:.0f}x",
         "yes" if speedup >= GOAL_SPEEDUP else "NO"),
        *([(f"  same, {sv['long']['max_tokens']}-token generations", f"{sv['long']['speedup_judgments_per_s']:.1f}x",
            "", "")] if "long" in sv else []),
    ])
    print(f"wrote {path} and {png}")
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks vllm")
    ap.add_argument("--n", type=int, default=64, help="judgments per run")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per in-process side (median reported)")
    ap.add_argument("--seq-n", type=int, default=24, help="samples the naive sequential loop judges")
    ap.add_argument("--soft-k", type=int, default=5, help="label_logprobs of the soft-reward variant")
    ap.add_argument("--long-tokens", type=int, default=256,
                    help="also compare with fixed-length generations of this many tokens (0: skip)")
    ap.add_argument("--long-seq-n", type=int, default=6, help="samples the naive loop judges in that comparison")
    ap.add_argument("--out-dir", type=Path)
    a = ap.parse_args(argv)
    run(a.n, a.max_tokens, a.repeats, a.seq_n, a.soft_k, a.long_tokens, a.long_seq_n, a.out_dir)


if __name__ == "__main__":
    main()
