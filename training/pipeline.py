"""Run the stages in order, skipping finished ones: ``python -m training.pipeline CONFIG``.

Stages: ``intake -> rubrics -> distill -> filter -> difficulty -> curriculum -> sft``. Each reads the
previous stage's dataset from the work dir and commits its own (`training.store.Workdir`). A stage is
skipped when its folder holds a digest equal to the current one: the digest covers the stage's
settings, the models it calls, the rubric pack, the source files' bytes and the upstream stage's
digest, so changing anything re-runs exactly the stages it affects. Model-calling stages checkpoint per
shard, so a killed run resumes mid-stage; SFT resumes from its last trainer checkpoint.

Usage::

    python -m training.pipeline training/configs/tiny-cpu.yaml
    python -m training.pipeline CONFIG --set sft.epochs=1 --set workdir=/tmp/run   # overrides
    python -m training.pipeline CONFIG --until curriculum                          # data stages only
    accelerate launch -m training.pipeline CONFIG --stages sft                     # multi-GPU SFT

Relative paths in a config (``workdir``, ``pack``, source paths) are from the repository root.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mr3_reward.backends.base import Backend

from training.curriculum import CurriculumConfig, DifficultyConfig, order_rows, score_difficulty
from training.distill import DistillConfig, check_renderable, distill
from training.engines import ModelSpec
from training.filtering import FilterConfig, alignment_filter
from training.intake import IntakeConfig, SourceSpec, intake, source_digest
from training.rows import Renderers, to_dataset, trace_feature
from training.rubrics import RubricConfig, needs_rubric, write_rubrics
from training.sft import SNAPSHOTS, SFTSettings, model_dir_name, train_sft
from training.store import PIPELINE_VERSION, Workdir, digest, file_digest

logger = logging.getLogger("training")

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("intake", "rubrics", "distill", "filter", "difficulty", "curriculum", "sft")


@dataclass
class PipelineConfig:
    """The whole recipe; each YAML section maps to one field (see ``training/configs/*.yaml``).

    workdir (`str`): where stages are kept. pack (`str`, *optional*): an official rubric pack folder,
    needed for target-language prompts. difficulty_model (`ModelSpec`, *optional*): defaults to the teacher.
    """

    workdir: str
    teacher: ModelSpec
    sft: SFTSettings
    data: IntakeConfig = field(default_factory=IntakeConfig)
    pack: str | None = None
    rubrics: RubricConfig = field(default_factory=RubricConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    difficulty_model: ModelSpec | None = None
    difficulty: DifficultyConfig = field(default_factory=DifficultyConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)

    def problems(self) -> list[str]:
        out = self.data.problems() + self.teacher.problems("teacher") + self.rubrics.problems()
        out += self.distill.problems() + self.filter.problems() + self.difficulty.problems()
        out += self.curriculum.problems() + self.sft.problems()
        if self.difficulty_model is not None:
            out += self.difficulty_model.problems("difficulty_model")
        if self.sft.language_mode not in self.distill.strategies:
            out.append(f"sft.language_mode {self.sft.language_mode!r} is not one of distill.strategies "
                       f"{self.distill.strategies}: the student trains on the traces of its own strategy")
        if self.pack is not None and not resolve_path(self.pack).is_dir():
            out.append(f"pack {self.pack!r} is not a folder (relative paths are from {ROOT}); point it at an official "
                       "rubric pack or remove it for English-only data")
        return out


def resolve_path(path: str | Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else ROOT / p


# --------------------------------------------------------------------------------------------------
# Loading configs
# --------------------------------------------------------------------------------------------------
_NESTED = {
    "teacher": ModelSpec, "difficulty_model": ModelSpec, "sft": SFTSettings, "rubrics": RubricConfig,
    "distill": DistillConfig, "filter": FilterConfig, "difficulty": DifficultyConfig,
    "curriculum": CurriculumConfig,
}


def _build(cls: type, data: Any, where: str, problems: list[str]) -> Any:
    if not isinstance(data, Mapping):
        problems.append(f"{where} must be a mapping, got {type(data).__name__}")
        return None
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        problems.append(f"{where}: unknown key(s) {unknown}; known: {', '.join(sorted(known))}")
    try:
        return cls(**{k: v for k, v in data.items() if k in known})
    except TypeError as exc:
        problems.append(f"{where}: {exc}")
        return None


def config_from_dict(raw: Mapping[str, Any]) -> PipelineConfig:
    """Build and validate a `PipelineConfig`; every problem is reported at once."""
    problems: list[str] = []
    raw = dict(raw)
    kwargs: dict[str, Any] = {}
    for key in ("workdir", "teacher", "sft"):
        if key not in raw:
            problems.append(f"missing required section {key!r}")
    for key, value in raw.items():
        if key in _NESTED:
            kwargs[key] = None if value is None and key == "difficulty_model" else _build(_NESTED[key], value, key, problems)
        elif key == "data":
            data = _build(IntakeConfig, value, "data", problems)
            if data is not None:
                data.sources = [_build(SourceSpec, s, f"data.sources[{i}]", problems) for i, s in enumerate(data.sources or [])]
            kwargs[key] = data
        elif key in ("workdir", "pack"):
            kwargs[key] = value
        else:
            problems.append(f"unknown section {key!r}; known: workdir, pack, data, {', '.join(_NESTED)}")
    config = None
    if not problems:
        config = PipelineConfig(**kwargs)
        problems = config.problems()
    if problems:
        raise ValueError(f"{len(problems)} problem(s) in the training config:\n- " + "\n- ".join(problems))
    return config


def _set(raw: dict[str, Any], dotted: str, value: Any) -> None:
    node = raw
    *parents, last = dotted.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> PipelineConfig:
    """Read a YAML config; ``overrides`` are ``"dotted.key=yaml value"`` strings (``sft.epochs=1``)."""
    try:
        import yaml
    except ImportError:
        raise ImportError("training configs need pyyaml: pip install 'mr3-reward[train]'") from None
    with open(path, encoding="utf-8") as f:
        raw = yaml.safe_load(f) or {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} is not key=value (e.g. sft.epochs=1)")
        _set(raw, key.strip(), yaml.safe_load(value))
    return config_from_dict(raw)


# --------------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------------
def _perf_free(cfg: Any) -> dict[str, Any]:
    """A stage config without its shard size (shards are keyed by size separately)."""
    return {k: v for k, v in asdict(cfg).items() if k != "shard_size"}


class Pipeline:
    """Runs a `PipelineConfig`'s stages in a work dir.

    config (`PipelineConfig`): the recipe.
    backends (`dict[str, Backend]`, *optional*): ready engines for ``"teacher"`` / ``"difficulty"``
        instead of building them from the config (tests pass scripted ones; the digests still use the
        config's model specs).
    """

    def __init__(self, config: PipelineConfig, *, backends: Mapping[str, Backend] | None = None) -> None:
        self.config = config
        self.workdir = Workdir(resolve_path(config.workdir))
        self.renderers = Renderers(resolve_path(config.pack) if config.pack else None)
        self._backends: dict[str, Backend] = dict(backends or {})
        self.digests = self._digests()

    @property
    def difficulty_spec(self) -> ModelSpec:
        return self.config.difficulty_model or self.config.teacher

    def _digests(self) -> dict[str, str]:
        c = self.config
        pack = file_digest(resolve_path(c.pack)) if c.pack else None
        sources = [source_digest(s, ROOT) for s in c.data.sources]
        d: dict[str, str] = {}
        d["intake"] = digest("intake", PIPELINE_VERSION, asdict(c.data), sources)
        d["rubrics"] = digest("rubrics", d["intake"], _perf_free(c.rubrics), c.teacher.key())
        d["distill"] = digest("distill", d["rubrics"], _perf_free(c.distill), c.teacher.key(), pack)
        d["filter"] = digest("filter", d["distill"], asdict(c.filter), c.sft.language_mode)
        d["difficulty"] = digest("difficulty", d["filter"], _perf_free(c.difficulty), self.difficulty_spec.key(), pack)
        d["curriculum"] = digest("curriculum", d["difficulty"], asdict(c.curriculum))
        d["sft"] = digest("sft", d["curriculum"], asdict(c.sft), pack)
        return d

    def backend(self, role: str) -> Backend:
        if role not in self._backends:
            spec = self.config.teacher if role == "teacher" else self.difficulty_spec
            if role == "difficulty" and self.config.difficulty_model is None and "teacher" in self._backends:
                self._backends[role] = self._backends["teacher"]
            else:
                logger.info("loading the %s model %s (%s backend)", role, spec.model, spec.backend)
                self._backends[role] = spec.build()
        return self._backends[role]

    def _rows(self, stage: str) -> list[dict[str, Any]]:
        return self.workdir.load(stage).to_list()

    def run(
        self, *, stages: Sequence[str] | None = None, until: str | None = None, force: Sequence[str] = ()
    ) -> dict[str, dict[str, Any]]:
        """Run the stages (all, or ``stages``, or up to ``until``); return each stage's report.

        A stage in ``force`` runs even if finished. Selecting a stage whose inputs are not finished is an
        error that names the stage to run first.
        """
        unknown = [s for s in [*(stages or []), *force, *([until] if until else [])] if s not in STAGES]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; stages: {', '.join(STAGES)}")
        selected = list(stages) if stages else list(STAGES[: STAGES.index(until) + 1] if until else STAGES)
        world = int(os.environ.get("WORLD_SIZE", "1"))
        reports: dict[str, dict[str, Any]] = {}
        for stage in STAGES:
            d = self.digests[stage]
            done = self.workdir.is_done(stage, d)
            if stage not in selected:
                if stage in STAGES[: max(STAGES.index(s) for s in selected)] and not done:
                    raise ValueError(f"stage {stage!r} is not finished (or its settings changed): run it first, "
                                     f"e.g. python -m training.pipeline CONFIG --until {stage}")
                continue
            if done and stage not in force:
                logger.info("%s: finished earlier, skipped", stage)
                reports[stage] = {**self.workdir.report(stage), "skipped": True}
                continue
            if world > 1 and stage != "sft":
                raise ValueError(f"stage {stage!r} must not run under a multi-process launcher (WORLD_SIZE={world}); "
                                 "run the data stages with plain python first (--until curriculum)")
            start = time.monotonic()
            logger.info("%s: running", stage)
            reports[stage] = getattr(self, f"_run_{stage}")(d)
            reports[stage]["seconds"] = round(time.monotonic() - start, 2)
        return reports

    def _commit(self, stage: str, d: str, rows: list[dict[str, Any]], report: dict[str, Any],
                extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        self.workdir.commit(stage, to_dataset(rows, extra), report, d)
        return report

    def _run_intake(self, d: str) -> dict[str, Any]:
        rows, report = intake(self.config.data, ROOT)
        return self._commit("intake", d, rows, report)

    def _run_rubrics(self, d: str) -> dict[str, Any]:
        rows = self._rows("intake")
        c = self.config
        wanted = c.rubrics.enabled and any(needs_rubric(r) for r in rows)
        teacher = self.backend("teacher") if wanted else None
        shard_dir = self.workdir.partial_dir("rubrics", d, c.rubrics.shard_size)
        rows, report = write_rubrics(rows, teacher, c.teacher.make_sampling(), c.rubrics, shard_dir=shard_dir)
        return self._commit("rubrics", d, rows, report)

    def _run_distill(self, d: str) -> dict[str, Any]:
        c = self.config
        rows = self._rows("rubrics")
        check_renderable(rows, c.distill.strategies, self.renderers)  # before loading the teacher
        shard_dir = self.workdir.partial_dir("distill", d, c.distill.shard_size)
        rows, report = distill(rows, self.backend("teacher"), c.teacher.make_sampling(), c.distill, self.renderers,
                               shard_dir=shard_dir)
        return self._commit("distill", d, rows, report, {"traces": trace_feature()})

    def _run_filter(self, d: str) -> dict[str, Any]:
        c = self.config
        rows, report = alignment_filter(self._rows("distill"), c.distill.strategies, c.sft.language_mode, c.filter)
        if report.get("warning"):
            logger.warning("filter: %s", report["warning"])
        return self._commit("filter", d, rows, report, _filtered_features())

    def _run_difficulty(self, d: str) -> dict[str, Any]:
        c = self.config
        rows = self._rows("filter")
        shard_dir = self.workdir.partial_dir("difficulty", d, c.difficulty.shard_size)
        model = self.backend("difficulty") if rows else None
        rows, report = score_difficulty(rows, model, self.difficulty_spec.make_sampling(), c.difficulty,
                                        self.renderers, shard_dir=shard_dir)
        return self._commit("difficulty", d, rows, report, _difficulty_features())

    def _run_curriculum(self, d: str) -> dict[str, Any]:
        from datasets import Value

        rows, report = order_rows(self._rows("difficulty"), self.config.curriculum)
        return self._commit("curriculum", d, rows, report, {**_difficulty_features(), "position": Value("int32")})

    def release_models(self) -> None:
        """Drop the engines this pipeline built (a vLLM teacher holds GPU memory the student needs)."""
        import gc

        for backend in {id(b): b for b in self._backends.values()}.values():
            close = getattr(backend, "close", None)  # a vLLM engine's processes hold memory and cores
            if callable(close):
                close()
        self._backends.clear()
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass

    def _run_sft(self, d: str) -> dict[str, Any]:
        from datasets import Dataset

        self.release_models()
        rows = self._rows("curriculum")
        work_dir = self.workdir.partial_dir("sft", d)
        info = {"pipeline_digest": d, "filter": {k: v for k, v in self.workdir.report("filter").items()
                                                   if k in ("kept", "kept_aligned", "kept_unaligned_smoke_test")}}
        renderers = self.renderers if self.config.sft.use_pack else Renderers(None)
        examples, report, model_dir = train_sft(rows, self.config.sft, renderers, work_dir, info=info)
        extras = {model_dir.name: model_dir}
        if (work_dir / SNAPSHOTS).is_dir():
            extras[SNAPSHOTS] = work_dir / SNAPSHOTS
        if int(os.environ.get("RANK", "0")) == 0:
            self.workdir.commit("sft", Dataset.from_list(examples), report, d, extras=extras)
        return report

    def model_dir(self) -> Path:
        """The trained judge's folder (after the ``sft`` stage)."""
        return self.workdir.stage_dir("sft") / model_dir_name(self.config.sft.language_mode)


def _filtered_features() -> dict[str, Any]:
    from datasets import Value

    return {"traces": trace_feature(), "aligned": Value("bool"), "target": trace_feature(sequence=False)}


def _difficulty_features() -> dict[str, Any]:
    from datasets import Value

    return {**_filtered_features(), "n_correct": Value("int32"), "length": Value("int32")}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="a YAML recipe, e.g. training/configs/tiny-cpu.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value (dotted key, YAML value), e.g. --set sft.epochs=1")
    parser.add_argument("--stages", help="run only these stages (comma-separated); earlier ones must be finished")
    parser.add_argument("--until", choices=STAGES, help="run the stages up to and including this one")
    parser.add_argument("--force", default="", help="re-run these stages (comma-separated) even if finished")
    parser.add_argument("--export", metavar="DIR", help="after SFT, copy the judge to DIR (a model folder that loads "
                        "with no other flag)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config, args.overrides)
        pipeline = Pipeline(config)
        reports = pipeline.run(
            stages=[s for s in (args.stages or "").split(",") if s] or None,
            until=args.until,
            force=[s for s in args.force.split(",") if s],
        )
    except (ValueError, FileNotFoundError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{'stage':<12}{'status':<10}{'rows':>8}{'seconds':>10}")
    for stage, report in reports.items():
        rows = report.get("rows", report.get("kept", report.get("examples", "")))
        print(f"{stage:<12}{'skipped' if report.get('skipped') else 'ran':<10}{rows!s:>8}{report.get('seconds', ''):>10}")
    if "sft" in reports:
        print(f"judge: {pipeline.model_dir()}")
        if args.export:
            print(f"exported to: {export_judge(pipeline.model_dir(), resolve_path(args.export))}")
    return 0


def export_judge(model_dir: Path, dest: Path) -> Path:
    """Copy the trained judge to ``dest`` (replacing an earlier export; files already there, such as an
    evaluation, are kept). Its ``mr3_training.json`` carries the language mode, so it loads with no flag."""
    import shutil

    dest.mkdir(parents=True, exist_ok=True)
    for item in model_dir.iterdir():
        if item.is_file():
            shutil.copy2(item, dest / f".{item.name}.tmp")
            os.replace(dest / f".{item.name}.tmp", dest / item.name)
    return dest


if __name__ == "__main__":
    sys.exit(main())
