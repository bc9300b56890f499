"""The Ray path of a labeling job: the pending shards labeled by a Ray Data ``map_batches`` over judge actors.

Each actor builds its judge once and labels one shard per batch row; the driver gets each shard's records back
as the text a local run would write, and writes the shard files itself (`mr3_reward.labeling.job`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from mr3_reward.judge import Judge
from mr3_reward.labeling.config import LabelConfig
from mr3_reward.labeling.rows import LabelRow
from mr3_reward.labeling.strategies import label_rows, records_text


class _ShardLabeler:
    """A Ray Data actor: builds its own judge once, then labels one shard per batch row."""

    def __init__(self, factory: Judge | Callable[[], Judge], config: LabelConfig) -> None:
        self.judge = factory if isinstance(factory, Judge) else factory()
        self.config = config

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list]:
        out: dict[str, list] = {"shard": [], "payload": [], "stats": []}
        for k, text in zip(batch["shard"], batch["rows"]):
            stats: dict[str, int] = {}
            rows = [LabelRow.from_dict(d) for d in json.loads(str(text))]
            records = label_rows(self.judge, rows, self.config, stats=stats)
            out["shard"].append(int(k))
            # JSON text, not nested columns: Arrow would re-type the records, and the shard bytes must be
            # exactly what a local run writes.
            out["payload"].append(records_text(records))
            out["stats"].append(json.dumps(stats))
        return out


def run_on_ray(factory: Judge | Callable[[], Judge], config: LabelConfig, shards: list[list[LabelRow]],
               pending: list[int], *, address: str | None, actors: int, cpus: float,
               gpus: float) -> Iterator[tuple[int, str, dict[str, int]]]:
    """Label the pending shards with ``map_batches`` over an actor pool of ``actors`` judges.

    Yields (shard index, the shard file's text, the judge's stats for it) as each result streams in: shards
    may come back in any order.
    """
    if not pending:
        return
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise ImportError("--ray needs Ray Data: pip install 'mr3-reward[ray]'") from e
    if not ray.is_initialized():
        ray.init(address=address or os.environ.get("RAY_ADDRESS") or None)
    items = [{"shard": k, "rows": json.dumps([r.to_dict() for r in shards[k]], ensure_ascii=False)} for k in pending]
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    labeled = dataset.map_batches(
        _ShardLabeler, fn_constructor_kwargs={"factory": factory, "config": config}, batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=min(actors, len(items))), num_cpus=cpus, num_gpus=gpus or None,
    )
    for result in labeled.iter_rows():
        yield int(result["shard"]), str(result["payload"]), json.loads(str(result["stats"]))
