"""Group mode across trainer ranks, for ``MR3Reward(mode="group", pool=..., group_size=G)``.

TRL's GRPO sampler can split one prompt's G generations between ranks (when the per-rank batch is not a
multiple of G). In ``group`` mode a rank then sees part of a group and compares only that part. With
``group_size`` set, each rank posts the rows of every group it holds to a `GroupBoard` (a small threaded
Ray actor named ``<pool>-groups``); once a group has its G rows, the rank holding the lowest-ranked part
(the leader) judges the whole group once, through the pool, and posts every row's reward; the other
ranks collect theirs. A group that is still incomplete after ``group_timeout_s`` is judged with the rows
the rank holds, with a warning: slower, never stuck.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from typing import Any

from mr3_reward.reward.modes import Batch, score_group
from mr3_reward.reward.options import RewardConfig
from mr3_reward.reward.rows import group_key

STALE_S = 3600.0  # groups nobody collected (a rank died) are dropped after this long
log = logging.getLogger("mr3_reward.reward")


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


class RankGroups:
    """This process's side of the meeting: its part id (ordered by rank) and its handle on the pool's board.

    rank (`int`, *optional*): this process's rank; default: the ``RANK`` environment variable.
    """

    def __init__(self, rank: int | None = None) -> None:
        rank = int(os.environ.get("RANK", "0")) if rank is None else rank
        self.part = f"{rank:06d}-{os.getpid()}"  # unique per process, and ordered by rank
        self._board: Any = None

    def score(self, judge: Any, config: RewardConfig, batch: Batch, step: int) -> None:
        """Post each group's rows here to the board, judge the groups this rank leads (whole) or could not
        complete (the part held here), and take the other groups' results from their leaders.

        step (`int`): the generation batch; the ranks must agree on it to meet on a group (TRL's global step).
        """
        import ray

        if self._board is None:
            self._board = board(judge.backend.name)
        rows, valid = batch.rows, set(batch.valid)
        local: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            local.setdefault(group_key(row), []).append(i)
        key = {g: f"{step}:{hashlib.sha256(g.encode('utf-8')).hexdigest()[:24]}" for g in local}
        posted = {g: [dict(rows[i], valid=i in valid, reward=batch.rewards[i], note=batch.notes[i]) for i in idx]
                  for g, idx in local.items()}
        ray.get([self._board.offer.remote(key[g], self.part, posted[g], config.group_size) for g in local])
        gathered = ray.get([self._board.gather.remote(key[g], config.group_timeout_s) for g in local])

        # Everything judged here (groups led here, and incomplete groups) goes to the judge in one call.
        here: list[dict] = []
        spans = []  # (group, {part: (start, count)})
        follow = []
        for g, parts in zip(local, gathered):
            if parts is None:
                log.warning("MR3Reward %s: group %s has fewer than %d completions after %g s; judging the %d held "
                            "here", config.name, key[g], config.group_size, config.group_timeout_s, len(local[g]))
                parts = {self.part: posted[g]}
            elif min(parts) != self.part:
                follow.append(g)
                continue
            offsets = {}
            for part in sorted(parts):
                offsets[part] = (len(here), len(parts[part]))
                here += parts[part]
            spans.append((g, offsets))
        sub = Batch(here, [r["reward"] for r in here], [r["note"] for r in here],
                    [k for k, r in enumerate(here) if r["valid"]])
        score_group(judge, config, sub)
        batch.judgments, batch.verdicts = sub.judgments, sub.verdicts
        for g, offsets in spans:
            # Published even for a part judged alone after a timeout: a rank whose part arrived too late then
            # finds a result without its part (its rows stay None, with a note) instead of waiting.
            self._board.publish.remote(key[g], {p: (sub.rewards[s:s + n], sub.notes[s:s + n])
                                                for p, (s, n) in offsets.items()}, self.part)
            s, n = offsets[self.part]
            for i, k in zip(local[g], range(s, s + n)):
                batch.rewards[i], batch.notes[i] = sub.rewards[k], sub.notes[k]
        for g in follow:
            result = ray.get(self._board.fetch.remote(key[g], self.part, 10 * config.group_timeout_s))
            if result is None:
                log.warning("MR3Reward %s: no result for group %s from its leader", config.name, key[g])
                for i in local[g]:
                    if i in valid:
                        batch.notes[i] = "not judged: the rank leading this group published no result"
                continue
            for i, r, note in zip(local[g], *result):
                batch.rewards[i], batch.notes[i] = r, note
