"""What the judge costs on a real vLLM engine, and what concurrency buys against a server. One run measures:

    .venv/bin/python -m benchmarks vllm [--n 64] [--max-tokens 128] [--repeats 3] [--seq-n 24]
                                        [--model smollm2-135m] [--dtype D] [--max-model-len 2048] [--kv-cache-gib G]

1. In process, on one engine (by default ``smollm2-135m``, float32, eager, 2 GiB KV cache on CPU; on a GPU
   the checkpoint's dtype and CUDA graphs, see `benchmarks.common.engine_options`): the same prompts
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


def in_process(reqs: list, max_tokens: int, repeats: int, soft_k: int, model: str,
               engine: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.common import interleaved, ratio
    from mr3_reward.backends.base import chat_text
    from mr3_reward.backends.vllm import VLLMBackend
    from mr3_reward.judge import Judge

    t = time.perf_counter()
    backend = VLLMBackend(model, **engine)
    start_s = time.perf_counter() - t
    default_k = backend.label_logprobs
    try:
        judge = Judge(model, backend=backend, cache=None, max_retries=0, max_tokens=max_tokens)
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
        # Every run starts with a cold prefix cache, whatever ran before it.
        runs = interleaved(sides, repeats, before=lambda _: backend.llm.reset_prefix_cache())
    finally:
        backend.close()

    result: dict[str, Any] = {"engine_start_s": round(start_s, 1), "repeats": repeats,
                              "label_logprobs_default": default_k, "label_logprobs_soft": soft_k}
    for name, values in runs.items():
        tokens, prompt_tokens = values[0].value
        result[name] = {**_stats(statistics.median(v.wall_s for v in values), len(reqs), tokens, prompt_tokens),
                        "runs_wall_s": [round(v.wall_s, 3) for v in values],
                        "runs_cpu_s": [round(v.cpu_s, 3) for v in values]}
    result["tokens_equal"] = all(result[n]["completion_tokens"] == result["raw"]["completion_tokens"] for n in runs)
    # Each repeat runs the sides back to back, so a ratio within one repeat compares runs that saw the same
    # load from the rest of the machine; the median over repeats is the reported ratio.
    for name in ("judge", "judge_soft"):
        result[f"ratio_{name}_over_raw"] = ratio(runs[name], runs["raw"])
        result[f"cpu_ratio_{name}_over_raw"] = ratio(runs[name], runs["raw"], "cpu_s")
    return result


def _params_without_logprobs(backend: Any, sampling: Any) -> Any:
    k = backend.label_logprobs
    backend.label_logprobs = 0
    try:
        return backend._sampling_params(sampling)
    finally:
        backend.label_logprobs = k


def against_server(reqs: list, max_tokens: int, seq_n: int, long_tokens: int, long_seq_n: int, model: str,
                   engine: dict[str, Any], log_dir: Path) -> dict[str, Any]:
    from mr3_reward.backends.vllm import VLLMServer

    # The in-process engine's options, as `vllm serve` flags.
    args = ["--enforce-eager"] if engine.get("enforce_eager") else []
    if engine.get("kv_cache_memory_bytes"):
        args += ["--kv-cache-memory-bytes", str(engine["kv_cache_memory_bytes"])]
    server = VLLMServer(model, dtype=engine["dtype"], max_model_len=engine["max_model_len"], args=args,
                        log_path=log_dir / "vllm-serve.log")
    start_s = server.start()
    try:
        result = {"server_start_s": round(start_s, 1),
                  **_compare(server.url, model, reqs, max_tokens, seq_n, extra={}, label="")}
        if long_tokens:
            # mR3 writes hundreds to thousands of reasoning tokens; SmolLM2 stops after ~65. Fixed-length
            # generations (vLLM's ignore_eos, on both sides) stand in for that regime, where decoding, and so
            # batching, dominates.
            result["long"] = {"max_tokens": long_tokens, "ignore_eos": True,
                              **_compare(server.url, model, reqs, long_tokens, long_seq_n, {"ignore_eos": True},
                                         "long ")}
    finally:
        server.stop()
    return result


def _compare(url: str, model: str, reqs: list, max_tokens: int, seq_n: int, extra: dict, label: str) -> dict[str, Any]:
    import openai

    from mr3_reward.backends.base import chat_text
    from mr3_reward.backends.openai import OpenAIBackend
    from mr3_reward.judge import Judge

    backend = OpenAIBackend(model, url, max_concurrency=256, extra_body=extra)
    judge = Judge(model, backend=backend, cache=None, max_retries=0, max_tokens=max_tokens)
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
            model=model, prompt=text, max_tokens=s.max_tokens, temperature=s.temperature, top_p=s.top_p,
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


def chart(result: dict[str, Any], out_dir: Path | None = None) -> Path:
    from benchmarks.common import Panel, plot

    ip, sv = result["in_process"], result["server"]
    groups = [(f"judge outputs\n(max_tokens {result['max_tokens']})", sv)]
    if "long" in sv:
        groups.append((f"fixed {sv['long']['max_tokens']}-token\ngenerations", sv["long"]))
    return plot("vllm", [
        Panel(f"in process: judge / raw time = {ip['ratio_judge_over_raw']:.3f} (goal <= {GOAL_OVERHEAD})",
              x=["raw\nLLM.generate", "Judge +\nVLLMBackend", f"Judge +\nVLLMBackend\n(label logprobs "
                                                              f"{ip['label_logprobs_soft']})"],
              series={"completion tokens / s": [ip[k]["tokens_per_s"] for k in ("raw", "judge", "judge_soft")]},
              ylabel="completion tokens / s", fmt="{:.0f}"),
        Panel(f"vllm serve: {sv['speedup_judgments_per_s']:.1f}x judgments/s (goal >= {GOAL_SPEEDUP:.0f}x)",
              x=[f"{name}\n{g['speedup_judgments_per_s']:.1f}x" for name, g in groups],
              series={"naive sequential OpenAI client loop": [g["naive_sequential"]["tokens_per_s"] for _, g in groups],
                      f"Judge + OpenAIBackend ({sv['max_concurrency']} in flight)":
                          [g["openai_backend"]["tokens_per_s"] for _, g in groups]},
              ylabel="completion tokens / s", fmt="{:.0f}"),
    ], title=f"{result['model']} on vLLM ({result.get('device', 'CPU build')}), {result['n']} judgments, "
             f"max_tokens {result['max_tokens']}", out_dir=out_dir, saved=result)


def run(n: int = 64, max_tokens: int = 128, repeats: int = 3, seq_n: int = 24, soft_k: int = 5,
        long_tokens: int = 256, long_seq_n: int = 6, model: str = MODEL, engine: dict[str, Any] | None = None,
        out_dir: Path | None = None) -> dict:
    from benchmarks.common import engine_options, machine, table, write

    engine = engine or engine_options()
    reqs = requests(n)
    print(f"in process: {model}, {n} judgments, max_tokens {max_tokens}, {repeats} repeats", flush=True)
    ip = in_process(reqs, max_tokens, repeats, soft_k, model, engine)
    print(f"vllm serve: {n} judgments concurrently, {min(seq_n, n)} sequentially", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        sv = against_server(reqs, max_tokens, min(seq_n, n), long_tokens, min(long_seq_n, n), model, engine, Path(tmp))
    result = {"model": model, "n": n, "max_tokens": max_tokens, "engine": engine,
              "device": machine().get("gpu", "CPU build"), "in_process": ip, "server": sv,
              "goal_ratio_max": GOAL_OVERHEAD, "goal_speedup_min": GOAL_SPEEDUP}
    path = write("vllm", result, out_dir)
    png = chart(result, out_dir)
    ratio, speedup = ip["ratio_judge_over_raw"], sv["speedup_judgments_per_s"]
    table(f"vLLM engine ({model}, {result['device']}, {n} judgments, max_tokens {max_tokens})", [
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
    from benchmarks.common import add_engine_args, engine_options

    ap = argparse.ArgumentParser(prog="python -m benchmarks vllm")
    ap.add_argument("--n", type=int, default=64, help="judgments per run")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per in-process side (median reported)")
    ap.add_argument("--seq-n", type=int, default=24, help="samples the naive sequential loop judges")
    ap.add_argument("--soft-k", type=int, default=5, help="label_logprobs of the soft-reward variant")
    ap.add_argument("--long-tokens", type=int, default=256,
                    help="also compare with fixed-length generations of this many tokens (0: skip)")
    ap.add_argument("--long-seq-n", type=int, default=6, help="samples the naive loop judges in that comparison")
    add_engine_args(ap)
    ap.add_argument("--out-dir", type=Path)
    a = ap.parse_args(argv)
    run(a.n, a.max_tokens, a.repeats, a.seq_n, a.soft_k, a.long_tokens, a.long_seq_n, a.model,
        engine_options(a.dtype, a.max_model_len, a.kv_cache_gib), a.out_dir)


if __name__ == "__main__":
    main()
