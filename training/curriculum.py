"""Stages 5 and 6: difficulty from a smaller model, then the curriculum order SFT trains in.

Difficulty (SPEC "Training recipe", step 4): a smaller model judges each kept row k times in the English
setting (``en-prompt-en-thinking``); a row it solves k/k is too easy to teach anything and is dropped;
otherwise ``n_correct`` (0..k-1) is the row's ease, and ``length`` (the prompt + completion tokens of the
row's training target, as the teacher's engine counted them) breaks ties.

Curriculum (step 5), ``order``:

- ``easy_to_hard`` (default, what mR3 trains with): most correct first; among equals, shorter first;
- ``hard_to_easy``: exactly the reverse;
- ``random``: a seeded shuffle;
- ``english_first``: the English rows, easy to hard, then all the others, easy to hard.

``balance_labels: true`` keeps each gold label easy to hard on its own and interleaves the labels in their
overall proportions. A weak difficulty model is right mostly where the gold label is the one it always
says (SmolLM2-135M says ``true`` and ``Assistant A``), so plain easy to hard puts the rows in label blocks
(all ``true`` first, all ``Assistant B`` last) and a one-pass SFT ends up preferring the last block's label.

The order is the dataset's row order; `training.sft` trains in it (no shuffling). The two stages are
separate so trying another order for an ablation reuses the sampled difficulty.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mr3_reward.backends.base import Backend
from mr3_reward.templates import LanguageMode
from mr3_reward.types import Sampling

from training.distill import check_renderable, generate_traces
from training.rows import Renderers
from training.store import run_sharded

ORDERS = ("easy_to_hard", "hard_to_easy", "random", "english_first")


@dataclass
class DifficultyConfig:
    """samples (`int`): k judgments per row (mR3: 5); language_mode (`str`): the English setting;
    drop_solved (`bool`): drop rows solved k/k; shard_size (`int`): rows per checkpoint."""

    samples: int = 5
    language_mode: str = LanguageMode.EN_PROMPT_EN_THINKING.value
    drop_solved: bool = True
    shard_size: int = 64

    def problems(self) -> list[str]:
        out = []
        if self.samples < 1:
            out.append(f"difficulty.samples must be >= 1, got {self.samples}")
        if self.shard_size < 1:
            out.append(f"difficulty.shard_size must be >= 1, got {self.shard_size}")
        try:
            LanguageMode.parse(self.language_mode)
        except ValueError as exc:
            out.append(f"difficulty.language_mode: {exc}")
        return out


@dataclass
class CurriculumConfig:
    """order (`str`): one of ``ORDERS``; seed (`int`): for ``random``; balance_labels (`bool`): interleave the
    gold labels, each in the order's own order (see the module docstring)."""

    order: str = "easy_to_hard"
    seed: int = 0
    balance_labels: bool = False

    def problems(self) -> list[str]:
        if self.order not in ORDERS:
            return [f"curriculum.order must be one of {', '.join(ORDERS)}, got {self.order!r}"]
        return []


def target_length(row: Mapping[str, Any]) -> int:
    t = row.get("target") or {}
    return int(t.get("prompt_tokens") or 0) + int(t.get("completion_tokens") or 0)


def score_difficulty(
    rows: list[dict[str, Any]],
    model: Backend,
    sampling: Sampling,
    config: DifficultyConfig,
    renderers: Renderers,
    *,
    shard_dir: Path | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Add ``n_correct`` and ``length``; drop the rows the model solves k/k.

    Args:
        rows (`list[dict]`): filtered rows (with ``target``).
        model (`Backend`): the (smaller) difficulty model.
        sampling (`Sampling`): its decoding; sample ``k`` uses ``seed + k``.
        config (`DifficultyConfig`): see the class.
        renderers (`Renderers`): rendering with the run's rubric pack.
        shard_dir (`Path`, *optional*): where finished shards are checkpointed.

    Returns:
        `tuple[list[dict], dict]`: the remaining rows and a report (dropped as solved, histogram of
        ``n_correct``, per language).
    """
    check_renderable(rows, [config.language_mode], renderers)

    def work(shard: list[dict[str, Any]]) -> list[dict[str, Any]]:
        traces = generate_traces(shard, model, sampling, [config.language_mode], config.samples, renderers)
        return [{"id": r["id"], "n_correct": sum(t["correct"] for t in ts),
                 "failures": sum(t["failure"] is not None for t in ts)} for r, ts in zip(shard, traces)]

    done, stats = run_sharded(rows, config.shard_size, shard_dir, work, label="difficulty")
    by_id = {d["id"]: d for d in done}
    out, solved = [], Counter()
    histogram: Counter = Counter()
    for row in rows:
        d = by_id[row["id"]]
        histogram[d["n_correct"]] += 1
        if config.drop_solved and d["n_correct"] == config.samples:
            solved[row["language"]] += 1
            continue
        out.append(dict(row, n_correct=d["n_correct"], length=target_length(row)))
    report = {
        "rows_in": len(rows),
        "rows": len(out),
        "samples": config.samples,
        "language_mode": config.language_mode,
        "dropped_solved": sum(solved.values()),
        "dropped_solved_by_language": dict(solved),
        "n_correct_histogram": {str(k): v for k, v in sorted(histogram.items())},
        "model_failures": sum(d["failures"] for d in done),
        **stats,
    }
    return out, report


def easy_to_hard_key(row: Mapping[str, Any]) -> tuple:
    """More correct = easier; ties: shorter first; then the id, so the order is total and stable."""
    return (-row["n_correct"], row["length"], row["id"])


def interleave_labels(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with their gold labels interleaved in proportion, each label's rows kept in their order.

    >>> rows = [{"id": i, "gold": g} for i, g in enumerate("TTTTFF")]
    >>> "".join(r["gold"] for r in interleave_labels(rows))
    'TFTTFT'
    """
    by_label: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_label[row["gold"]].append(row)
    # Each row's place is the middle of its share of its label's stretch: (i + 0.5) / n; ties by first label.
    labels = list(by_label)
    placed = sorted(((i + 0.5) / len(by_label[g]), labels.index(g), row) for g in labels
                    for i, row in enumerate(by_label[g]))
    return [row for _, _, row in placed]


def order_rows(rows: Sequence[dict[str, Any]], config: CurriculumConfig) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Put the rows in curriculum order and number them (``position``).

    >>> rows = [{"id": "a", "language": "de", "n_correct": 0, "length": 5},
    ...         {"id": "b", "language": "en", "n_correct": 2, "length": 9},
    ...         {"id": "c", "language": "de", "n_correct": 2, "length": 3}]
    >>> [r["id"] for r in order_rows(rows, CurriculumConfig())[0]]
    ['c', 'b', 'a']
    >>> [r["id"] for r in order_rows(rows, CurriculumConfig(order="english_first"))[0]]
    ['b', 'c', 'a']
    """
    easy = sorted(rows, key=easy_to_hard_key)
    if config.order == "easy_to_hard":
        ordered = easy
    elif config.order == "hard_to_easy":
        ordered = easy[::-1]
    elif config.order == "random":
        ordered = sorted(rows, key=lambda r: r["id"])
        random.Random(config.seed).shuffle(ordered)
    else:
        ordered = [r for r in easy if r["language"] == "en"] + [r for r in easy if r["language"] != "en"]
    if config.balance_labels:
        ordered = interleave_labels(ordered)
    out = [dict(r, position=i) for i, r in enumerate(ordered)]
    by_language: dict[str, list[int]] = defaultdict(list)
    for r in out:
        by_language[r["language"]].append(r["position"])
    report = {
        "rows": len(out),
        "order": config.order,
        "balance_labels": config.balance_labels,
        "gold_sequence": [r.get("gold") for r in out[:200]],
        "first_ids": [r["id"] for r in out[:10]],
        "n_correct_sequence": [r["n_correct"] for r in out[:200]],
        "mean_position_by_language": {k: sum(v) / len(v) for k, v in sorted(by_language.items())},
    }
    return out, report
