"""Official rubric packs: a directory laid out like the mR3 reference data (never shipped here).

A pack holds, per language, each family's task descriptions, rubric variants, headers and response
schema, plus the tables of system lines, "Instruction" words and forcing sentences.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from mr3_reward.templates.layout import CLASSIFY, PAIR, SOLUTION, Layout, Texts
from mr3_reward.templates.neutralization import BASE_HEADERS, header_keys
from mr3_reward.types import TaskKind

_PACK_FILES = {
    "strict_pair": "strict_pair_translated_templates.json",
    "helpsteer3": "helpsteer3_translated_templates.json",
    "polyguard": "polyguard_translated_templates.json",
    "rtp_lx": "rtp_lx_translated_templates.json",
    "mgsm": "mgsm_translated_templates.json",
    "math500": "math500_translated_templates.json",
    "humanevalxl": "humanevalxl_translated_templates.json",
    "mcq": "mcq_translated_templates.json",
    "lmarena": "lmarena_translated_templates.json",
    "indopref": "indopref_translated_templates.json",
}
_SYSTEM_LINES = "system_msg_translated_qwen3.json"
_INSTRUCTION_WORDS = "instruction_msg_translated.json"
_FORCING_SENTENCES = "thinking_msg_translated.json"


class Family(NamedTuple):
    """What a pack family renders with: its layout, the pack's tag key of its solution header (for the
    math and code correctness families), its response headers and the task kind it judges."""

    layout: Layout
    solution_key: str | None
    response_headers: tuple[str, ...]
    task: TaskKind


FAMILIES: dict[str, Family] = {
    "strict_pair": Family(PAIR, None, ("Assistant A", "Assistant B"), TaskKind.PAIRWISE),
    "lmarena": Family(PAIR, None, ("Assistant A", "Assistant B"), TaskKind.PAIRWISE),
    "indopref": Family(PAIR, None, ("Assistant A", "Assistant B"), TaskKind.PAIRWISE),
    "helpsteer3": Family(PAIR, None, ("Response 1", "Response 2"), TaskKind.PREFERENCE_STRENGTH),
    "polyguard": Family(CLASSIFY, None, (), TaskKind.BINARY),
    "rtp_lx": Family(CLASSIFY, None, (), TaskKind.BINARY),
    "mgsm": Family(SOLUTION, "math_solution", (), TaskKind.BINARY),
    "math500": Family(SOLUTION, "math_solution", (), TaskKind.BINARY),
    "humanevalxl": Family(SOLUTION, "code_solution", (), TaskKind.BINARY),
    "mcq": Family(PAIR, None, (), TaskKind.MULTIPLE_CHOICE),
}


class RubricPack:
    """An official rubric pack: per-language task descriptions, rubric variants, headers and schemas.

    pack_dir (`str`): a directory with the ``*_translated_templates.json`` files and the
        ``system_msg_translated_qwen3.json`` / ``instruction_msg_translated.json`` /
        ``thinking_msg_translated.json`` tables, as published with mR3's reference code.

    Families are named ``"<file>"`` or ``"<file>/<sub-template>"``, e.g. ``"strict_pair/general"``,
    ``"polyguard/response_template"``, ``"helpsteer3"``, ``"mcq"``.
    """

    def __init__(self, pack_dir: str | Path) -> None:
        self.path = Path(pack_dir).expanduser()
        missing = [f for f in (_SYSTEM_LINES, _INSTRUCTION_WORDS, _FORCING_SENTENCES) if not (self.path / f).is_file()]
        if not self.path.is_dir():
            raise FileNotFoundError(f"rubric pack directory {str(self.path)!r} does not exist; pass the folder "
                                    "that holds the *_translated_templates.json files")
        if missing:
            raise FileNotFoundError(f"rubric pack {str(self.path)!r} lacks {', '.join(missing)}; point to the "
                                    "complete pack folder (it also holds the *_translated_templates.json files)")

    @functools.lru_cache(maxsize=None)
    def _json(self, name: str) -> Any:
        with open(self.path / name, encoding="utf-8") as f:
            return json.load(f)

    def families(self) -> list[str]:
        return [k for k, f in _PACK_FILES.items() if (self.path / f).is_file()]

    def _lang_table(self, name: str, language: str) -> str:
        table = self._json(name)
        if language not in table:
            raise KeyError(f"the rubric pack has no {name!r} entry for language {language!r}")
        return table[language]

    def texts(
        self, family: str, language: str, *, tgt_thinking: bool, thinking_language: str | None = None
    ) -> tuple[Texts, Sequence[Mapping[str, str]]]:
        """The localized words for ``family`` in ``language`` and the rubric variants there.

        With ``tgt_thinking`` the system line and forcing sentence are in ``thinking_language``
        (default: ``language``); otherwise the system line is English and there is no forcing sentence.
        """
        top, _, sub = family.partition("/")
        if top not in _PACK_FILES:
            raise ValueError(f"unknown pack family {family!r}; known: {', '.join(_PACK_FILES)}")
        file = self.path / _PACK_FILES[top]
        if not file.is_file():
            raise FileNotFoundError(f"the rubric pack at {str(self.path)!r} has no {_PACK_FILES[top]}")
        data = self._json(_PACK_FILES[top])
        if language not in data:
            raise KeyError(
                f"pack family {top!r} has no {language!r} templates (it has: {', '.join(sorted(data))}); "
                "use an en-prompt language mode or another language"
            )
        lang = data[language]
        node = lang[sub] if sub else lang
        if sub and sub not in lang:
            subs = [k for k, v in lang.items() if isinstance(v, dict) and "task_description" in v]
            raise KeyError(f"pack family {top!r} has no sub-template {sub!r}; known: {', '.join(subs)}")
        schema = node.get("schema", lang.get("schema"))
        tags = node.get("tags", lang.get("tags"))
        thinking = (thinking_language or language) if tgt_thinking else "en"
        texts = Texts(
            system_line=self._lang_table(_SYSTEM_LINES, thinking),
            instruction=self._lang_table(_INSTRUCTION_WORDS, language),
            task_description=node["task_description"],
            tags=tags,
            schema=schema,
            forcing=self._lang_table(_FORCING_SENTENCES, thinking) if tgt_thinking else "",
        )
        return texts, node.get("rubric_list", [])

    @functools.cached_property
    def header_keys(self) -> frozenset[str]:
        """Every header word of every language in the pack, for `neutralize`."""
        words: list[str] = list(BASE_HEADERS)
        words += self._json(_INSTRUCTION_WORDS).values()
        for name in self.families():
            for lang in self._json(_PACK_FILES[name]).values():
                for node in [lang, *[v for v in lang.values() if isinstance(v, dict)]]:
                    tags = node.get("tags")
                    if isinstance(tags, dict):
                        words += [v for v in tags.values() if isinstance(v, str)]
        return header_keys(words)


@functools.lru_cache(maxsize=8)
def cached_pack(path: str) -> RubricPack:
    """One `RubricPack` per directory, its tables read once."""
    return RubricPack(path)
