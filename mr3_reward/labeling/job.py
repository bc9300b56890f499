"""The labeling job on disk: shards, manifest, resume, assembly and summary, and `label` that runs it.

``<output>.work/`` holds ``manifest.json`` (the job's configuration hash) and one ``shard-NNNNN.jsonl`` per
``shard_size`` rows, each written whole (`mr3_reward.data.write_atomic`). A run resumes from the finished
shards, then assembles the outputs from all of them, each put in place by one rename, and deletes the work
folder; a kill at any point leaves files the next run of the same command recognizes.

`label` takes these steps, each a function below it in this order: `_settings` (labeling config vs judge
options), `_RayOptions`, `read_rows`, `_judges`, `_preflight` (plan and render every row), `_job_key`, `_prepare`
(resume, start or refuse), `_label_pending` (the shards not finished yet) and `_finish` (summary, then
`_assemble` the outputs).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mr3_reward.backends.base import Backend
from mr3_reward.data import clear_leftovers, json_text, read_jsonl, remove_tree, replacing, shard_path, write_atomic
from mr3_reward.errors import InputError
from mr3_reward.judge import DEFAULT_MODEL, Judge
from mr3_reward.labeling.config import DROP_REASONS, LabelConfig
from mr3_reward.labeling.ray import run_on_ray
from mr3_reward.labeling.rows import LabelRow, read_rows
from mr3_reward.labeling.strategies import Plan, label_rows, plan, records_text
from mr3_reward.records import MAX_REPORTED

META_FILE = "mr3_label.json"
# Bump when the shard or output layout changes: a work folder of another format is not resumed.
# 2: each judgment record holds every `Judgment` field but meta (`mr3_reward.records.judgment_record`).
FORMAT_VERSION = 2


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


class _Job:
    """The files of one labeling job: ``<output>.work/`` (manifest + shards) and the final outputs."""

    def __init__(self, output: Path, extra: dict[str, str | Path | None]) -> None:
        self.output = output
        self.extra = {k: Path(v) for k, v in extra.items() if v}  # the outputs asked for besides the dataset
        self.work = output.with_name(output.name + ".work")
        self.manifest_path = self.work / "manifest.json"

    def shard_path(self, k: int) -> Path:
        return shard_path(self.work, k + 1)  # shard-00001 is the first: the layout FORMAT_VERSION names

    def write_manifest(self, manifest: dict) -> None:
        write_atomic(self.manifest_path, records_text([manifest]))  # one compact line of strict JSON

    def read_manifest(self) -> dict | None:
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def finished_meta(self) -> dict | None:
        try:
            return json.loads((self.output / META_FILE).read_text(encoding="utf-8"))
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
            return None

    def shard_done(self, k: int, n_rows: int) -> bool:
        # Shards are renamed into place whole; the line count guards against a file damaged by other means.
        try:
            with open(self.shard_path(k), encoding="utf-8") as f:
                return sum(1 for _ in f) == n_rows
        except FileNotFoundError:
            return False


@dataclass(frozen=True)
class LabelResult:
    """What a labeling job produced.

    output (`Path`): the HF dataset folder (``datasets.load_from_disk(output)``, or `dataset`).
    summary (`dict`): rows, kept, dropped by reason, per-language counts, position consistency, failures.
    stats (`dict`): this run only: shards labeled / resumed, judge requests, cache hits, engine items, seconds.
    """

    output: Path
    summary: dict[str, Any]
    stats: dict[str, Any]

    @property
    def dataset(self) -> Any:
        from datasets import load_from_disk

        return load_from_disk(str(self.output))


def _summary(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Deterministic counts over every row (kept and dropped), from the shard records."""
    dropped = collections.Counter(r["reason"] for r in records if r["reason"] is not None)
    languages: dict[str, dict[str, int]] = {}
    for r in records:
        entry = languages.setdefault(r["language"], {"rows": 0, "kept": 0})
        entry["rows"] += 1
        entry["kept"] += r["reason"] is None
    known = [c["consistent"] for r in records for c in r["comparisons"] if c["consistent"] is not None]
    judgments = [j for r in records for j in r["judgments"]]
    return {
        "rows": len(records),
        "kept": sum(r["reason"] is None for r in records),
        "dropped": {reason: dropped[reason] for reason in DROP_REASONS if dropped[reason]},
        "languages": dict(sorted(languages.items())),
        "position_consistency": sum(known) / len(known) if known else None,
        "judgments": len(judgments),
        "failures": dict(sorted(collections.Counter(j["failure"] for j in judgments if j["failure"]).items())),
    }


def label(
    source: str | Path,
    output: str | Path,
    *,
    judge: Judge | None = None,
    model: str = DEFAULT_MODEL,
    backend: str | Backend = "transformers",
    cache: str | Path | None = "default",
    config: LabelConfig | None = None,
    jsonl: str | Path | None = None,
    parquet: str | Path | None = None,
    dropped: str | Path | None = None,
    overwrite: bool = False,
    ray: bool = False,
    ray_address: str | None = None,
    ray_actors: int = 1,
    ray_cpus_per_actor: float = 1.0,
    ray_gpus_per_actor: float = 0.0,
    progress: bool = False,
    **options: Any,
) -> LabelResult:
    """Label ``source`` into a preference dataset at ``output``; resumable (see `mr3_reward.labeling`).

    source (`str | Path`): ``.jsonl`` / ``.parquet``, a saved HF dataset folder or a hub dataset id (`read_rows`).
    output (`str | Path`): the HF dataset folder to write (kept pairs); work files go to ``<output>.work/``.
    judge (`Judge`, *optional*): a ready judge; otherwise one is built from ``model``, ``backend``, ``cache``
        and the judge options below. With ``ray=True`` a given judge is pickled to every actor (fine for small
        engines; pass ``model=`` instead so each actor loads its own).
    cache (`str | None`): the judge's result cache: ``"default"`` (the per-user SQLite file), a path, or None.
    config (`LabelConfig`, *optional*): or its fields as keywords (``strategy="tournament"``, ``min_margin=0.2``).
    jsonl, parquet (`str | Path`, *optional*): also write the pairs as JSONL / Parquet there.
    dropped (`str | Path`, *optional*): write the dropped rows, with their ``reason``, as JSONL there.
    overwrite (`bool`): replace outputs and work files of a *different* job; the same job always resumes.
    ray (`bool`): label the shards on a Ray cluster (``ray_address``, or ``RAY_ADDRESS``, or a new local one)
        with ``ray_actors`` judge actors of ``ray_cpus_per_actor`` CPUs and ``ray_gpus_per_actor`` GPUs.
    progress (`bool`): show a progress bar with ETA (stderr).
    options: `LabelConfig` fields, then judge options: ``language_mode``, ``pack``, ``family``, ``max_retries``,
        ``backend_options``, and `Sampling` fields such as ``max_tokens``.

    >>> import json, tempfile
    >>> from mr3_reward.backends.fake import FakeBackend
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "samples.jsonl").write_text(json.dumps({"prompt": "Capital of France?",
    ...                                                       "responses": ["Rome", "Paris", "Lyon"]}) + "\\n")
    >>> judge = Judge(backend=FakeBackend(lambda p, s: '</think>{"score": "%s"}' % ("5" if "Paris" in p.user else "2")))
    >>> result = label(folder / "samples.jsonl", folder / "pairs", judge=judge)
    >>> result.summary["kept"], result.dataset[0]["chosen"], result.dataset[0]["rejected"]
    (1, 'Paris', 'Rome')
    """
    start = time.perf_counter()
    config, judge_options = _settings(config, judge, options)
    on_ray = _RayOptions(ray, ray_address, ray_actors, ray_cpus_per_actor, ray_gpus_per_actor)
    rows = read_rows(source, config)
    factory, driver_judge = _judges(judge, on_ray.enabled, model, backend, cache, judge_options)
    plans = _preflight(driver_judge, rows, config)
    key = _job_key(config, driver_judge, rows)
    job_hash = _digest(key)
    job = _Job(Path(output), {"jsonl": jsonl, "parquet": parquet, "dropped": dropped})
    shards = [rows[lo:lo + config.shard_size] for lo in range(0, len(rows), config.shard_size)]
    stats: dict[str, Any] = {"shards": len(shards), "shards_resumed": 0, "shards_labeled": 0, "requests": 0,
                             "cache_hits": 0, "duplicates": 0, "engine_items": 0}
    done = _prepare(job, job_hash, key, overwrite)
    if done is not None:
        return LabelResult(job.output, done["summary"], {**stats, "shards_resumed": len(shards), "seconds": 0.0})
    _label_pending(job, factory, config, shards, plans, stats, on_ray, progress)
    summary = _finish(job, len(shards), key, job_hash)
    stats["seconds"] = time.perf_counter() - start
    return LabelResult(job.output, summary, stats)


# The steps of `label`, in the order it takes them.
def _settings(config: LabelConfig | None, judge: Judge | None,
              options: dict[str, Any]) -> tuple[LabelConfig, dict[str, Any]]:
    """``options`` split into the labeling config (or ``config`` as given) and the judge's options; refuses both
    ``config`` and its fields as keywords, and a ready ``judge`` with judge options."""
    config_fields = {f.name for f in dataclasses.fields(LabelConfig)}
    config_options = {k: v for k, v in options.items() if k in config_fields}
    judge_options = {k: v for k, v in options.items() if k not in config_fields}
    if config is not None and config_options:
        raise ValueError(f"give config=LabelConfig(...) or its fields as keywords, not both: {sorted(config_options)}")
    config = config or LabelConfig(**config_options)
    if judge is not None and judge_options:
        raise ValueError(f"judge=... already carries its engine and settings; drop {', '.join(sorted(judge_options))} "
                         "or build the Judge with them")
    return config, judge_options


@dataclass(frozen=True)
class _RayOptions:
    """Where the shards are labeled: with ``enabled``, on the Ray cluster at ``address`` by ``actors`` judge actors
    of ``cpus`` CPUs and ``gpus`` GPUs each; otherwise here. Checked on construction, every problem at once."""

    enabled: bool
    address: str | None
    actors: int
    cpus: float
    gpus: float

    def __post_init__(self) -> None:
        problems = []
        if isinstance(self.actors, bool) or not isinstance(self.actors, int) or self.actors < 1:
            problems.append(f"ray_actors (--ray-actors) must be a positive int, got {self.actors!r}")
        for name, value in (("ray_cpus_per_actor", self.cpus), ("ray_gpus_per_actor", self.gpus)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
                problems.append(f"{name} (--{name.replace('_', '-')}) must be a number >= 0 of CPUs/GPUs per judge "
                                f"actor, got {value!r}")
        if problems:
            raise ValueError("invalid label job: " + "; ".join(problems))


def _judges(judge: Judge | None, ray: bool, model: str, backend: str | Backend, cache: str | Path | None,
            judge_options: dict[str, Any]) -> tuple[Judge | Callable[[], Judge], Judge]:
    """The judge that labels the shards (on Ray with a named backend: a factory, from which each actor builds its
    own) and the driver's judge, which renders the prompts and keys the job."""
    if judge is not None:
        return judge, judge
    judge_args = dict(model=model, backend=backend, cache=cache, **judge_options)
    if ray and isinstance(backend, str):
        # The driver only renders prompts and keys the job; each actor loads the engine itself.
        revision = (judge_options.get("backend_options") or {}).get("revision")
        render_options = {k: v for k, v in judge_options.items() if k != "backend_options"}
        return functools.partial(Judge, **judge_args), Judge(model, backend=None, revision=revision, **render_options)
    driver_judge = Judge(**judge_args)
    return driver_judge, driver_judge


def _preflight(judge: Judge, rows: Sequence[LabelRow], config: LabelConfig) -> list[Plan]:
    """Plan every row and render its first request, so template problems (a language the template cannot
    render, a rubric the task cannot use) surface with their row before any generation."""
    plans, problems = [], []
    for row in rows:
        p = plan(row, config)
        plans.append(p)
        if p.requests:
            try:
                judge.render(p.requests[0])
            except (ValueError, KeyError) as e:
                problems.append(f"{row.where}: {e.args[0] if isinstance(e, KeyError) and e.args else e}")
    if problems:
        more = f"\n... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
        raise InputError(f"{len(problems)} row(s) cannot be rendered for the judge:\n"
                         + "\n".join(problems[:MAX_REPORTED]) + more)
    return plans


def _job_key(config: LabelConfig, judge: Judge, rows: Sequence[LabelRow]) -> dict[str, Any]:
    """What makes a job this job: its hash names the work folder's job and the finished outputs' (``config_hash``)."""
    fingerprint = _digest([dataclasses.replace(r, where="").to_dict() for r in rows])
    return {"format": FORMAT_VERSION, "config": config.key(), "judge": judge.config_key(),
            "input": {"rows": len(rows), "fingerprint": fingerprint}}


def _prepare(job: _Job, job_hash: str, key: dict, overwrite: bool) -> dict | None:
    """Resume, start or refuse; returns the finished job's metadata when there is nothing left to do."""
    for path in (job.output, *job.extra.values()):
        path.parent.mkdir(parents=True, exist_ok=True)
    clear_leftovers(job.output, job.work, *job.extra.values())
    if job.work.is_dir():  # a shard or the manifest being written when the last run was killed
        for p in job.work.glob(".*.tmp-*"):
            p.unlink()
    manifest = job.read_manifest()
    if manifest is not None and manifest.get("config_hash") != job_hash:
        if not overwrite:
            changed = [k for k in ("format", "config", "judge", "input") if manifest.get("key", {}).get(k) != key[k]]
            raise InputError(f"{job.work} holds an unfinished job with another configuration (changed: "
                             f"{', '.join(changed) or 'unknown'}); run its original command to resume it, or pass "
                             "--overwrite (overwrite=True) to discard it and start over")
        manifest = None
    if manifest is not None and manifest.get("complete"):
        remove_tree(job.work)  # killed while cleaning up: the outputs are final
        return job.finished_meta() or {"summary": manifest.get("summary", {})}
    if manifest is None:
        meta = job.finished_meta()
        ours = meta is not None and meta.get("config_hash") == job_hash
        if ours and all(p.exists() for p in job.extra.values()):
            return meta  # this very job finished earlier: nothing to do
        existing = [str(p) for p in (job.output, *job.extra.values()) if p.exists()]
        if existing and not (overwrite or ours):
            raise InputError(f"{', '.join(existing)} already exist(s), written by another job or by hand; pass "
                             "--overwrite (overwrite=True) to replace them")
        if job.work.exists():
            remove_tree(job.work)  # no manifest: killed before the job had started
        job.work.mkdir(parents=True)
        job.write_manifest({"config_hash": job_hash, "key": key, "complete": False})
    return None


def _label_pending(job: _Job, factory: Judge | Callable[[], Judge], config: LabelConfig,
                   shards: list[list[LabelRow]], plans: list[Plan], stats: dict[str, Any], on_ray: _RayOptions,
                   progress: bool) -> None:
    """Label the shards that are not finished yet, each written whole as it is done; adds to ``stats``."""
    pending = [k for k, shard in enumerate(shards) if not job.shard_done(k, len(shard))]
    stats["shards_resumed"] = len(shards) - len(pending)
    # Locally the bar counts judgments (the judge reports each); Ray actors report whole shards.
    total = len(pending) if on_ray.enabled else sum(len(plans[r.index].requests) for k in pending for r in shards[k])
    with _ProgressBar(progress, total, on_ray.enabled) as advance:
        if on_ray.enabled:
            # Shards come back in any order as they finish: each is written as it streams in.
            for k, text, shard_stats in run_on_ray(factory, config, shards, pending, address=on_ray.address,
                                                   actors=on_ray.actors, cpus=on_ray.cpus, gpus=on_ray.gpus):
                write_atomic(job.shard_path(k), text)
                for name, value in shard_stats.items():
                    stats[name] = stats.get(name, 0) + value
                stats["shards_labeled"] += 1
                advance(1)
        else:
            for k in pending:
                records = label_rows(factory, shards[k], config, progress=advance, stats=stats)
                write_atomic(job.shard_path(k), records_text(records))
                stats["shards_labeled"] += 1


def _finish(job: _Job, n_shards: int, key: dict[str, Any], job_hash: str) -> dict[str, Any]:
    """Every shard's records -> the summary (returned) and the final outputs (`_assemble`)."""
    records = [r for k in range(n_shards) for r in read_jsonl(job.shard_path(k))]
    summary = _summary(records)
    meta = {**key, "judge_model": key["judge"]["model"], "config_hash": job_hash, "summary": summary}
    _assemble(job, records, meta)
    return summary


def _assemble(job: _Job, records: list[dict], meta: dict) -> None:
    """Shards -> the final outputs, each written to a temp path and renamed into place; then the work folder
    goes. A kill at any point leaves the work folder, and the next run assembles again from the shards."""
    import datasets
    from datasets import Dataset, DatasetInfo

    kept = [{k: v for k, v in r.items() if k != "reason"} for r in records if r["reason"] is None]
    for r in kept:
        r["judge_model"] = meta["judge_model"]
    columns = [k for k in records[0] if k != "reason"] + ["judge_model"]
    info = DatasetInfo(description=f"Preference pairs labeled by mr3 label ({meta['judge_model']}); "
                                   f"see {META_FILE}.")
    dataset = Dataset.from_list(kept, info=info) if kept else Dataset.from_dict({c: [] for c in columns}, info=info)
    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # "Saving the dataset" bars would interleave with ours
    try:
        with replacing(job.output) as tmp:
            # datasets writes no data file for an empty dataset unless told to, and then cannot load the folder.
            dataset.save_to_disk(str(tmp), num_shards=None if kept else 1)
            (tmp / META_FILE).write_text(json_text(meta), encoding="utf-8")
        if "jsonl" in job.extra:
            write_atomic(job.extra["jsonl"], records_text(kept))
        if "parquet" in job.extra:
            with replacing(job.extra["parquet"]) as tmp:
                dataset.to_parquet(str(tmp))
        if "dropped" in job.extra:
            dropped = [{**r, "judge_model": meta["judge_model"]} for r in records if r["reason"] is not None]
            write_atomic(job.extra["dropped"], records_text(dropped))
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()
    manifest = job.read_manifest() or {}
    job.write_manifest({**manifest, "complete": True, "summary": meta["summary"]})
    remove_tree(job.work)


class _ProgressBar:
    """A rich progress bar with ETA over the judgments still to make (shards, on Ray); ``advance(n)``."""

    def __init__(self, enabled: bool, total: int, by_shard: bool) -> None:
        self.enabled, self.total, self.by_shard = enabled, total, by_shard
        self.bar = None

    def __enter__(self) -> Callable[[int], None]:
        if not self.enabled:
            return lambda n: None
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.bar = Progress(TextColumn("labeling" + (" (shards)" if self.by_shard else " (judgments)")), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                            console=Console(stderr=True))
        self.bar.__enter__()
        task = self.bar.add_task("label", total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
