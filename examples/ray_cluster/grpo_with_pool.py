"""GRPO where every rank judges through a shared Ray judge pool.

On a cluster (see README.md in this folder), after `mr3 serve` started the pool:

    accelerate launch --num_processes 8 examples/ray_cluster/grpo_with_pool.py --pool mr3-judges

Each rank joins the Ray cluster (``RAY_ADDRESS`` or ``auto``) and connects to the pool by name; the
judges' GPUs are not the trainer's. With no arguments beyond ``--pool`` it trains the CPU demo policy of
`examples/grpo_mr3.py` for one step, which is how the tests run it against a local pool.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from mr3_reward.reward import MR3Reward


def _demo():
    spec = importlib.util.spec_from_file_location("grpo_mr3", Path(__file__).resolve().parents[1] / "grpo_mr3.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", default="mr3-judges", help="the pool's name (mr3 serve --name)")
    ap.add_argument("--mode", default="binary", help="MR3Reward mode (the demo data has a reference column)")
    ap.add_argument("--group-size", type=int, default=None,
                    help="group mode: GRPO's num_generations, so groups split between ranks are judged whole")
    ap.add_argument("--output-dir", default=None)
    args = ap.parse_args(argv)

    # The whole judge configuration lives in the pool; the reward only chooses the task and the cache.
    reward = MR3Reward(pool=args.pool, mode=args.mode, group_size=args.group_size, cache="default", max_tokens=4096)
    trainer, reward = _demo().main(output_dir=args.output_dir, reward=reward)
    print("rewards:", list(trainer._logs["rewards"][reward.__name__]))
    print("pool:", {k: v for k, v in reward.judge.backend.stats.items() if v})
    return 0


if __name__ == "__main__":
    sys.exit(main())
