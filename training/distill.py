"""Stage 3, distillation: a teacher judges every row under each language strategy, k times.

mR3's strategies (SPEC "Training recipe", step 2), as the package's language modes:

| strategy | template text | reasoning |
|---|---|---|
| ``en-prompt-tgt-thinking`` | English | forced into the row's language |
| ``tgt-prompt-en-thinking`` | the row's language | English |
| ``tgt-prompt-tgt-thinking`` | the row's language | the row's language |

Each row gets one trace per (strategy, sample): the teacher's text, the verdict read by the package's
parser, and whether it matches the gold label. Prompts come from the package's renderer, so a trace's
prompt is byte for byte the prompt the student is later trained on and served with.

The teacher judges through the package's judging loop (`mr3_reward.judging.judge_together`), as any
`Judge` does: one judge per (strategy, template family, sample), all sharing the teacher's engine, so a shard
is still one engine round. Sample ``k`` uses seed ``sampling.seed + k``; a trace is never re-sampled
(``max_retries=0``: a failed trace is data the filter counts) and never cached (the shards are the
checkpoints). What the judge does, the traces do:

- **Merging.** For English rows the strategies collapse (``en-prompt-tgt-thinking`` and
  ``tgt-prompt-tgt-thinking`` render the same bytes): identical seeded requests are generated once and the
  trace is shared, exactly what a seeded engine would have returned twice. Unseeded samples (``seed:
  null``) are independent draws and are never merged across strategies or samples; within one strategy and
  sample, identical rows are judged once, as a `Judge` merges identical requests in a call.
- **Input fitting.** A prompt longer than the teacher's input limit (`Judge.input_limit`) gets
  its responses cut to fit, as at serving time, or fails as ``input_too_long`` without an engine call
  when nothing fits. A cut is not recorded in the trace (``training.rows.TRACE_FIELDS`` has no column for
  it), and SFT pairs such a trace with the uncut prompt (or drops it, when longer than ``max_length``).
- **Budgets.** Distillation is unbudgeted by default: the teacher's full traces are the training data.
  ``teacher.sampling`` may set ``thinking_budget`` and ``verdict`` (`mr3_reward.phases`); they are part of
  the teacher's sampling, and so of the stage's digest. A budgeted shard takes one engine call per phase
  and sample (`mr3_reward.phases.plan` runs each distinct sampling, so each seed, on its own).

Work is checkpointed per shard of rows (`training.store.run_sharded`): a killed run resumes at the next
unfinished shard and never asks the teacher again for a finished one.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mr3_reward.backends.base import Backend
from mr3_reward.judge import Judge
from mr3_reward.judging import judge_together
from mr3_reward.templates import LanguageMode, Renderer
from mr3_reward.types import JudgeRequest, Sampling

from training.rows import Renderers, to_request
from training.store import run_sharded

STRATEGIES = (
    LanguageMode.EN_PROMPT_TGT_THINKING.value,
    LanguageMode.TGT_PROMPT_EN_THINKING.value,
    LanguageMode.TGT_PROMPT_TGT_THINKING.value,
)


@dataclass
class DistillConfig:
    """strategies (`list[str]`): language modes to distill under (default: mR3's three);
    samples (`int`): k traces per row and strategy; shard_size (`int`): rows per checkpoint."""

    strategies: list[str] = field(default_factory=lambda: list(STRATEGIES))
    samples: int = 1
    shard_size: int = 64

    def problems(self) -> list[str]:
        out = []
        if not self.strategies:
            out.append("distill.strategies is empty")
        for s in self.strategies:
            try:
                LanguageMode.parse(s)
            except ValueError as exc:
                out.append(f"distill.strategies: {exc}")
        if len(set(self.strategies)) != len(self.strategies):
            out.append("distill.strategies lists a strategy twice")
        if self.samples < 1:
            out.append(f"distill.samples must be >= 1, got {self.samples}")
        if self.shard_size < 1:
            out.append(f"distill.shard_size must be >= 1, got {self.shard_size}")
        return out


def teacher_judge(teacher: Backend, sampling: Sampling, renderer: Renderer, sample: int) -> Judge:
    """The teacher as a `Judge` for one (language mode, template family, sample): ``renderer``'s settings,
    seed ``sampling.seed + sample``, no retries (a failed trace is data: the filter counts it) and no cache
    (the stage checkpoints its shards itself)."""
    seed = None if sampling.seed is None else sampling.seed + sample
    return Judge(backend=teacher, language_mode=renderer.mode, pack=renderer.pack, family=renderer.family,
                 sampling=sampling.with_(seed=seed), max_retries=0)


def generate_traces(
    rows: Sequence[Mapping[str, Any]],
    model: Backend,
    sampling: Sampling,
    modes: Sequence[str | LanguageMode],
    samples: int,
    renderers: Renderers,
) -> list[list[dict[str, Any]]]:
    """Judge each row under each mode ``samples`` times, in the package's judging loop: one `teacher_judge`
    per (mode, template family, sample), all run by `mr3_reward.judging.judge_together`, so the whole batch
    is one engine round.

    Returns, per row, its traces (``training.rows.TRACE_FIELDS``) ordered by mode, then sample.
    """
    modes = [LanguageMode.parse(m) for m in modes]
    judges: dict[tuple[str, str | None, int], Judge] = {}
    asked: dict[tuple[str, str | None, int], list[JudgeRequest]] = defaultdict(list)
    plan: list[list[tuple[str, int, tuple, int]]] = []  # per row: (mode, sample, judge, index in its requests)
    for row in rows:
        items = []
        for mode in modes:
            renderer = renderers.get(mode, row.get("family"))
            request = to_request(row, mode)
            for k in range(samples):
                group = (mode.value, renderer.family, k)
                if group not in judges:
                    judges[group] = teacher_judge(model, sampling, renderer, k)
                items.append((mode.value, k, group, len(asked[group])))
                asked[group].append(request)
        plan.append(items)
    judged = dict(zip(judges, judge_together([(judges[g], asked[g]) for g in judges])))
    out = []
    for row, items in zip(rows, plan):
        traces = []
        for mode, k, group, i in items:
            j = judged[group][i]
            traces.append({
                "strategy": mode, "sample": k, "score": j.score, "failure": j.failure,
                "correct": j.score is not None and j.score == row["gold"], "explanation": j.explanation,
                "text": j.raw, "prompt_tokens": j.prompt_tokens, "completion_tokens": j.completion_tokens,
            })
        out.append(traces)
    return out


def check_renderable(rows: Sequence[Mapping[str, Any]], modes: Sequence[str], renderers: Renderers) -> None:
    """Fail before any teacher time is spent when some row cannot be rendered under some mode."""
    problems = renderers.check(rows, modes)
    if problems:
        more = f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ValueError(
            f"{len(problems)} row(s) cannot be rendered (set `pack:` to an official rubric pack for target-language "
            "prompts, or drop those languages with data.languages):\n" + "\n".join(problems[:20]) + more
        )


def trace_report(rows: Sequence[Mapping[str, Any]], column: str = "traces") -> dict[str, Any]:
    """Accuracy and failures per strategy and per language, and token totals."""
    by_strategy: dict[str, Counter] = defaultdict(Counter)
    by_language: dict[str, Counter] = defaultdict(Counter)
    tokens = Counter()
    for row in rows:
        for t in row[column]:
            outcome = "correct" if t["correct"] else ("wrong" if t["failure"] is None else t["failure"])
            by_strategy[t["strategy"]][outcome] += 1
            by_language[row["language"]][outcome] += 1
            tokens["prompt"] += t["prompt_tokens"] or 0
            tokens["completion"] += t["completion_tokens"] or 0
    return {
        "by_strategy": {k: dict(v) for k, v in sorted(by_strategy.items())},
        "by_language": {k: dict(v) for k, v in sorted(by_language.items())},
        "tokens": dict(tokens),
    }


def distill(
    rows: list[dict[str, Any]],
    teacher: Backend,
    sampling: Sampling,
    config: DistillConfig,
    renderers: Renderers,
    *,
    shard_dir: Path | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Add a ``traces`` column: the teacher's judgments of each row under every strategy, k samples each.

    Args:
        rows (`list[dict]`): training rows (after the rubric stage).
        teacher (`Backend`): any backend of the package (vLLM, OpenAI-compatible, transformers) or a
            scripted one in tests.
        sampling (`Sampling`): the teacher's decoding; sample ``k`` uses ``seed + k``.
        config (`DistillConfig`): strategies, samples, shard size.
        renderers (`Renderers`): rendering with the run's rubric pack.
        shard_dir (`Path`, *optional*): where finished shards are checkpointed.

    Returns:
        `tuple[list[dict], dict]`: the rows with ``traces`` and a report (accuracy per strategy and
        language, failure types, tokens, engine items, shards reused).

    Raises:
        `ValueError`: some row cannot be rendered under some strategy (before any generation).
    """
    check_renderable(rows, config.strategies, renderers)
    calls = Counter()

    def work(shard: list[dict[str, Any]]) -> list[dict[str, Any]]:
        traces = generate_traces(shard, teacher, sampling, config.strategies, config.samples, renderers)
        calls["rows_generated"] += len(shard)
        return [{"id": row["id"], "traces": t} for row, t in zip(shard, traces)]

    done, stats = run_sharded(rows, config.shard_size, shard_dir, work, label="distill")
    traces_by_id = {d["id"]: d["traces"] for d in done}
    out = [dict(row, traces=traces_by_id[row["id"]]) for row in rows]
    report = {
        "rows": len(out),
        "strategies": list(config.strategies),
        "samples": config.samples,
        "traces": sum(len(r["traces"]) for r in out),
        "rows_generated_this_run": calls["rows_generated"],
        **trace_report(out),
        **stats,
    }
    return out, report
