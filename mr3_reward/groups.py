"""Group-aware judging across trainer ranks, for ``MR3Reward(mode="group", pool=..., group_size=G)``.

TRL's GRPO sampler can split one prompt's G generations between ranks (when the per-rank batch is not a
multiple of G). In ``group`` mode a rank then sees part of a group and compares only that part. With
``group_size`` set, each rank posts the rows of every group it holds to a `GroupBoard` (a small threaded
Ray actor named ``<pool>-groups``); once a group has its G rows, the rank holding the lowest-ranked part
(the leader) judges the whole group once, through the pool, and posts every row's reward; the other
ranks collect theirs. A group that is still incomplete after ``group_timeout_s`` is judged with the rows
the rank holds, with a warning: slower, never stuck.
"""

from __future__ import annotations

import threading
import time
from typing import Any

STALE_S = 3600.0  # groups nobody collected (a rank died) are dropped after this long


class GroupBoard:
    """Where the ranks meet. Keys are ``"<step>:<group>"``; parts are the ranks' ids."""

    def __init__(self) -> None:
        self.groups: dict[str, dict[str, Any]] = {}
        self.cond = threading.Condition()

    def offer(self, key: str, part: str, rows: list[dict], size: int) -> None:
        with self.cond:
            now = time.time()
            for k in [k for k, g in self.groups.items() if now - g["created"] > STALE_S]:
                del self.groups[k]
            group = self.groups.setdefault(key, {"parts": {}, "size": size, "results": None, "taken": set(),
                                                 "created": now})
            group["parts"][part] = rows
            self.cond.notify_all()

    def gather(self, key: str, timeout: float) -> dict[str, list[dict]] | None:
        """Every part of the group once it has ``size`` rows; None if it is still short after ``timeout``."""
        deadline = time.time() + timeout
        with self.cond:
            while True:
                group = self.groups.get(key)
                if group and sum(len(rows) for rows in group["parts"].values()) >= group["size"]:
                    return dict(group["parts"])
                left = deadline - time.time()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def publish(self, key: str, results: dict[str, Any], leader: str) -> None:
        with self.cond:
            group = self.groups.get(key)
            if group is None:
                return
            group["results"] = results
            group["taken"].add(leader)  # the leader keeps its own part's results
            if group["taken"] >= set(group["parts"]):
                del self.groups[key]
            self.cond.notify_all()

    def fetch(self, key: str, part: str, timeout: float) -> Any:
        """This part's result once the leader has published it; None after ``timeout``."""
        deadline = time.time() + timeout
        with self.cond:
            while True:
                group = self.groups.get(key)
                if group is None:
                    return None
                if group["results"] is not None:
                    group["taken"].add(part)
                    result = group["results"].get(part)
                    if group["taken"] >= set(group["parts"]):
                        del self.groups[key]
                    return result
                left = deadline - time.time()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def size(self) -> int:
        with self.cond:
            return len(self.groups)


def board(pool_name: str) -> Any:
    """The board of a pool (created by the first rank that asks; it lives as long as the cluster)."""
    import ray

    from mr3_reward.backends.ray_pool import NAMESPACE

    return ray.remote(GroupBoard).options(
        name=f"{pool_name}-groups", namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
        num_cpus=0, max_concurrency=256,
    ).remote()
