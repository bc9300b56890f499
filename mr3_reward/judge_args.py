"""What the ``mr3`` subcommands (judge, eval, label) share: the judge options, their mapping to `Judge`
keyword arguments, and how a command reports bad input."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any


def add_judge_arguments(parser: argparse.ArgumentParser, *, cache_default: str | None = None) -> None:
    from mr3_reward.backends.registry import BACKENDS
    from mr3_reward.judge import DEFAULT_MODEL
    from mr3_reward.models import ALIASES
    from mr3_reward.templates import LanguageMode

    g = parser.add_argument_group("judge")
    aliases = ", ".join(f"{k} ({v})" for k, v in ALIASES.items())
    g.add_argument("--model", default=DEFAULT_MODEL, help=f"hub id, local dir or alias: {aliases}")
    g.add_argument("--backend", default="transformers", choices=list(BACKENDS))
    g.add_argument("--base-url", help="with --backend openai: the server, e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--language-mode", default="auto", choices=["auto", *[m.value for m in LanguageMode]])
    g.add_argument("--pack", help="official rubric pack directory (needed for non-English template text)")
    g.add_argument("--family", help="pack template, e.g. strict_pair/general, helpsteer3, mgsm, polyguard/prompt_template")
    g.add_argument("--max-tokens", type=int, help="cap on generated tokens per judgment (default 16384)")
    g.add_argument("--thinking-budget", type=int, help="most tokens the judge may think before </think> is closed "
                   "for it (default: unbounded, what the reference evaluated)")
    g.add_argument("--verdict", choices=["free", "constrained"], help="free: the judge writes its own answer "
                   "(default); constrained: the answer is decoded under the rubric's labels and always parses")
    g.add_argument("--explanation-tokens", type=int, help="with --verdict constrained: cap on the explanation "
                   "(default 128)")
    g.add_argument("--temperature", type=float)
    g.add_argument("--seed", type=int)
    g.add_argument("--max-retries", type=int, default=2, help="re-samples of failed items (default 2)")
    g.add_argument("--max-input-tokens", type=int, help="cut responses so a prompt fits in this many tokens "
                   "(default: the engine's context less room to generate); the judgment is flagged truncated_input")
    g.add_argument("--cache", default=cache_default,
                   help="result cache: 'default' (per-user SQLite file), a path, ':memory:' or 'none'"
                        + (f" (default {cache_default})" if cache_default else " (default: off)"))
    g.add_argument("--device", default="cpu", help="transformers backend: cpu, cuda, cuda:1, ...")
    g.add_argument("--dtype", default=None, help="weights dtype (default: float32 for transformers, auto for vllm)")
    g.add_argument("--batch-size", type=int, default=8, help="transformers backend: prompts per generate call")
    g.add_argument("--pool", metavar="NAME", help="judge with a running Ray judge pool (`mr3 serve`) instead of a "
                   "local engine; --model and --backend are then the pool's")
    g.add_argument("--pool-address", help="with --pool: the Ray cluster address (default: RAY_ADDRESS, else auto)")


def judge_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for `Judge` (all but the model) from the parsed options."""
    given = dict(max_tokens=args.max_tokens, temperature=args.temperature, seed=args.seed,
                 thinking_budget=args.thinking_budget, verdict=args.verdict, explanation_tokens=args.explanation_tokens)
    sampling = {k: v for k, v in given.items() if v is not None}
    if args.batch_size < 1:  # the one judge option no constructor sees unless --backend is transformers
        raise ValueError(f"--batch-size must be a positive integer (prompts per generate call), got {args.batch_size}")
    backend_options: dict[str, Any] = {}
    if args.backend == "transformers":
        _check_device(args.device)
        backend_options = {"device": args.device, "dtype": args.dtype or "float32", "batch_size": args.batch_size}
    elif args.backend == "vllm" and args.dtype:
        backend_options = {"dtype": args.dtype}
    elif args.backend == "openai":
        if not args.base_url:
            raise ValueError("--backend openai needs --base-url, e.g. --base-url http://127.0.0.1:8000/v1")
        backend_options = {"base_url": args.base_url}
    cache = args.cache
    if cache is not None and str(cache).lower() == "none":
        cache = None
    backend: Any = args.backend
    if getattr(args, "pool", None) is not None:  # --pool '' is refused by JudgePool, not ignored
        from mr3_reward.backends.ray_pool import JudgePool

        backend, backend_options = JudgePool.connect(args.pool, address=args.pool_address), {}
    return dict(
        backend=backend, language_mode=args.language_mode, pack=args.pack, family=args.family,
        max_retries=args.max_retries, backend_options=backend_options, cache=cache,
        max_input_tokens=args.max_input_tokens, **sampling,
    )


def _check_device(device: str) -> None:
    """Refuse a device torch cannot name now, not after the model has loaded (the engine only moves to it)."""
    import torch

    try:
        torch.device(device)
    except RuntimeError:
        raise ValueError(f"--device {device!r} is not a torch device; use cpu, cuda, cuda:1, mps, ...") from None


def run_command(name: str, call: Callable[[], int]) -> int:
    """Run a subcommand; bad input or configuration prints one clear line and exits 2 (no traceback)."""
    from mr3_reward.backends.ray_pool import PoolError
    from mr3_reward.records import InputError

    try:
        return call()
    except (InputError, ValueError, LookupError, ImportError, OSError, PoolError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"{name}: error: {msg}", file=sys.stderr)
        return 2
