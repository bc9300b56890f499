"""Deterministic rubric-variant choice: the same sample id picks the same variant and label order in
every process (the reference used Python's salted ``hash``, which does not)."""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Mapping, Sequence

from mr3_reward.types import Rubric


def stable_seed(sample_id: str) -> int:
    """A process-independent integer from a sample id (Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.sha256(sample_id.encode("utf-8")).digest()[:8], "big")


def choose_rubric(variants: Sequence[Mapping[str, str]], sample_id: str | None, *, shuffle: bool = True) -> Rubric:
    """Pick one paraphrased rubric variant and (optionally) shuffle its label order, both from the id.

    The same id always yields the same rubric, in every process; no id means the first variant as written.
    """
    if not variants:
        raise ValueError("no rubric variants to choose from")
    return choose_frozen(tuple(tuple(v.items()) for v in variants), sample_id, shuffle)


@functools.lru_cache(maxsize=65536)
def choose_frozen(variants: tuple[tuple[tuple[str, str], ...], ...], sample_id: str | None, shuffle: bool) -> Rubric:
    """`choose_rubric` over variants already frozen to (label, description) pairs, as a renderer keeps them."""
    if sample_id is None:
        return Rubric(variants[0])
    rng = random.Random(stable_seed(sample_id))
    entries = list(variants[rng.randrange(len(variants))])
    if shuffle:
        rng.shuffle(entries)
    return Rubric(tuple(entries))
