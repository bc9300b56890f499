"""Stage 1, intake: source rows -> training rows (`training.rows`) with a gold label and a language.

Each source is read by an adapter for its column layout:

| format | task | columns read (defaults; ``columns:`` renames them) | family |
|---|---|---|---|
| ``native`` | any (``task`` column) | the `mr3 judge` JSONL row (``prompt``, ``responses``...) + ``gold`` | ``family`` column |
| ``mr3-pairwise`` | pairwise | ``id, input, response_1, response_2, actual_score, language, source`` (m-RewardBench, RewardBench, MM-Eval, IndoPref, arena) | ``strict_pair/<section of source>`` |
| ``helpsteer3`` | preference_strength | ``id, context`` (messages), ``response1, response2, actual_score`` (−3..3; label = score + 4) | ``helpsteer3`` |
| ``mgsm`` / ``math500`` | binary | ``id, question, answer`` (the solution), ``label`` | ``mgsm`` / ``math500`` |
| ``humanevalxl`` | binary | ``id, input, code_response, label`` | ``humanevalxl`` |
| ``polyguard`` / ``rtp_lx`` | binary | ``id, input, label`` | ``polyguard/prompt_template`` / ``rtp_lx`` |
| ``mcq`` | multiple_choice | ``id, question, options_str, answer`` | ``mcq`` |
| ``verifiable`` | pairwise, binary | generated here, not read: `training.items` with the source's ``options`` and ``split`` | ``mgsm`` / ``strict_pair/math`` |

Gold values are normalized to the rubric's labels by the package's own `normalize_label` (``True`` ->
``"true"``, ``6.0`` -> ``"6"``). Every bad row of every source is reported at once, with where it is.

Evaluation benchmarks (m-RewardBench, RewardBench, MM-Eval, IndoPref) are readable so that a held-out
split or a custom pool in their layout can be used; training on the benchmark you report is contamination.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mr3_reward.data import iter_rows
from mr3_reward.parsing import normalize_label
from mr3_reward.records import row_to_request
from mr3_reward.templates import conversation_text  # the reference's rendering of a message list
from mr3_reward.types import JudgeRequest, TaskKind

from training.items import SPLITS, ItemsConfig, items_digest, iter_items
from training.rows import ROW_COLUMNS, encode_rubric, expected_labels
from training.store import file_digest

MAX_REPORTED = 20

# m-RewardBench / RewardBench `source` prefixes -> the strict_pair sub-template of their section.
_SECTIONS = (
    (("alpacaeval", "mt-bench", "llmbar"), "general"),
    (("refusals", "xstest", "donotanswer"), "safety"),
    (("hep",), "code"),
    (("math-prm",), "math"),
)


@dataclass
class SourceSpec:
    """One source of rows.

    path (`str`): a ``.jsonl`` / ``.json`` / ``.parquet`` / ``.csv`` file, a ``save_to_disk`` folder or a
        hub dataset id (read with ``datasets.load_dataset``; relative paths are from the repository root);
        for ``verifiable`` items, only a name (nothing is read).
    format (`str`): the adapter, see the module table.
    name (`str`, *optional*): the rows' ``source`` (default: the row's own source column, else the file stem).
    split (`str`): the split of a hub dataset.
    columns (`dict`): canonical column -> the source's column, overriding the adapter's defaults.
    family (`str`, *optional*): the official template family for rows that do not name one.
    language (`str`, *optional*): the language of rows without a ``language`` column.
    limit (`int`, *optional*): keep the first ``limit`` rows (after the language filter).
    options (`dict`): adapter options (``score_offset`` for ``helpsteer3``; `training.items.ItemsConfig`'s
        fields for ``verifiable``).
    """

    path: str
    format: str = "native"
    name: str | None = None
    split: str = "train"
    columns: dict[str, str] = field(default_factory=dict)
    family: str | None = None
    language: str | None = None
    limit: int | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class IntakeConfig:
    """sources (`list[SourceSpec]`); languages (`list[str]`, *optional*): keep only these languages."""

    sources: list[SourceSpec] = field(default_factory=list)
    languages: list[str] | None = None

    def problems(self) -> list[str]:
        out = []
        if not self.sources:
            out.append("data.sources is empty: list at least one source (path + format)")
        for i, s in enumerate(self.sources):
            if s.format not in ADAPTERS:
                out.append(f"data.sources[{i}].format {s.format!r} is unknown; use one of: {', '.join(ADAPTERS)}")
            if s.format == "verifiable":
                out += _items_config(s, i)[1]
            if s.limit is not None and s.limit < 1:
                out.append(f"data.sources[{i}].limit must be >= 1, got {s.limit}")
        return out


# --------------------------------------------------------------------------------------------------
# Adapters: one source row -> the fields of a training row (id/source/language are filled in after)
# --------------------------------------------------------------------------------------------------
def _col(row: Mapping[str, Any], spec: SourceSpec, name: str, default: str | None = None) -> Any:
    column = spec.columns.get(name, default or name)
    if column not in row:
        raise ValueError(f"missing column {column!r} (for {name}); columns present: {', '.join(sorted(row))}; "
                         f"map it with columns: {{{name}: <column>}}")
    return row[column]


def _opt(row: Mapping[str, Any], spec: SourceSpec, name: str) -> Any:
    return row.get(spec.columns.get(name, name))


def _gold(value: Any, task: TaskKind, extra: tuple[str, ...] = ()) -> str:
    labels = expected_labels({"task": task.value}) + extra
    gold = normalize_label(value, labels)
    if gold is None:
        raise ValueError(f"gold label {value!r} is not one of {list(labels)}")
    return gold


def _native(row: Mapping[str, Any], spec: SourceSpec) -> dict[str, Any]:
    request: JudgeRequest = row_to_request(dict(row))
    labels = request.rubric.labels if request.rubric is not None else expected_labels({"task": request.task.value})
    if "gold" not in row:
        raise ValueError("missing the gold label: add a 'gold' column with one of the rubric's labels")
    gold = normalize_label(row["gold"], labels)
    if gold is None:
        raise ValueError(f"gold label {row['gold']!r} is not one of the rubric's labels {list(labels)}")
    return {
        "id": request.id, "task": request.task.value, "language": row.get("language"), "prompt": request.prompt,
        "responses": list(request.responses), "reference": request.reference, "options": request.options,
        "gold": gold, "family": row.get("family"), "rubric": encode_rubric(request.rubric),
        "task_description": request.task_description, "source": row.get("source"),
    }


def _pairwise(row: Mapping[str, Any], spec: SourceSpec) -> dict[str, Any]:
    source = _opt(row, spec, "source") or _opt(row, spec, "subset")
    section = next((sub for prefixes, sub in _SECTIONS if str(source or "").startswith(prefixes)), "general")
    return {
        "task": "pairwise", "prompt": _col(row, spec, "prompt", "input"),
        "responses": [_col(row, spec, "response_a", "response_1"), _col(row, spec, "response_b", "response_2")],
        # arena data also has ties; a tie gold label adds "Tie" to the rubric's labels
        "gold": _gold(_col(row, spec, "gold", "actual_score"), TaskKind.PAIRWISE, ("Tie", "Both Bad")),
        "family": f"strict_pair/{section}", "source": source,
    }


def _helpsteer3(row: Mapping[str, Any], spec: SourceSpec) -> dict[str, Any]:
    context = _col(row, spec, "context")
    prompt = conversation_text(context) if isinstance(context, list) else str(context)
    score = _col(row, spec, "gold", "actual_score")
    offset = int(spec.options.get("score_offset", 4))
    try:
        label = int(float(score)) + offset
    except (TypeError, ValueError):
        raise ValueError(f"actual_score {score!r} is not a number") from None
    return {
        "task": "preference_strength", "prompt": prompt,
        "responses": [_col(row, spec, "response_a", "response1"), _col(row, spec, "response_b", "response2")],
        "gold": _gold(label, TaskKind.PREFERENCE_STRENGTH), "family": "helpsteer3",
    }


def _solution(family: str, prompt_col: str, solution_col: str) -> Callable[[Mapping[str, Any], SourceSpec], dict]:
    def adapt(row: Mapping[str, Any], spec: SourceSpec) -> dict[str, Any]:
        return {
            "task": "binary", "prompt": _col(row, spec, "prompt", prompt_col),
            "responses": [_col(row, spec, "response", solution_col)],
            "gold": _gold(_col(row, spec, "gold", "label"), TaskKind.BINARY), "family": family,
        }

    return adapt


def _classify(family: str) -> Callable[[Mapping[str, Any], SourceSpec], dict]:
    def adapt(row: Mapping[str, Any], spec: SourceSpec) -> dict[str, Any]:
        return {
            "task": "binary", "prompt": _col(row, spec, "prompt", "input"), "responses": [],
            "gold": _gold(_col(row, spec, "gold", "label"), TaskKind.BINARY), "family": family,
        }

    return adapt


def _mcq(row: Mapping[str, Any], spec: SourceSpec) -> dict[str, Any]:
    return {
        "task": "multiple_choice", "prompt": _col(row, spec, "prompt", "question"), "responses": [],
        "options": _col(row, spec, "options", "options_str"),
        "gold": _gold(_col(row, spec, "gold", "answer"), TaskKind.MULTIPLE_CHOICE), "family": "mcq",
    }


Adapter = Callable[[Mapping[str, Any], SourceSpec], dict[str, Any]]

ADAPTERS: dict[str, Adapter] = {
    "native": _native,
    "mr3-pairwise": _pairwise,
    "helpsteer3": _helpsteer3,
    "mgsm": _solution("mgsm", "question", "answer"),
    "math500": _solution("math500", "question", "answer"),
    "humanevalxl": _solution("humanevalxl", "input", "code_response"),
    "polyguard": _classify("polyguard/prompt_template"),
    "rtp_lx": _classify("rtp_lx"),
    "mcq": _mcq,
    "verifiable": _native,  # rows generated by `training.items` in the native layout
}


# --------------------------------------------------------------------------------------------------
# Reading sources
# --------------------------------------------------------------------------------------------------
def resolve_path(path: str, root: Path) -> Path | None:
    """A local path (relative to ``root``), or None for a hub id."""
    p = Path(path).expanduser()
    p = p if p.is_absolute() else root / p
    return p if p.exists() else None


def _items_config(spec: SourceSpec, i: int) -> tuple[ItemsConfig | None, list[str]]:
    """A ``verifiable`` source's item settings, and its problems (an unknown task, language, form...)."""
    config, problems = ItemsConfig.checked(spec.options, f"data.sources[{i}].options")
    if spec.split not in SPLITS:
        problems.append(f"data.sources[{i}].split {spec.split!r} is not a split of the verifiable items; use one of: "
                        f"{', '.join(SPLITS)}")
    return config, problems


def _iter_source(spec: SourceSpec, root: Path) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(where, row) for each row of a source; ``where`` names the line or index for error messages."""
    if spec.format == "verifiable":
        config, _ = _items_config(spec, 0)
        return ((f"{spec.split} item {i}", row) for i, row in enumerate(iter_items(config, spec.split)))
    return iter_rows(resolve_path(spec.path, root) or spec.path, spec.split, name=spec.path)


def source_digest(spec: SourceSpec, root: Path) -> str:
    """What the source's content is: the file bytes for local sources, the id and split for hub ids, the
    settings for generated items."""
    if spec.format == "verifiable":
        return items_digest(_items_config(spec, 0)[0], spec.split)
    local = resolve_path(spec.path, root)
    return file_digest(local) if local is not None else f"hub:{spec.path}:{spec.split}"


def intake(config: IntakeConfig, root: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Read every source into training rows.

    Args:
        config (`IntakeConfig`): the sources and the language filter.
        root (`Path`): the folder relative source paths start from (the repository root).

    Returns:
        `tuple[list[dict], dict]`: the rows (``training.rows.ROW_COLUMNS``) and a report with counts per
        source, task and language.

    Raises:
        `ValueError`: listing every bad row (up to 20) with its file and line or index, or duplicate ids.
    """
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    per_source: dict[str, int] = {}
    for spec in config.sources:
        source_rows = _read_source(spec, root, config.languages, problems)
        per_source[spec.name or Path(spec.path).stem] = len(source_rows)
        rows += source_rows
    _raise_problems(rows, problems)
    report = {
        "rows": len(rows),
        "by_input": per_source,
        "by_source": dict(Counter(r["source"] for r in rows)),
        "by_task": dict(Counter(r["task"] for r in rows)),
        "by_language": dict(Counter(r["language"] for r in rows)),
        "with_rubric": sum(r.get("rubric") is not None for r in rows),
    }
    return rows, report


def _read_source(spec: SourceSpec, root: Path, languages: Sequence[str] | None,
                 problems: list[str]) -> list[dict[str, Any]]:
    """The rows of one source in the run's ``languages`` (all when empty), at most ``spec.limit`` of them; each bad
    row's problem, with its file and line or index, goes to ``problems``."""
    adapt = ADAPTERS[spec.format]
    default_name = spec.name or Path(spec.path).stem
    rows: list[dict[str, Any]] = []
    for i, (where, raw) in enumerate(_iter_source(spec, root)):
        if spec.limit is not None and len(rows) >= spec.limit:
            break
        try:
            row = _read_row(raw, i, spec, adapt, default_name, languages)
        except (ValueError, TypeError, KeyError) as exc:
            problems.append(f"{where}: {exc}")
            continue
        if row is not None:
            rows.append({k: row.get(k) for k in ROW_COLUMNS})
    return rows


def _read_row(raw: Any, i: int, spec: SourceSpec, adapt: Adapter, default_name: str,
              languages: Sequence[str] | None) -> dict[str, Any] | None:
    """Source row ``i`` as a training row with its id, language, source and family, or None when its language is
    not wanted; raises what is wrong with it (a `JudgeRequest` must accept it)."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"a row must be an object, got {type(raw).__name__}")
    row = adapt(raw, spec)
    language = raw.get(spec.columns.get("language", "language")) or spec.language or "en"
    if languages and language not in languages:
        return None
    row_id = raw.get(spec.columns.get("id", "id")) or row.get("id") or f"{default_name}-{i}"
    row.update(
        id=str(row_id), language=str(language),
        source=spec.name or row.get("source") or default_name,
        family=row.get("family") or spec.family,
    )
    if spec.family and spec.format != "native":
        row["family"] = spec.family
    JudgeRequest(task=row["task"], prompt=row["prompt"], responses=tuple(row["responses"]),
                 language=row["language"], options=row.get("options"), id=row["id"])
    return row


def _raise_problems(rows: Sequence[Mapping[str, Any]], problems: list[str]) -> None:
    """Fail listing every bad row (up to `MAX_REPORTED`) and duplicate ids, or when no row is left."""
    dupes = [k for k, n in Counter(r["id"] for r in rows).items() if n > 1]
    if dupes:
        problems.append(f"{len(dupes)} duplicate row id(s), e.g. {dupes[:5]}: ids pick rubric variants and must be "
                        "unique; give the sources distinct `name`s or fix the ids")
    if problems:
        more = f"\n... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
        raise ValueError(f"{len(problems)} problem(s) in the training data:\n" + "\n".join(problems[:MAX_REPORTED]) + more)
    if not rows:
        raise ValueError("the sources gave no rows (check data.languages and the sources' limits)")
