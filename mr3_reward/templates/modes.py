"""Language modes: which language the template text and the reasoning are in, read from a model id."""

from __future__ import annotations

import enum
import json
from pathlib import Path

# A judge folder built by `training/` records the mode it was trained in here (`training.sft`).
TRAINING_INFO = "mr3_training.json"


class LanguageMode(str, enum.Enum):
    """Which language the template text and the reasoning are in.

    ``en-prompt`` = English template text whatever the input language; ``tgt-prompt`` = template text
    in the input's language; ``tgt-thinking`` = the reasoning is forced into the prompt's language by a
    sentence placed right after ``<think>``.
    """

    EN_PROMPT_EN_THINKING = "en-prompt-en-thinking"
    TGT_PROMPT_EN_THINKING = "tgt-prompt-en-thinking"
    TGT_PROMPT_TGT_THINKING = "tgt-prompt-tgt-thinking"
    EN_PROMPT_TGT_THINKING = "en-prompt-tgt-thinking"  # a distillation strategy; no released model

    @property
    def tgt_prompt(self) -> bool:
        return self.value.startswith("tgt-prompt")

    @property
    def tgt_thinking(self) -> bool:
        return self.value.endswith("tgt-thinking")

    @classmethod
    def parse(cls, value: str | LanguageMode) -> LanguageMode:
        if isinstance(value, LanguageMode):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            known = ", ".join(m.value for m in cls)
            raise ValueError(f"unknown language mode {value!r}; use 'auto' or one of: {known}") from None

    @classmethod
    def for_model(cls, model_id: str | None, override: str | LanguageMode | None = "auto") -> LanguageMode:
        """The mode a model was trained for: recorded in a local folder's ``mr3_training.json``, else read from
        its id suffix; ``override`` wins unless 'auto'.

        >>> LanguageMode.for_model("rubricreward/mR3-Qwen3-8B-tgt-prompt-tgt-thinking").value
        'tgt-prompt-tgt-thinking'
        >>> LanguageMode.for_model("smollm2-135m").value
        'en-prompt-en-thinking'
        """
        if override is not None and str(getattr(override, "value", override)) != "auto":
            return cls.parse(override)
        recorded = cls._recorded(model_id)
        if recorded is not None:
            return recorded
        name = (model_id or "").rstrip("/").lower()
        for mode in cls:
            if name.endswith(mode.value):
                return mode
        return cls.EN_PROMPT_EN_THINKING

    @classmethod
    def _recorded(cls, model_id: str | None) -> LanguageMode | None:
        """The mode in ``<model_id>/mr3_training.json`` when ``model_id`` is a local folder that has one."""
        info = Path(model_id).expanduser() / TRAINING_INFO if model_id else None
        if info is None or not info.is_file():
            return None
        try:
            return cls.parse(json.loads(info.read_text(encoding="utf-8"))["language_mode"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{info} does not record a language mode ({exc}); fix the file or pass "
                             "language_mode=... explicitly") from None
