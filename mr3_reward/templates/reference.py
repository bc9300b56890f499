"""Reference rendering: byte-exact with the published mR3 implementation (see tests/test_golden.py).

A reference record names a builder family and carries the dataset row as the reference reads it; the
prompt is assembled by the same layout functions `Renderer` uses, with the pack's words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mr3_reward.templates.layout import render_messages, render_system
from mr3_reward.templates.packs import FAMILIES, RubricPack, cached_pack


def conversation_text(messages: Sequence[Mapping[str, str]]) -> str:
    """A message list as the reference renders a conversation: ``<role>\\ncontent\\n</role>`` blocks."""
    return "".join(f"<{m['role']}>\n{m['content']}\n</{m['role']}>\n" for m in messages)


def _reference_sections(top: str, row: Mapping[str, Any], tags: Mapping[str, str]) -> list[tuple[str, str]]:
    if top in ("strict_pair", "lmarena", "indopref"):
        return [(tags["input_tag"], row["input"]), ("Assistant A", row["response_1"]), ("Assistant B", row["response_2"])]
    if top == "helpsteer3":
        return [
            (tags["input_tag"], conversation_text(row["context"])),
            ("Response 1", row["response1"]),
            ("Response 2", row["response2"]),
        ]
    if top in ("polyguard", "rtp_lx"):
        return [(tags["input_tag"], row["input"])]
    if top in ("mgsm", "math500"):
        return [(tags["input_tag"], row["question"]), (tags["math_solution"], row["answer"])]
    if top == "humanevalxl":
        return [(tags["input_tag"], row["input"]), (tags["code_solution"], row["code_response"])]
    if top == "mcq":
        return [(tags["input_tag"], row["question"]), (tags["options_tag"], row["options_str"])]
    raise ValueError(f"unknown builder family {top!r}")


def render_reference(record: Mapping[str, Any], pack_dir: str | Path) -> tuple[str, str, str]:
    """Render a reference-style record exactly as the mR3 reference implementation does.

    record (`dict`): fields ``builder`` (e.g. ``"strict_pair/general"``), ``row`` (the dataset row),
        ``use_tgt_prompt``, ``use_tgt_thinking``, ``prompt_language`` and ``rubric_text`` (the rubric
        lines as chosen, or None for multiple choice).
    pack_dir (`str`): the official rubric pack directory.

    Returns ``(system, user, assistant_prefix)``; no header neutralization is applied here, so the
    bytes match the reference for any row.
    """
    pack = pack_dir if isinstance(pack_dir, RubricPack) else cached_pack(str(pack_dir))
    builder = record["builder"]
    top = builder.partition("/")[0]
    layout = FAMILIES[top].layout
    # A quirk of the reference: with an English prompt, only the HelpSteer3 builder forces thinking
    # into the row's language; the others force the prompt's language (English).
    thinking_language = record["row"].get("language") if top == "helpsteer3" else None
    texts, _ = pack.texts(
        builder, record["prompt_language"], tgt_thinking=bool(record["use_tgt_thinking"]),
        thinking_language=thinking_language,
    )
    sections = _reference_sections(top, record["row"], texts.tags)
    system = render_system(texts, layout, record.get("rubric_text"))
    p = render_messages(system, texts, layout, sections, force_thinking=bool(record["use_tgt_thinking"]))
    return p.system, p.user, p.prefix
