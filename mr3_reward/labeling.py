"""Off-policy preference labeling: sampled responses -> ``prompt, chosen, rejected`` pairs for TRL's DPOTrainer.

    mr3 label samples.jsonl pairs/ --strategy best-worst --model rubricreward/mR3-Qwen3-4B-en-prompt-en-thinking

Sample several responses per prompt with any policy, let the judge rank them, keep the best and the worst as
``chosen`` / ``rejected`` (the usual recipe: e.g. 4 samples per prompt, the highest- and lowest-rewarded).

| strategy     | judgments for a row of n responses                          | chosen / rejected                       |
|--------------|-------------------------------------------------------------|-----------------------------------------|
| `best-worst` | n pointwise scores (1-5, or the row's numeric rubric)       | highest / lowest normalized score       |
| `tournament` | n(n-1): round robin, both orders (up to n = 6); beyond, or  | highest / lowest win rate (a tie or a   |
|              | with `opponents=k`, each meets the next k: 2nk (k = 3)      | disagreement counts 1/2)                |
| `pair`       | 2: the given pair in both orders                            | the winner, when both orders agree      |

Every row gets ``scores`` in [0, 1] (the normalized pointwise score, the win rate, or the pair preference) and
``margin = scores[chosen] - scores[rejected]``. Ties are broken by response index (the lowest index wins). A row
is *dropped*, with a typed reason, when the judge could not separate its responses:

- ``judge_failed``: fewer than two responses got a score (``pair``: an order could not be judged);
- ``tie``: the best and the worst score are equal (``pair``: both orders say tie);
- ``low_margin``: the margin is below ``min_margin``;
- ``inconsistent`` (``pair``): the two orders disagree. ``keep_ties=True`` keeps ties and disagreements as
  rows marked ``tie=True`` instead.

The job is resumable and loss-free. Rows are processed in shards of ``shard_size`` rows by row index; each
finished shard is written atomically (temp file + ``os.replace``) to ``<output>.work/shard-NNNNN.jsonl``, next to
a manifest holding the job's configuration hash. Started again with the same command after a crash (SIGKILL
included), the job skips the finished shards, labels the rest and assembles the outputs: the bytes equal those
of an uninterrupted run. The judge's result cache answers what the lost shard had already judged, so a re-run
costs no engine calls. A different configuration refuses to resume (``overwrite=True`` / ``--overwrite``
starts over). With ``ray=True`` the same shards are labeled by a Ray Data ``map_batches`` over an actor pool of
judges; shard files, outputs and bytes are the same as a local run's.

Outputs: ``output`` is an HF dataset (``save_to_disk``) of the kept pairs, with the job's metadata (judge model,
template, language mode, sampling, labeling config, summary) in ``output/mr3_label.json``; JSONL and Parquet
copies and a JSONL of the dropped rows on request. Columns, in order:

| column | what |
|---|---|
| `prompt`, `chosen`, `rejected` | DPOTrainer's columns; conversational (message lists) when the input prompt is |
| `id`, `row`, `language` | the input id (or None), the 0-based input row, the language code |
| `strategy`, `chosen_index`, `rejected_index` | how the pair was picked, and from which responses |
| `scores`, `margin` | one score in [0, 1] per response (None: not scored); the chosen-rejected margin |
| `tie` | True for an undecided pair kept by ``keep_ties`` (strategy ``pair``) |
| `consistency` | share of this row's comparisons whose two orders agreed (None: none judged in both orders) |
| `comparisons` | pairwise strategies: ``{a, b, p_a, consistent, forward, backward}`` with the per-order verdicts |
| `judgments` | every judgment made: ``{responses, score, failure, explanation}``, ``responses`` in the order shown |
| `judge_model` | the judge's model id |

Dropped rows (``dropped=...``) carry the same columns plus ``reason``, with ``chosen`` / ``rejected`` None.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mr3_reward.backends.base import Backend, Generation, GenerationRequest
from mr3_reward.debias import ON_DISAGREE, combine, consistency, pair_schedule, swapped
from mr3_reward.judge import DEFAULT_MODEL, Judge
from mr3_reward.records import MAX_REPORTED, PROMPT_COLUMNS, InputError, iter_jsonl
from mr3_reward.reward import COLUMNS, numeric_scale, rubric_problem, stable_prompt_id, text_of_completion, text_of_prompt
from mr3_reward.types import JudgeRequest, Judgment, Rubric, TaskKind

__all__ = ["LabelConfig", "LabelResult", "LabelRow", "STRATEGIES", "add_label_arguments", "cmd_label", "label",
           "label_rows", "main", "print_summary", "read_rows"]

STRATEGIES = ("best-worst", "tournament", "pair")
DROP_REASONS = ("judge_failed", "tie", "low_margin", "inconsistent")
# Pairwise strategies may judge on the 2-way pairwise scale or the 1-7 preference-strength scale.
PAIR_TASKS = (TaskKind.PAIRWISE, TaskKind.PREFERENCE_STRENGTH)
# Round robin costs n(n-1) judgments (both orders): 30 at n = 6; beyond that each response meets a few others.
ROUND_ROBIN_MAX = 6
DEFAULT_OPPONENTS = 3
# Two response columns looked for, in this order, when the input has no list column of responses.
PAIR_COLUMN_DEFAULTS = (("response_a", "response_b"), ("response_1", "response_2"))
META_FILE = "mr3_label.json"
# Bump when the shard or output layout changes: a work folder of another format is not resumed.
FORMAT_VERSION = 1
_OPTIONAL_ROLES = ("id", "language", "rubric", "reference", "task_description")


# --------------------------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class LabelConfig:
    """How rows become pairs. Everything here except ``chunk`` changes the output, so it is in the job's hash.

    strategy (`str`): ``"best-worst"`` (default), ``"tournament"`` or ``"pair"``; see the module docstring.
    task (`str`, *optional*): the judge task of the pairwise strategies: ``"pairwise"`` (default) or
        ``"preference_strength"`` (1-7); ``best-worst`` always scores pointwise.
    min_margin (`float`): drop pairs whose score margin (in [0, 1]) is below this; ties (margin 0) always drop.
    opponents (`int`, *optional*): tournament: compare each response with the next k (cyclically) instead of
        all others; default round robin up to 6 responses, 3 opponents beyond.
    on_disagree (`str`): tournament: ``"tie"`` (default), ``"mean"`` or ``"first"`` when the two orders disagree.
    keep_ties (`bool`): pair: keep ties and disagreements as rows marked ``tie=True`` instead of dropping them.
    prompt_column (`str`, *optional*): default: the first of ``prompt``, ``input``, ``question`` present.
    responses_column (`str`, *optional*): a column holding a list of responses (default ``responses``).
    response_columns (`tuple[str, ...]`, *optional*): or one response per column, e.g. ``("chosen", "rejected")``;
        default ``response_a``/``response_b`` or ``response_1``/``response_2`` when there is no list column.
    columns (`dict`, *optional*): read an optional input from another column, e.g. ``{"language": "lang"}``;
        roles: ``id``, ``language``, ``rubric``, ``reference``, ``task_description``.
    language (`str`): the language code of rows without one.
    split (`str`): the split to read from an HF dataset.
    shard_size (`int`): rows per checkpointed shard.
    chunk (`int`): judge requests per judge call (the result cache is written after each call).
    """

    strategy: str = "best-worst"
    task: str | None = None
    min_margin: float = 0.0
    opponents: int | None = None
    on_disagree: str = "tie"
    keep_ties: bool = False
    prompt_column: str | None = None
    responses_column: str | None = None
    response_columns: tuple[str, ...] | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    language: str = "en"
    split: str = "train"
    shard_size: int = 32
    chunk: int = 64

    def __post_init__(self) -> None:
        if self.response_columns is not None and not isinstance(self.response_columns, tuple):
            object.__setattr__(self, "response_columns", tuple(self.response_columns))
        object.__setattr__(self, "columns", dict(self.columns or {}))
        problems = []
        if self.strategy not in STRATEGIES:
            problems.append(f"unknown strategy {self.strategy!r}; use one of: {', '.join(STRATEGIES)}")
        elif self.task is not None:
            try:
                task = TaskKind.parse(self.task)
            except ValueError as e:
                problems.append(str(e))
            else:
                allowed = (TaskKind.POINTWISE,) if self.strategy == "best-worst" else PAIR_TASKS
                if task not in allowed:
                    problems.append(f"strategy {self.strategy!r} judges with task "
                                    f"{' or '.join(t.value for t in allowed)}; got task={task.value!r}")
        if not isinstance(self.min_margin, (int, float)) or not 0 <= self.min_margin <= 1:
            problems.append(f"min_margin is a score difference in [0, 1], got {self.min_margin!r}")
        if self.opponents is not None:
            if self.strategy != "tournament":
                problems.append("opponents sets the tournament schedule; it needs strategy='tournament'")
            elif not isinstance(self.opponents, int) or self.opponents < 1:
                problems.append(f"opponents must be a positive int, got {self.opponents!r}")
        if self.on_disagree not in ON_DISAGREE:
            problems.append(f"on_disagree must be one of {ON_DISAGREE}, got {self.on_disagree!r}")
        if self.keep_ties and self.strategy != "pair":
            problems.append("keep_ties marks undecided pairs of strategy='pair'; the other strategies drop ties")
        if self.responses_column is not None and self.response_columns is not None:
            problems.append("give responses_column (a list column) or response_columns (one column per response), "
                            "not both")
        if self.response_columns is not None and len(self.response_columns) < 2:
            problems.append(f"response_columns needs two or more columns, got {list(self.response_columns)}")
        unknown = sorted(set(self.columns) - set(_OPTIONAL_ROLES))
        if unknown:
            problems.append(f"unknown column role(s) {unknown} in columns=; known: {', '.join(_OPTIONAL_ROLES)}")
        if not isinstance(self.language, str) or not self.language.strip():
            problems.append(f"language must be a language code such as 'en', got {self.language!r}")
        for name in ("shard_size", "chunk"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{name} must be a positive int, got {value!r}")
        if problems:
            raise ValueError("invalid LabelConfig: " + "; ".join(problems))

    @property
    def task_kind(self) -> TaskKind:
        if self.strategy == "best-worst":
            return TaskKind.POINTWISE
        return TaskKind.parse(self.task) if self.task is not None else TaskKind.PAIRWISE

    def column(self, role: str) -> str:
        return self.columns.get(role, COLUMNS.get(role, role))

    def key(self) -> dict[str, Any]:
        """What changes the output: everything but ``chunk`` (how requests are grouped into judge calls)."""
        record = dataclasses.asdict(self)
        record.pop("chunk")
        record["task"] = self.task_kind.value
        record["response_columns"] = list(self.response_columns) if self.response_columns else None
        record["columns"] = dict(sorted(self.columns.items()))
        return record


# ------------------------------------------------------------------------------------------------------ input
@dataclass(frozen=True)
class LabelRow:
    """One input row, validated: a prompt (text or chat messages) and two or more responses.

    index (`int`): the 0-based position in the input; where (`str`): where to point an error (``file:line``).
    """

    index: int
    where: str
    prompt: Any
    responses: tuple[Any, ...]
    id: str | None = None
    language: str = "en"
    rubric: tuple[tuple[str, str], ...] | None = None
    reference: str | None = None
    task_description: str | None = None

    @property
    def prompt_text(self) -> str:
        return text_of_prompt(self.prompt)

    def response_text(self, i: int) -> str:
        return text_of_completion(self.responses[i]) or ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> LabelRow:
        rubric = record.get("rubric")
        return cls(**{**record, "responses": tuple(record["responses"]),
                      "rubric": tuple(tuple(e) for e in rubric) if rubric is not None else None})


def _is_messages(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(m, Mapping) and "content" in m for m in value)


def _iter_source(source: str | Path, split: str) -> Iterator[tuple[str, Any]]:
    """(where, row) for each row of a JSONL/Parquet file, a saved HF dataset folder or a hub dataset id."""
    path = Path(source)
    if path.is_file():
        if path.suffix in (".jsonl", ".json", ".ndjson"):
            for n, row in iter_jsonl(path):
                yield f"{path}:{n}", row
            return
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            for i, row in enumerate(pq.read_table(path).to_pylist()):
                yield f"{path} row {i}", row
            return
        raise InputError(f"input {str(path)!r}: unknown file type {path.suffix!r}; use .jsonl or .parquet, "
                         "a saved HF dataset folder or a hub dataset id")
    if not path.exists() and path.suffix in (".jsonl", ".json", ".ndjson", ".parquet"):
        raise InputError(f"input file {str(path)!r} does not exist")
    dataset = _load_dataset(source, path, split)
    for i, row in enumerate(dataset):
        yield f"{source} row {i}", row


def _load_dataset(source: str | Path, path: Path, split: str) -> Any:
    try:
        import datasets
    except ImportError as e:
        raise ImportError("reading an HF dataset needs the datasets package: pip install 'mr3-reward[train]'") from e
    if path.is_dir() and any((path / f).is_file() for f in ("state.json", "dataset_dict.json")):
        loaded = datasets.load_from_disk(str(path))
    else:
        try:
            loaded = datasets.load_dataset(str(source), split=split)
        except Exception as e:  # the hub, an offline machine or a bad folder: say which input and why
            raise InputError(f"could not load the dataset {str(source)!r} (split {split!r}): {type(e).__name__}: {e}. "
                             "Give a .jsonl/.parquet file, a folder written by save_to_disk, or a hub id that is in "
                             "the local cache (HF_HUB_OFFLINE=1 forbids downloads)") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise InputError(f"dataset {str(source)!r} has no split {split!r}; pass --split with one of: "
                             f"{', '.join(loaded)}")
        loaded = loaded[split]
    return loaded


def _response_columns(keys: set[str], config: LabelConfig) -> tuple[str | None, tuple[str, ...]]:
    """(list column, separate columns): where the responses are, decided once for the whole input."""
    if config.responses_column is not None:
        return config.responses_column, ()
    if config.response_columns is not None:
        return None, config.response_columns
    if "responses" in keys:
        return "responses", ()
    for pair in PAIR_COLUMN_DEFAULTS:
        if set(pair) <= keys:
            return None, pair
    raise InputError("no responses found: add a 'responses' column (a list of 2 or more responses) or two columns "
                     "'response_a'/'response_b'; or name yours with --responses-column COL (a list column) or "
                     f"--response-columns A B [C ...]; columns present: {', '.join(sorted(keys)) or 'none'}")


def _row(index: int, where: str, raw: Any, config: LabelConfig, prompt_col: str, list_col: str | None,
         separate: tuple[str, ...]) -> LabelRow:
    """One raw row -> a `LabelRow`; raises ValueError naming the column and the fix."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"each row must be an object with named columns, got {type(raw).__name__}")
    problems = []
    prompt = raw.get(prompt_col)
    if prompt_col not in raw:
        problems.append(f"missing column {prompt_col!r} (the prompt); name another with --prompt-column")
    elif isinstance(prompt, str) or _is_messages(prompt):
        if not text_of_prompt(prompt).strip():
            problems.append(f"{prompt_col!r} is empty; every row needs a non-empty prompt")
    else:
        problems.append(f"{prompt_col!r} must be text or a list of chat messages, got {type(prompt).__name__}")
    if list_col is not None:
        if list_col not in raw:
            problems.append(f"missing column {list_col!r} (the responses); name another with --responses-column")
            responses = None
        else:
            responses = raw[list_col]
            if not isinstance(responses, (list, tuple)):
                problems.append(f"{list_col!r} must be a list of responses, got {type(responses).__name__}")
                responses = None
    else:
        absent = [c for c in separate if c not in raw]
        if absent:
            problems.append(f"missing column(s) {', '.join(map(repr, absent))} (responses); "
                            "name yours with --response-columns")
        responses = [raw.get(c) for c in separate]
    if responses is not None:
        responses = list(responses)
        for i, r in enumerate(responses):
            if not (isinstance(r, str) or _is_messages(r)):
                problems.append(f"response {i + 1} must be text or a list of chat messages, got {type(r).__name__}")
        if len(responses) < 2:
            problems.append(f"{len(responses)} response(s); a row needs at least 2 (a chosen and a rejected)")
        elif config.strategy == "pair" and len(responses) != 2:
            problems.append(f"the pair strategy takes exactly 2 responses, got {len(responses)}; use "
                            "--strategy best-worst or tournament for more")
    values: dict[str, Any] = {}
    for role in _OPTIONAL_ROLES:
        col = config.column(role)
        value = raw.get(col)
        if value is None:
            if role in config.columns and col not in raw:
                problems.append(f"missing column {col!r} (mapped to {role!r} with --column {role}={col})")
            continue
        if role == "id" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # HF datasets often number their rows
        if role == "rubric":
            try:
                rubric = Rubric.coerce(value)
            except (TypeError, ValueError) as e:
                problems.append(f"column {col!r}: {e}")
                continue
            mode = {TaskKind.POINTWISE: "pointwise", TaskKind.PAIRWISE: "group"}.get(config.task_kind, "strength")
            problem = rubric_problem(rubric, mode)
            if problem:
                problems.append(f"column {col!r}: {problem}")
            value = rubric.entries
        elif not isinstance(value, str):
            problems.append(f"{col!r} must be text, got {type(value).__name__}")
            continue
        values[role] = value
    if problems:
        raise ValueError("; ".join(problems))
    return LabelRow(index=index, where=where, prompt=prompt, responses=tuple(responses),
                    language=values.pop("language", None) or config.language, **values)


def read_rows(source: str | Path, config: LabelConfig | None = None) -> list[LabelRow]:
    """Read and validate every row of ``source``, reporting every bad row at once (``file:line: problem``).

    source (`str | Path`): a ``.jsonl`` / ``.parquet`` file, a folder written by ``save_to_disk`` (or of data
        files), or a hub dataset id (read with ``datasets.load_dataset``; offline, only from the local cache).
    config (`LabelConfig`, *optional*): column names, split and strategy (``pair`` needs exactly 2 responses).
    """
    config = config or LabelConfig()
    raw_rows = list(_iter_source(source, config.split))
    if not raw_rows:
        raise InputError(f"input {str(source)!r} is empty: it needs one row per prompt")
    keys = set().union(*(r.keys() for _, r in raw_rows if isinstance(r, Mapping)))
    prompt_col = config.prompt_column or next((c for c in PROMPT_COLUMNS if c in keys), PROMPT_COLUMNS[0])
    list_col, separate = _response_columns(keys, config)
    rows, problems = [], []
    for i, (where, raw) in enumerate(raw_rows):
        try:
            rows.append(_row(i, where, raw, config, prompt_col, list_col, separate))
        except ValueError as e:
            problems.append(f"{where}: {e}")
    if not problems and len({isinstance(r.prompt, str) for r in rows}) > 1:
        problems.append(f"{str(source)!r}: {prompt_col!r} mixes text and chat messages; use one form for all rows "
                        "(the output's prompt/chosen/rejected follow it)")
    if problems:
        more = f"\n... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
        raise InputError(f"{len(problems)} bad row(s) in the input:\n" + "\n".join(problems[:MAX_REPORTED]) + more)
    return rows


# ------------------------------------------------------------------------------------------------ strategies
@dataclass
class _Plan:
    """The judge requests one row needs, and how to turn their judgments into the row's record."""

    requests: list[JudgeRequest]
    finish: Callable[[list[Judgment]], dict[str, Any]]


def _request(row: LabelRow, task: TaskKind, responses: tuple[str, ...]) -> JudgeRequest:
    return JudgeRequest(
        task=task, prompt=row.prompt_text, responses=responses, rubric=row.rubric,
        task_description=row.task_description, language=row.language, reference=row.reference,
        # One id per row: every request of the row sees the same rubric variant.
        id=row.id if row.id is not None else stable_prompt_id(row.prompt_text),
    )


def _judgment_record(shown: list[int], j: Judgment) -> dict[str, Any]:
    return {"responses": shown, "score": j.score, "failure": j.failure, "explanation": j.explanation}


def _pick(scores: list[float | None], min_margin: float) -> tuple[int | None, int | None, float | None, str | None]:
    """(chosen, rejected, margin, drop reason) from per-response scores; the lowest index wins a tie."""
    scored = [i for i, s in enumerate(scores) if s is not None]
    if len(scored) < 2:
        return None, None, None, "judge_failed"
    chosen = max(scored, key=lambda i: (scores[i], -i))
    rejected = min((i for i in scored if i != chosen), key=lambda i: (scores[i], i))
    margin = scores[chosen] - scores[rejected]
    if margin <= 1e-12:
        return chosen, rejected, 0.0, "tie"
    if margin < min_margin:
        return chosen, rejected, margin, "low_margin"
    return chosen, rejected, margin, None


def _plan_best_worst(row: LabelRow, config: LabelConfig) -> _Plan:
    from mr3_reward.templates import DEFAULT_LABELS

    lo, hi = numeric_scale(Rubric(row.rubric).labels if row.rubric else DEFAULT_LABELS[TaskKind.POINTWISE])
    # An empty response gets the lowest score without a judgment, as in MR3Reward.
    judged = [i for i in range(len(row.responses)) if row.response_text(i).strip()]
    requests = [_request(row, TaskKind.POINTWISE, (row.response_text(i),)) for i in judged]

    def finish(judgments: list[Judgment]) -> dict[str, Any]:
        scores: list[float | None] = [0.0] * len(row.responses)
        for i, j in zip(judged, judgments):
            scores[i] = (float(j.score) - lo) / (hi - lo) if j.ok else None
        chosen, rejected, margin, reason = _pick(scores, config.min_margin)
        return _record(row, config, chosen, rejected, scores, margin, reason, [],
                       [_judgment_record([i], j) for i, j in zip(judged, judgments)])

    return _Plan(requests, finish)


def _decided_without_judge(a: str, b: str) -> float | None:
    """Preference for ``a`` when no judgment is needed: identical texts tie, an empty text loses."""
    if a == b or (not a.strip() and not b.strip()):
        return 0.5
    if not b.strip():
        return 1.0
    if not a.strip():
        return 0.0
    return None


def _plan_pairs(row: LabelRow, config: LabelConfig, pairs: list[tuple[int, int]]) -> tuple[list[JudgeRequest], list]:
    """Both orders of every pair that needs the judge; ``todo`` lists (a, b, trivial preference or None)."""
    task = config.task_kind
    todo, forward = [], []
    for a, b in pairs:
        p = _decided_without_judge(row.response_text(a), row.response_text(b))
        todo.append((a, b, p))
        if p is None:
            forward.append(_request(row, task, (row.response_text(a), row.response_text(b))))
    return forward + [swapped(r) for r in forward], todo


def _comparisons(row: LabelRow, config: LabelConfig, todo: list, judgments: list[Judgment]) -> tuple[list, list, list]:
    """(comparison records, PairVerdicts, judgment records) for the planned pairs, in schedule order."""
    half = len(judgments) // 2
    fwd, bwd = iter(judgments[:half]), iter(judgments[half:])
    records, verdicts, made = [], [], []
    for a, b, p in todo:
        if p is not None:
            records.append({"a": a, "b": b, "p_a": p, "consistent": None, "forward": None, "backward": None})
            continue
        f, g = next(fwd), next(bwd)
        v = combine(f, g, config.task_kind, on_disagree=config.on_disagree)
        verdicts.append(v)
        records.append({"a": a, "b": b, "p_a": v.p_first, "consistent": v.consistent,
                        "forward": f.score, "backward": g.score})
        made += [_judgment_record([a, b], f), _judgment_record([b, a], g)]
    return records, verdicts, made


def _plan_tournament(row: LabelRow, config: LabelConfig) -> _Plan:
    n = len(row.responses)
    opponents = config.opponents if config.opponents is not None else (None if n <= ROUND_ROBIN_MAX else DEFAULT_OPPONENTS)
    requests, todo = _plan_pairs(row, config, pair_schedule(list(range(n)), opponents))

    def finish(judgments: list[Judgment]) -> dict[str, Any]:
        records, verdicts, made = _comparisons(row, config, todo, judgments)
        won: dict[int, list[float]] = {i: [] for i in range(n)}
        for c in records:
            if c["p_a"] is not None:
                won[c["a"]].append(c["p_a"])
                won[c["b"]].append(1.0 - c["p_a"])
        scores = [sum(w) / len(w) if w else None for w in won.values()]
        chosen, rejected, margin, reason = _pick(scores, config.min_margin)
        return _record(row, config, chosen, rejected, scores, margin, reason, records, made,
                       consistency=consistency(verdicts))

    return _Plan(requests, finish)


def _plan_pair(row: LabelRow, config: LabelConfig) -> _Plan:
    requests, todo = _plan_pairs(row, config, [(0, 1)])

    def finish(judgments: list[Judgment]) -> dict[str, Any]:
        records, verdicts, made = _comparisons(row, config, todo, judgments)
        [c] = records
        p, decided = c["p_a"], not verdicts  # decided: no judgment was needed (identical or empty response)
        scores = [p, None if p is None else 1.0 - p]
        if p is None or (not decided and c["consistent"] is None):
            reason = "judge_failed"  # consistency can only be checked when both orders were judged
        elif not decided and not c["consistent"]:
            reason = "inconsistent"
        elif abs(p - 0.5) < 1e-12:
            reason = "tie"
        else:
            reason = None
        if reason in ("inconsistent", "tie") and config.keep_ties:
            return _record(row, config, 0, 1, scores, 0.0, None, records, made, tie=True,
                           consistency=consistency(verdicts))
        chosen, rejected, margin = None, None, None
        if p is not None:
            chosen, rejected = (0, 1) if p >= 0.5 else (1, 0)
            margin = abs(2 * p - 1)
            if reason is None and margin < config.min_margin:
                reason = "low_margin"
        return _record(row, config, chosen, rejected, scores, margin, reason, records, made,
                       consistency=consistency(verdicts))

    return _Plan(requests, finish)


_PLANNERS = {"best-worst": _plan_best_worst, "tournament": _plan_tournament, "pair": _plan_pair}


def _as_output(row: LabelRow, i: int | None) -> Any:
    """A response in the output's form: conversational when the prompt is, text otherwise."""
    if i is None:
        return None
    response = row.responses[i]
    if isinstance(row.prompt, str):
        return row.response_text(i)
    return response if _is_messages(response) else [{"role": "assistant", "content": response}]


def _record(row: LabelRow, config: LabelConfig, chosen: int | None, rejected: int | None,
            scores: list[float | None], margin: float | None, reason: str | None, comparisons: list,
            judgments: list, *, tie: bool = False, consistency: float | None = None) -> dict[str, Any]:
    """The output record of one row; the key order is the output's column order."""
    kept = reason is None
    return {
        "prompt": row.prompt,
        "chosen": _as_output(row, chosen) if kept else None,
        "rejected": _as_output(row, rejected) if kept else None,
        "id": row.id,
        "row": row.index,
        "language": row.language,
        "strategy": config.strategy,
        "chosen_index": chosen,
        "rejected_index": rejected,
        "scores": [None if s is None else float(s) for s in scores],
        "margin": None if margin is None else float(margin),
        "tie": tie,
        "consistency": consistency,
        "comparisons": comparisons,
        "judgments": judgments,
        "reason": reason,
    }


def label_rows(
    judge: Judge,
    rows: Sequence[LabelRow],
    config: LabelConfig | None = None,
    *,
    progress: Callable[[int], None] | None = None,
    stats: dict[str, int] | None = None,
) -> list[dict[str, Any]]:
    """Label rows in memory: one record per row (kept or dropped, see ``reason``), in order. No files, no resume.

    All the rows' requests go to the judge together, ``config.chunk`` per call, so the engine batches across
    rows. ``stats`` (a dict) accumulates the judge's ``last_stats`` (requests, cache hits, engine items).

    >>> from mr3_reward.backends.fake import FakeBackend
    >>> judge = Judge(backend=FakeBackend(lambda p, s: '</think>{"score": "%s"}' % ("5" if "Paris" in p.user else "2")))
    >>> [r] = label_rows(judge, [LabelRow(0, "example", "Capital of France?", ("Rome", "Paris", "Lyon"))])
    >>> r["chosen"], r["rejected"], r["scores"], r["margin"]
    ('Paris', 'Rome', [0.25, 1.0, 0.25], 0.75)
    """
    config = config or LabelConfig()
    plans = [_PLANNERS[config.strategy](row, config) for row in rows]
    requests = [r for plan in plans for r in plan.requests]
    judgments: list[Judgment] = []
    for lo in range(0, len(requests), config.chunk):
        judgments += judge.judge(requests[lo:lo + config.chunk], progress=progress)
        if stats is not None:
            for key, value in judge.last_stats.items():
                stats[key] = stats.get(key, 0) + value
    records, k = [], 0
    for plan in plans:
        records.append(plan.finish(judgments[k:k + len(plan.requests)]))
        k += len(plan.requests)
    return records


# ------------------------------------------------------------------------------------------- files and shards
def _dumps(record: Any) -> str:
    return json.dumps(record, ensure_ascii=False, allow_nan=False)


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def _write_atomic(path: Path, text: str) -> None:
    """Readers (and a resumed job) see the old file or the whole new one, never a part: temp file + rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _remove_tree(path: Path) -> None:
    """Rename first, then delete: a kill mid-delete leaves a trash folder, never a half-deleted folder in place."""
    if not path.exists():
        return
    trash = path.with_name(f".{path.name}.trash-{os.getpid()}")
    os.replace(path, trash)
    shutil.rmtree(trash) if trash.is_dir() else trash.unlink()


def _clear_leftovers(*targets: Path) -> None:
    """Delete the temp files and trash folders a killed run left next to ``targets`` (only names we make)."""
    for target in targets:
        if not target.parent.is_dir():
            continue
        for p in target.parent.glob(f".{target.name}.*-*"):
            if p.name.rsplit("-", 1)[0] in (f".{target.name}.tmp", f".{target.name}.trash"):
                shutil.rmtree(p) if p.is_dir() else p.unlink()


class _Job:
    """The files of one labeling job: ``<output>.work/`` (manifest + shards) and the final outputs."""

    def __init__(self, output: Path, extra: dict[str, Path | None]) -> None:
        self.output = output
        self.extra = {k: v for k, v in extra.items() if v is not None}
        self.work = output.with_name(output.name + ".work")
        self.manifest_path = self.work / "manifest.json"

    def shard_path(self, k: int) -> Path:
        return self.work / f"shard-{k + 1:05d}.jsonl"

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


# ---------------------------------------------------------------------------------------------------- the job
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


class _EngineOnActors:
    """The engine's stand-in on the driver of a Ray job: the driver renders prompts and keys the job, the
    actors load the real engine and generate."""

    def __init__(self, model_id: str, revision: str | None) -> None:
        self.model_id = model_id
        self.revision = revision

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        raise RuntimeError("the driver of a Ray labeling job does not generate; its actors do")


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
    """Label ``source`` into a preference dataset at ``output``; resumable (see the module docstring).

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
    config_fields = {f.name for f in dataclasses.fields(LabelConfig)}
    config_options = {k: v for k, v in options.items() if k in config_fields}
    judge_options = {k: v for k, v in options.items() if k not in config_fields}
    if config is not None and config_options:
        raise ValueError(f"give config=LabelConfig(...) or its fields as keywords, not both: {sorted(config_options)}")
    config = config or LabelConfig(**config_options)
    if judge is not None and judge_options:
        raise ValueError(f"judge=... already carries its engine and settings; drop {', '.join(sorted(judge_options))} "
                         "or build the Judge with them")
    if not isinstance(ray_actors, int) or ray_actors < 1:
        raise ValueError(f"ray_actors must be a positive int, got {ray_actors!r}")

    rows = read_rows(source, config)
    judge_args = dict(model=model, backend=backend, cache=cache, **judge_options)
    if judge is not None:
        factory: Judge | Callable[[], Judge] = judge
        driver_judge = judge
    elif ray and isinstance(backend, str):
        factory = functools.partial(Judge, **judge_args)
        revision = (judge_options.get("backend_options") or {}).get("revision")
        driver_judge = Judge(**{**judge_args, "backend": _EngineOnActors(model, revision), "cache": None})
    else:
        driver_judge = Judge(**judge_args)
        factory = driver_judge

    plans = _preflight(driver_judge, rows, config)
    judge_key = driver_judge.config_key()
    key = {"format": FORMAT_VERSION, "config": config.key(), "judge": judge_key,
           "input": {"rows": len(rows), "fingerprint": _digest([dataclasses.replace(r, where="").to_dict() for r in rows])}}
    job_hash = _digest(key)
    output = Path(output)
    job = _Job(output, {"jsonl": Path(jsonl) if jsonl else None, "parquet": Path(parquet) if parquet else None,
                        "dropped": Path(dropped) if dropped else None})
    shards = [rows[lo:lo + config.shard_size] for lo in range(0, len(rows), config.shard_size)]
    stats: dict[str, Any] = {"shards": len(shards), "shards_resumed": 0, "shards_labeled": 0, "requests": 0,
                             "cache_hits": 0, "duplicates": 0, "engine_items": 0}

    done = _prepare(job, job_hash, key, overwrite)
    if done is not None:
        return LabelResult(output, done["summary"], {**stats, "shards_resumed": len(shards), "seconds": 0.0})
    pending = [k for k, shard in enumerate(shards) if not job.shard_done(k, len(shard))]
    stats["shards_resumed"] = len(shards) - len(pending)
    # Locally the bar counts judgments (the judge reports each); Ray actors report whole shards.
    total = len(pending) if ray else sum(len(plans[r.index].requests) for k in pending for r in shards[k])
    with _ProgressBar(progress, total, ray) as advance:
        if ray:
            _run_on_ray(factory, config, shards, pending, job, stats, advance,
                        address=ray_address, actors=ray_actors, cpus=ray_cpus_per_actor, gpus=ray_gpus_per_actor)
        else:
            for k in pending:
                records = label_rows(factory, shards[k], config, progress=advance, stats=stats)
                _write_atomic(job.shard_path(k), "".join(_dumps(r) + "\n" for r in records))
                stats["shards_labeled"] += 1
    records = [json.loads(line) for k in range(len(shards))
               for line in job.shard_path(k).read_text(encoding="utf-8").splitlines()]
    summary = _summary(records)
    meta = {**key, "judge_model": judge_key["model"], "config_hash": job_hash, "summary": summary}
    _assemble(job, records, meta)
    stats["seconds"] = time.perf_counter() - start
    return LabelResult(output, summary, stats)


def _preflight(judge: Judge, rows: Sequence[LabelRow], config: LabelConfig) -> list[_Plan]:
    """Plan every row and render its first request, so template problems (a language the template cannot
    render, a rubric the task cannot use) surface with their row before any generation."""
    plans, problems = [], []
    for row in rows:
        plan = _PLANNERS[config.strategy](row, config)
        plans.append(plan)
        if plan.requests:
            try:
                judge.render(plan.requests[0])
            except (ValueError, KeyError) as e:
                problems.append(f"{row.where}: {e.args[0] if isinstance(e, KeyError) and e.args else e}")
    if problems:
        more = f"\n... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
        raise InputError(f"{len(problems)} row(s) cannot be rendered for the judge:\n"
                         + "\n".join(problems[:MAX_REPORTED]) + more)
    return plans


def _prepare(job: _Job, job_hash: str, key: dict, overwrite: bool) -> dict | None:
    """Resume, start or refuse; returns the finished job's metadata when there is nothing left to do."""
    for path in (job.output, *job.extra.values()):
        path.parent.mkdir(parents=True, exist_ok=True)
    _clear_leftovers(job.output, job.work, *job.extra.values())
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
        _remove_tree(job.work)  # killed while cleaning up: the outputs are final
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
            _remove_tree(job.work)  # no manifest: killed before the job had started
        job.work.mkdir(parents=True)
        _write_atomic(job.manifest_path, _dumps({"config_hash": job_hash, "key": key, "complete": False}) + "\n")
    return None


def _assemble(job: _Job, records: list[dict], meta: dict) -> None:
    """Shards -> the final outputs, each written to a temp path and renamed into place; then the work folder
    goes. A kill at any point leaves the work folder, and the next run assembles again from the shards."""
    import datasets
    from datasets import Dataset, DatasetInfo

    kept = [{k: v for k, v in r.items() if k != "reason"} for r in records if r["reason"] is None]
    for r in kept:
        r["judge_model"] = meta["judge_model"]
    columns = [k for k in records[0] if k != "reason"] + ["judge_model"]
    meta_text = json.dumps(meta, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    info = DatasetInfo(description=f"Preference pairs labeled by mr3 label ({meta['judge_model']}); "
                                   f"see {META_FILE}.")
    dataset = Dataset.from_list(kept, info=info) if kept else Dataset.from_dict({c: [] for c in columns}, info=info)
    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # "Saving the dataset" bars would interleave with ours
    try:
        tmp = job.output.with_name(f".{job.output.name}.tmp-{os.getpid()}")
        # datasets writes no data file for an empty dataset unless told to, and then cannot load the folder.
        dataset.save_to_disk(str(tmp), num_shards=None if kept else 1)
        (tmp / META_FILE).write_text(meta_text, encoding="utf-8")
        if job.output.exists():
            _remove_tree(job.output)
        os.replace(tmp, job.output)
        if "jsonl" in job.extra:
            _write_atomic(job.extra["jsonl"], "".join(_dumps(r) + "\n" for r in kept))
        if "parquet" in job.extra:
            path = job.extra["parquet"]
            tmp_file = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            dataset.to_parquet(str(tmp_file))
            os.replace(tmp_file, path)
        if "dropped" in job.extra:
            dropped = [{**r, "judge_model": meta["judge_model"]} for r in records if r["reason"] is not None]
            _write_atomic(job.extra["dropped"], "".join(_dumps(r) + "\n" for r in dropped))
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()
    manifest = job.read_manifest() or {}
    _write_atomic(job.manifest_path, _dumps({**manifest, "complete": True, "summary": meta["summary"]}) + "\n")
    _remove_tree(job.work)


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


# ------------------------------------------------------------------------------------------------------- Ray
def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise ImportError("--ray needs Ray Data: pip install 'mr3-reward[ray]'") from e
    return ray


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
            out["payload"].append("".join(_dumps(r) + "\n" for r in records))
            out["stats"].append(json.dumps(stats))
        return out


def _run_on_ray(factory, config: LabelConfig, shards: list[list[LabelRow]], pending: list[int], job: _Job,
                stats: dict[str, Any], advance: Callable[[int], None], *, address: str | None, actors: int,
                cpus: float, gpus: float) -> None:
    """Label the pending shards with ``map_batches`` over an actor pool; the driver writes each shard file as its
    result streams in (shards may come back in any order: they are named by index)."""
    if not pending:
        return
    ray = _import_ray()
    if not ray.is_initialized():
        ray.init(address=address or os.environ.get("RAY_ADDRESS") or None)
    items = [{"shard": k, "rows": json.dumps([r.to_dict() for r in shards[k]], ensure_ascii=False)} for k in pending]
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    labeled = dataset.map_batches(
        _ShardLabeler, fn_constructor_kwargs={"factory": factory, "config": config}, batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=min(actors, len(items))), num_cpus=cpus, num_gpus=gpus or None,
    )
    for result in labeled.iter_rows():
        k = int(result["shard"])
        _write_atomic(job.shard_path(k), str(result["payload"]))
        for name, value in json.loads(str(result["stats"])).items():
            stats[name] = stats.get(name, 0) + value
        stats["shards_labeled"] += 1
        advance(1)


# -------------------------------------------------------------------------------------------------------- CLI
def add_label_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``mr3 label`` options, for ``mr3``'s subparser (and ``python -m mr3_reward.labeling``)."""
    from mr3_reward.judge_args import add_judge_arguments

    parser.add_argument("input", help="a .jsonl or .parquet file, a folder written by save_to_disk, or a hub dataset id")
    parser.add_argument("output", help="the HF dataset folder to write (work files go to OUTPUT.work/)")
    parser.add_argument("--strategy", default="best-worst", choices=STRATEGIES,
                        help="best-worst: pointwise scores, max vs min; tournament: pairwise win rates; "
                             "pair: a given pair in both orders, consistent verdicts only")
    parser.add_argument("--min-margin", type=float, default=0.0, help="drop pairs whose score margin (0-1) is lower")
    parser.add_argument("--opponents", type=int, help="tournament: compare each response with the next K only "
                        f"(default: round robin up to {ROUND_ROBIN_MAX} responses, {DEFAULT_OPPONENTS} beyond)")
    parser.add_argument("--on-disagree", default="tie", choices=ON_DISAGREE,
                        help="tournament: what a pair whose two orders disagree counts as")
    parser.add_argument("--keep-ties", action="store_true", help="pair: keep ties and disagreements, marked tie=true")
    parser.add_argument("--task", choices=[t.value for t in PAIR_TASKS],
                        help="the judge task of tournament and pair (default pairwise)")
    g = parser.add_argument_group("input columns")
    g.add_argument("--prompt-column", help="default: prompt, input or question")
    g.add_argument("--responses-column", help="a column holding a list of responses (default: responses)")
    g.add_argument("--response-columns", nargs="+", metavar="COL",
                   help="one response per column, e.g. chosen rejected (default: response_a response_b)")
    g.add_argument("--column", action="append", default=[], metavar="ROLE=COL",
                   help=f"read an optional input from another column; roles: {', '.join(_OPTIONAL_ROLES)}")
    g.add_argument("--language", default="en", help="language code of rows without one (default en)")
    g.add_argument("--split", default="train", help="split of an HF dataset (default train)")
    add_judge_arguments(parser, cache_default="default")
    o = parser.add_argument_group("outputs and running")
    o.add_argument("--jsonl", help="also write the pairs as JSONL here")
    o.add_argument("--parquet", help="also write the pairs as Parquet here")
    o.add_argument("--dropped", help="write the dropped rows, with their reason, as JSONL here")
    o.add_argument("--overwrite", action="store_true",
                   help="replace outputs and work files of a different job (the same command always resumes)")
    o.add_argument("--shard-size", type=int, default=32, help="rows per checkpointed shard (default 32)")
    o.add_argument("--chunk", type=int, default=64, help="judge requests per judge call (default 64)")
    o.add_argument("--ray", action="store_true", help="label the shards on a Ray cluster (Ray Data actor pool)")
    o.add_argument("--ray-address", help="Ray cluster address (default: RAY_ADDRESS, else a new local cluster)")
    o.add_argument("--ray-actors", type=int, default=1, help="judge actors (default 1)")
    o.add_argument("--ray-cpus-per-actor", type=float, default=1.0)
    o.add_argument("--ray-gpus-per-actor", type=float, default=0.0)
    o.add_argument("--quiet", action="store_true")


def _columns_option(values: Sequence[str]) -> dict[str, str]:
    columns = {}
    for value in values:
        role, sep, col = value.partition("=")
        if not sep or not role or not col:
            raise ValueError(f"--column takes ROLE=COLUMN (e.g. --column language=lang), got {value!r}")
        columns[role] = col
    return columns


def cmd_label(args: argparse.Namespace, *, backend: Backend | None = None) -> int:
    """``mr3 label INPUT OUTPUT ...``; ``backend`` replaces ``--backend``/``--model``'s engine (tests, embedding)."""
    from mr3_reward.judge_args import judge_options

    if args.pool and args.ray:
        raise ValueError("--pool (a running judge pool) and --ray (judges started for this job) are two ways to "
                         "use Ray: pick one")
    config = LabelConfig(
        strategy=args.strategy, task=args.task, min_margin=args.min_margin, opponents=args.opponents,
        on_disagree=args.on_disagree, keep_ties=args.keep_ties, prompt_column=args.prompt_column,
        responses_column=args.responses_column,
        response_columns=tuple(args.response_columns) if args.response_columns else None,
        columns=_columns_option(args.column), language=args.language, split=args.split,
        shard_size=args.shard_size, chunk=args.chunk,
    )
    options = judge_options(args)
    if backend is not None:  # an injected engine replaces --backend and its options
        options.update(backend=backend, backend_options={})
    result = label(
        args.input, args.output, model=args.model, config=config, jsonl=args.jsonl,
        parquet=args.parquet, dropped=args.dropped, overwrite=args.overwrite, ray=args.ray,
        ray_address=args.ray_address, ray_actors=args.ray_actors, ray_cpus_per_actor=args.ray_cpus_per_actor,
        ray_gpus_per_actor=args.ray_gpus_per_actor, progress=not args.quiet, **options,
    )
    if not args.quiet:
        print_summary(result)
    return 0


def print_summary(result: LabelResult) -> None:
    """The closing table: pairs kept, dropped by reason, per-language counts, position consistency, failures."""
    from rich.console import Console
    from rich.table import Table

    s, st = result.summary, result.stats
    console = Console(stderr=True)
    console.print(f"mr3 label: {s['kept']} of {s['rows']} row(s) kept as pairs")
    table = Table()
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("pairs kept", str(s["kept"]))
    for reason, n in s["dropped"].items():
        table.add_row(f"[yellow]dropped: {reason}[/yellow]", str(n))
    for language, c in s["languages"].items():
        table.add_row(f"language {language}", f"{c['kept']}/{c['rows']}")
    pc = s["position_consistency"]
    table.add_row("position consistency", "-" if pc is None else f"{pc:.0%}")
    table.add_row("judgments", str(s["judgments"]))
    for failure, n in s["failures"].items():
        table.add_row(f"[red]failed: {failure}[/red]", str(n))
    table.add_row("shards resumed / labeled", f"{st.get('shards_resumed', 0)} / {st.get('shards_labeled', 0)}")
    table.add_row("engine items / cache hits", f"{st.get('engine_items', 0)} / {st.get('cache_hits', 0)}")
    table.add_row("wall time (s)", f"{st.get('seconds', 0.0):.1f}")
    console.print(table)
    console.print(f"wrote {s['kept']} pair(s) to {result.output}")


def main(argv: list[str] | None = None, *, backend: Backend | None = None) -> int:
    """``python -m mr3_reward.labeling INPUT OUTPUT ...`` (the same as ``mr3 label``)."""
    parser = argparse.ArgumentParser(prog="mr3 label", description=(
        "Label sampled responses into prompt/chosen/rejected pairs for TRL's DPOTrainer; resumable."))
    add_label_arguments(parser)
    args = parser.parse_args(argv)
    from mr3_reward.judge_args import run_command

    return run_command("mr3 label", lambda: cmd_label(args, backend=backend))


if __name__ == "__main__":
    sys.exit(main())
