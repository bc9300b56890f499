"""Where stages keep their work: finished stages, reports and shard checkpoints under one work dir.

```
<workdir>/
  intake/  rubrics/  distill/  ...       one finished stage each: a saved HF dataset, report.json, _stage.json
  .partial/<stage>-<digest>-s<size>/     shard checkpoints of a stage that is still running (JSONL)
```

Everything is written to a temporary name and renamed into place, so a stage folder either holds a
finished stage or does not exist, whenever the process dies. ``_stage.json`` records the digest of
everything the stage's output depends on (its settings, the upstream stage's digest, the code's
version); a stage is finished when that file matches. Model-calling stages work through their rows in
shards and checkpoint each one, so a killed run resumes at the first unfinished shard.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from mr3_reward.data import read_jsonl, replacing, shard_path, write_json, write_jsonl

logger = logging.getLogger("training")

# Bump when a stage's output for the same inputs changes: every stage digest includes it.
PIPELINE_VERSION = "1"
STAGE_FILE = "_stage.json"
REPORT_FILE = "report.json"


def digest(*parts: Any) -> str:
    """A stable hex digest of JSON-able parts (dataclasses included), independent of dict order."""

    def plain(value: Any) -> Any:
        if is_dataclass(value) and not isinstance(value, type):
            return asdict(value)
        if isinstance(value, Path):
            return str(value)
        raise TypeError(f"cannot digest {type(value).__name__}")

    text = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=plain)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_digest(path: str | Path) -> str:
    """The sha256 of a file's bytes, or of every file under a folder (names included)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


class Workdir:
    """The folder of one pipeline run.

    root (`str | Path`): created if missing.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    def stage_info(self, stage: str) -> dict[str, Any] | None:
        path = self.stage_dir(stage) / STAGE_FILE
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None

    def is_done(self, stage: str, stage_digest: str) -> bool:
        info = self.stage_info(stage)
        return info is not None and info.get("digest") == stage_digest

    def load(self, stage: str):
        """The dataset a finished stage saved (memory-mapped)."""
        from datasets import load_from_disk

        return load_from_disk(str(self.stage_dir(stage) / "data"))

    def report(self, stage: str) -> dict[str, Any]:
        return json.loads((self.stage_dir(stage) / REPORT_FILE).read_text(encoding="utf-8"))

    def commit(
        self,
        stage: str,
        dataset: Any,
        report: Mapping[str, Any],
        stage_digest: str,
        *,
        extras: Mapping[str, Path] | None = None,
    ) -> Path:
        """Save a finished stage atomically: dataset (``data/``), ``report.json``, ``_stage.json`` last,
        plus ``extras`` (name -> a file or folder moved in, e.g. the trained model)."""
        final = self.stage_dir(stage)
        # Replacing a finished stage takes two renames, not one atomic step; a crash between them leaves no
        # stage folder, which only means the stage runs again.
        with replacing(final) as tmp:
            tmp.mkdir(parents=True)
            dataset.save_to_disk(str(tmp / "data"))
            for name, src in (extras or {}).items():
                shutil.move(str(src), str(tmp / name))
            write_json(tmp / REPORT_FILE, dict(report))
            write_json(tmp / STAGE_FILE, {"stage": stage, "digest": stage_digest, "pipeline_version": PIPELINE_VERSION})
        self.clear_partial(stage)
        return final

    def partial_dir(self, stage: str, stage_digest: str, shard_size: int | None = None) -> Path:
        """Where a running stage checkpoints; keyed by digest (and shard size), so a changed setting
        never reuses a stale shard."""
        suffix = f"-s{shard_size}" if shard_size else ""
        path = self.root / ".partial" / f"{stage}-{stage_digest[:16]}{suffix}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def clear_partial(self, stage: str) -> None:
        base = self.root / ".partial"
        if base.is_dir():
            for p in base.glob(f"{stage}-*"):
                shutil.rmtree(p, ignore_errors=True)


def run_sharded(
    items: Sequence[Any],
    shard_size: int,
    shard_dir: Path | None,
    work: Callable[[list[Any]], list[dict[str, Any]]],
    *,
    label: str = "shards",
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Run ``work`` over ``items`` in shards of ``shard_size``, checkpointing each shard's output.

    A shard whose file exists is read back, never recomputed: a killed run resumes at the first missing
    shard. Shard ``i`` always holds items ``[i * shard_size, (i + 1) * shard_size)``, so resuming needs
    the same items in the same order (the stage digest guarantees that).

    Returns the concatenated outputs and ``{"shards", "shards_reused", "shards_computed"}``.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    n = (len(items) + shard_size - 1) // shard_size
    out: list[dict[str, Any]] = []
    reused = 0
    for i in range(n):
        path = shard_path(shard_dir, i) if shard_dir is not None else None
        if path is not None and path.is_file():
            out += read_jsonl(path)
            reused += 1
            continue
        result = work(list(items[i * shard_size : (i + 1) * shard_size]))
        if path is not None:
            write_jsonl(path, result)
        out += result
        logger.info("%s: shard %d/%d done", label, i + 1, n)
    if reused:
        logger.info("%s: resumed, %d of %d shards were already done", label, reused, n)
    return out, {"shards": n, "shards_reused": reused, "shards_computed": n - reused}
