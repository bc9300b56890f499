"""Stage 2, rubrics: a teacher writes task descriptions and rubrics where a source has none.

mR3's sources came without rubrics; GPT-4.1 wrote a task description and rubric paraphrases per task,
then translated them. Here the rows that need one are those with neither a ``rubric`` nor an official
template ``family``, grouped by (source, task): one task description per group and ``1 + paraphrases``
rubric variants, each row getting one variant (and a label order) from a stable hash of its id, the
same way the renderer picks among a template's variants. Multiple-choice rows are left alone: mR3's
multiple-choice prompts have no rubric.

Every answer is validated: it must hold a non-empty task description and exactly the task's labels
(``Assistant A``/``Assistant B``, ``1``..``7``, ``true``/``false``, plus any other gold label of the
group), each with a description. An invalid answer is asked again with a new seed, up to
``max_attempts``; a group that never gets a valid rubric keeps the template's own rubric
(``on_invalid: template``) or is dropped (``on_invalid: drop``). Translations (``translate: true``)
keep the labels and are all-or-nothing per language, so the translated variants line up with the
English ones and a row picks the same variant in both.

The teacher answers in a plain line format, read with `Rubric`'s own ``label: description`` rules::

    TASK: <what the judge must decide>
    RUBRIC:
    <label>: <what the label means>
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mr3_reward.backends.base import Backend, ChatPrompt, GenerationRequest
from mr3_reward.templates import BUILTIN, choose_rubric
from mr3_reward.types import THINK_CLOSE, Rubric, Sampling, TaskKind

from training.rows import encode_rubric, expected_labels
from training.store import run_sharded

ON_INVALID = ("template", "drop")

# Names for the translation prompt; other codes are passed as they are (teachers know ISO codes too).
LANGUAGE_NAMES = {
    "ar": "Arabic", "bn": "Bengali", "de": "German", "es": "Spanish", "fr": "French", "hi": "Hindi",
    "id": "Indonesian", "it": "Italian", "ja": "Japanese", "ko": "Korean", "nl": "Dutch", "pl": "Polish",
    "pt": "Portuguese", "ru": "Russian", "sw": "Swahili", "th": "Thai", "tr": "Turkish", "uk": "Ukrainian",
    "vi": "Vietnamese", "zh": "Chinese (Simplified)", "zh-Hant": "Chinese (Traditional)",
}


@dataclass
class RubricConfig:
    """enabled (`bool`): write rubrics where missing; paraphrases (`int`): extra variants per group;
    translate (`bool`): also translate them into each non-English row language; max_attempts (`int`):
    tries per answer; on_invalid (`str`): ``template`` or ``drop``; max_tokens (`int`, *optional*): caps
    the teacher's ``max_tokens`` for these short answers; shard_size (`int`): groups per checkpoint."""

    enabled: bool = True
    paraphrases: int = 2
    translate: bool = False
    max_attempts: int = 3
    on_invalid: str = "template"
    max_tokens: int | None = 2048
    shard_size: int = 8

    def problems(self) -> list[str]:
        out = []
        if self.paraphrases < 0:
            out.append(f"rubrics.paraphrases must be >= 0, got {self.paraphrases}")
        if self.max_attempts < 1:
            out.append(f"rubrics.max_attempts must be >= 1, got {self.max_attempts}")
        if self.on_invalid not in ON_INVALID:
            out.append(f"rubrics.on_invalid must be one of {', '.join(ON_INVALID)}, got {self.on_invalid!r}")
        if self.shard_size < 1:
            out.append(f"rubrics.shard_size must be >= 1, got {self.shard_size}")
        return out


def needs_rubric(row: Mapping[str, Any]) -> bool:
    return row.get("rubric") is None and row.get("family") is None and row["task"] != TaskKind.MULTIPLE_CHOICE.value


# --------------------------------------------------------------------------------------------------
# Prompts and reading the answers
# --------------------------------------------------------------------------------------------------
_SYSTEM = (
    "You write evaluation rubrics for an AI judge that reads a task description and a rubric, then "
    "answers with one of the rubric's labels. Reply in exactly this format and nothing else:\n"
    "TASK: <one paragraph telling the judge what to decide and what to weigh>\n"
    "RUBRIC:\n<label>: <one sentence saying when to give this label>\n"
    "(one line per label)"
)

_TASK_LINE = re.compile(r"^[ \t*#_]*TASK[ \t*_]*:", re.I | re.M)
_RUBRIC_LINE = re.compile(r"^[ \t*#_]*RUBRIC[ \t*_]*:?[ \t*_]*$", re.I | re.M)
_BULLET = re.compile(r"^[ \t]*(?:[-*•]|\d+[.)])[ \t]+")


def _labels_text(labels: Sequence[str]) -> str:
    return ", ".join(f"'{x}'" for x in labels)


def write_prompt(task: TaskKind, labels: Sequence[str], source: str, example: str) -> ChatPrompt:
    """Ask for a task description and a rubric for one (source, task) group."""
    builtin = BUILTIN[task]
    user = (
        f"Write a task description and a rubric for judging data from the source '{source}'.\n"
        f"Task kind: {task.value}. The rubric must use exactly these labels, each once: {_labels_text(labels)}.\n\n"
        f"An example input from this source:\n{example}\n\n"
        "For comparison, a generic rubric for this task kind looks like this:\n"
        f"TASK: {builtin.task_description}\nRUBRIC:\n{Rubric.from_mapping(builtin.rubrics[0]).render()}\n"
        "Write one that fits this source better."
    )
    return ChatPrompt(system=_SYSTEM, user=user, prefix="")


def paraphrase_prompt(task_description: str, rubric: Rubric) -> ChatPrompt:
    user = (
        "Rewrite the rubric below in other words with exactly the same meaning. Keep every label exactly as "
        f"written ({_labels_text(rubric.labels)}); change only the descriptions.\n\n"
        f"TASK: {task_description}\nRUBRIC:\n{rubric.render()}"
    )
    return ChatPrompt(system=_SYSTEM, user=user, prefix="")


def translate_prompt(task_description: str, rubric: Rubric, language: str) -> ChatPrompt:
    name = LANGUAGE_NAMES.get(language, language)
    user = (
        f"Translate the task description and the rubric descriptions below into {name}. Keep every label "
        f"exactly as written, untranslated ({_labels_text(rubric.labels)}), and keep the TASK:/RUBRIC: "
        f"markers in English.\n\nTASK: {task_description}\nRUBRIC:\n{rubric.render()}"
    )
    return ChatPrompt(system=_SYSTEM, user=user, prefix="")


def read_answer(text: str, labels: Sequence[str]) -> tuple[str | None, Rubric | None, str | None]:
    """Read ``TASK: ... RUBRIC: ...`` from a teacher's answer.

    Returns ``(task_description, rubric, problem)``: ``problem`` is None when the rubric has exactly
    ``labels`` (in any order), each with a description. Reasoning before a final ``</think>`` is ignored.

    >>> read_answer("TASK: Pick the better reply.\\nRUBRIC:\\n- **true**: right.\\nfalse: wrong.", ["true", "false"])[1].labels
    ('true', 'false')
    >>> read_answer("TASK: x\\nRUBRIC:\\nyes: ok\\nno: bad", ["true", "false"])[2]
    "labels ['yes', 'no'] are not exactly ['true', 'false']"
    """
    answer = text.rsplit(THINK_CLOSE, 1)[-1]
    m = _RUBRIC_LINE.search(answer)
    if m is None:
        return None, None, "no 'RUBRIC:' line"
    head = answer[: m.start()]
    t = _TASK_LINE.search(head)
    task = head[t.end():].strip() if t else None
    entries = []
    for line in answer[m.end():].splitlines():
        if not line.strip():
            continue
        label, sep, desc = _BULLET.sub("", line).partition(":")
        if not sep:
            break  # prose after the rubric block
        entries.append((label.strip().strip("*`'\"").strip(), desc.strip().strip("*").strip()))
    try:
        rubric = Rubric(tuple(entries))
    except ValueError as exc:
        return task, None, str(exc)
    if sorted(rubric.labels) != sorted(labels):
        return task, None, f"labels {list(rubric.labels)} are not exactly {list(labels)}"
    if any(not desc for _, desc in rubric.entries):
        return task, None, "a label has an empty description"
    return task, rubric, None


# --------------------------------------------------------------------------------------------------
# Asking with retries
# --------------------------------------------------------------------------------------------------
@dataclass
class _Ask:
    prompt: ChatPrompt
    labels: tuple[str, ...]
    need_task: bool
    seed_offset: int
    order: tuple[str, ...] | None = None  # put the rubric's entries in this label order
    task: str | None = None
    rubric: Rubric | None = None
    attempts: int = 0
    problem: str | None = None


def _ask_all(teacher: Backend, asks: list[_Ask], sampling: Sampling, max_attempts: int) -> None:
    """Answer every ask, re-asking only invalid ones with a new seed; one engine call per round."""
    pending = list(asks)
    for attempt in range(max_attempts):
        if not pending:
            return
        requests = []
        for a in pending:
            seed = None if sampling.seed is None else sampling.seed + a.seed_offset + attempt
            requests.append(GenerationRequest(a.prompt, sampling.with_(seed=seed)))
        generations = teacher.generate(requests)
        still = []
        for a, gen in zip(pending, generations):
            a.attempts += 1
            if gen.finish_reason == "error":
                a.problem = f"engine error: {gen.error}"
                still.append(a)
                continue
            task, rubric, problem = read_answer(gen.text, a.labels)
            if problem is None and a.need_task and not task:
                problem = "no 'TASK:' text"
            if problem is None:
                if a.order is not None:
                    rubric = Rubric(tuple(sorted(rubric.entries, key=lambda e: a.order.index(e[0]))))
                a.task, a.rubric, a.problem = task, rubric, None
            else:
                a.problem = problem
                still.append(a)
        pending = still


def _write_groups(teacher: Backend, groups: list[dict[str, Any]], sampling: Sampling, config: RubricConfig) -> list[dict]:
    """Write, paraphrase and translate the rubrics of a shard of groups."""
    first = [
        _Ask(write_prompt(TaskKind.parse(g["task"]), g["labels"], g["source"], g["example"]), tuple(g["labels"]),
             need_task=True, seed_offset=0)
        for g in groups
    ]
    _ask_all(teacher, first, sampling, config.max_attempts)
    paraphrases: dict[int, list[_Ask]] = defaultdict(list)
    for i, a in enumerate(first):
        if a.rubric is not None:
            for j in range(config.paraphrases):
                ask = _Ask(paraphrase_prompt(a.task, a.rubric), a.rubric.labels, need_task=False,
                           seed_offset=1000 * (j + 1), order=a.rubric.labels)
                paraphrases[i].append(ask)
    _ask_all(teacher, [a for asks in paraphrases.values() for a in asks], sampling, config.max_attempts)

    translations: dict[tuple[int, str], list[_Ask]] = {}
    if config.translate:
        for i, (g, a) in enumerate(zip(groups, first)):
            if a.rubric is None:
                continue
            variants = [a.rubric] + [p.rubric for p in paraphrases[i] if p.rubric is not None]
            for lang in g["languages"]:
                if lang != "en":
                    translations[(i, lang)] = [
                        _Ask(translate_prompt(a.task, v, lang), v.labels, need_task=(k == 0),
                             seed_offset=100_000 + k, order=v.labels)
                        for k, v in enumerate(variants)
                    ]
        _ask_all(teacher, [a for asks in translations.values() for a in asks], sampling, config.max_attempts)

    out = []
    for i, (g, a) in enumerate(zip(groups, first)):
        record: dict[str, Any] = {"source": g["source"], "task": g["task"], "attempts": a.attempts}
        if a.rubric is None:
            out.append({**record, "status": "invalid", "problem": a.problem})
            continue
        variants = [a.rubric] + [p.rubric for p in paraphrases[i] if p.rubric is not None]
        translated = {}
        for (gi, lang), asks in translations.items():
            if gi == i and all(t.rubric is not None for t in asks):
                translated[lang] = {"task_description": asks[0].task,
                                    "variants": [list(map(list, t.rubric.entries)) for t in asks]}
        out.append({
            **record, "status": "written", "task_description": a.task,
            "variants": [list(map(list, v.entries)) for v in variants],
            "paraphrases_failed": sum(p.rubric is None for p in paraphrases[i]),
            "translations": translated,
            "translations_failed": sorted(lang for (gi, lang) in translations if gi == i and lang not in translated),
            "attempts": a.attempts + sum(p.attempts for p in paraphrases[i])
            + sum(t.attempts for (gi, _), asks in translations.items() if gi == i for t in asks),
        })
    return out


def _variants(entries: list) -> list[dict[str, str]]:
    return [dict((str(a), str(b)) for a, b in v) for v in entries]


def write_rubrics(
    rows: list[dict[str, Any]],
    teacher: Backend | None,
    sampling: Sampling,
    config: RubricConfig,
    *,
    shard_dir: Path | None = None,
    max_example_chars: int = 600,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Fill ``rubric`` / ``task_description`` (and the ``_tgt`` translations) of the rows that need one.

    Args:
        rows (`list[dict]`): training rows from intake.
        teacher (`Backend`, *optional*): the model that writes; only called when some row needs a rubric.
        sampling (`Sampling`): the teacher's decoding; ``config.max_tokens`` caps its ``max_tokens``.
        config (`RubricConfig`): see the class.
        shard_dir (`Path`, *optional*): where finished groups are checkpointed.

    Returns:
        `tuple[list[dict], dict]`: the rows (those of dropped groups removed) and a report.
    """
    todo = [r for r in rows if needs_rubric(r)] if config.enabled else []
    groups = _groups(todo, max_example_chars)
    results, stats = _write_all(groups, teacher, sampling, config, shard_dir)
    out, dropped = _fill_rows(rows, {(g["source"], g["task"]): g for g in results}, config)
    report = _report(out, todo, groups, results, config, dropped, stats)
    return out, report


def _groups(todo: list[dict[str, Any]], max_example_chars: int) -> list[dict[str, Any]]:
    """One group per (source, task) of the rows that need a rubric, in that order: every gold label of its
    rows, its first row's prompt (cut to ``max_example_chars``) as the example, and its rows' languages."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in todo:
        grouped[(r["source"], r["task"])].append(r)
    groups = []
    for (source, task), members in sorted(grouped.items()):
        labels: list[str] = []
        for m in members:
            labels += [x for x in expected_labels(m) if x not in labels]
        example = members[0]["prompt"][:max_example_chars]
        languages = sorted({m["language"] for m in members})
        groups.append({"source": source, "task": task, "labels": labels, "example": example, "languages": languages})
    return groups


def _write_all(groups: list[dict[str, Any]], teacher: Backend | None, sampling: Sampling, config: RubricConfig,
               shard_dir: Path | None) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The teacher's rubrics for ``groups`` (one record each, see `_write_groups`), shard by shard with
    checkpoints, and the shard counts; no teacher call when no group needs one."""
    if not groups:
        return [], {"shards": 0, "shards_reused": 0, "shards_computed": 0}
    if teacher is None:
        raise ValueError(f"{len(groups)} (source, task) group(s) need a rubric and no teacher was given")
    if config.max_tokens is not None:
        sampling = sampling.with_(max_tokens=min(sampling.max_tokens, config.max_tokens))
    return run_sharded(groups, config.shard_size, shard_dir,
                       lambda shard: _write_groups(teacher, shard, sampling, config), label="rubrics")


def _fill_rows(rows: list[dict[str, Any]], by_key: Mapping[tuple[str, str], dict[str, Any]],
               config: RubricConfig) -> tuple[list[dict[str, Any]], int]:
    """The rows with their group's rubric filled in, and how many were dropped: a row of an invalid group
    keeps the template's rubric or is dropped, as ``config.on_invalid`` says; other rows pass unchanged."""
    out, dropped = [], 0
    for row in rows:
        g = by_key.get((row["source"], row["task"])) if needs_rubric(row) and config.enabled else None
        if g is None:
            out.append(row)
        elif g["status"] == "written":
            out.append(_with_rubric(row, g))
        elif config.on_invalid == "template":
            out.append(row)
        else:
            dropped += 1
    return out, dropped


def _with_rubric(row: dict[str, Any], group: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``row`` with the variant of its group's rubric (and translation) that its id picks."""
    row = dict(row, task_description=group["task_description"],
               rubric=encode_rubric(choose_rubric(_variants(group["variants"]), row["id"])))
    tr = group["translations"].get(row["language"])
    if tr is not None:
        row.update(task_description_tgt=tr["task_description"],
                   rubric_tgt=encode_rubric(choose_rubric(_variants(tr["variants"]), row["id"])))
    return row


def _report(out: list[dict[str, Any]], todo: list[dict[str, Any]], groups: list[dict[str, Any]],
            results: list[dict[str, Any]], config: RubricConfig, dropped: int,
            stats: Mapping[str, int]) -> dict[str, Any]:
    """The stage's report: rows and groups in and out, teacher answers, failures and their reasons."""
    status = Counter(g["status"] for g in results)
    return {
        "rows": len(out),
        "rows_needing_rubric": len(todo),
        "groups": len(groups),
        "groups_written": status.get("written", 0),
        "groups_invalid": status.get("invalid", 0),
        "on_invalid": config.on_invalid,
        "rows_dropped": dropped,
        "teacher_answers": sum(g["attempts"] for g in results),
        "paraphrases_failed": sum(g.get("paraphrases_failed", 0) for g in results),
        "translations": sum(len(g.get("translations", {})) for g in results),
        "translations_failed": sum(len(g.get("translations_failed", [])) for g in results),
        "invalid_reasons": dict(Counter(g["problem"] for g in results if g["status"] == "invalid")),
        "groups_detail": [{k: g[k] for k in ("source", "task", "status", "attempts")} for g in results],
        **stats,
    }
