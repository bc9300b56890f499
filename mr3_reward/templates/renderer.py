"""`Renderer`: a `JudgeRequest` -> its prompt and score labels, for one judge configuration."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mr3_reward.backends.base import ChatPrompt
from mr3_reward.templates.builtin import BUILTIN, DEFAULT_LABELS, EN_TAGS, verdict_description
from mr3_reward.templates.fit import render_within
from mr3_reward.templates.layout import Layout, Texts, render_messages, render_system
from mr3_reward.templates.modes import LanguageMode
from mr3_reward.templates.neutralization import BASE_HEADER_KEYS, may_change, neutralize
from mr3_reward.templates.packs import FAMILIES, RubricPack
from mr3_reward.templates.rendered import RenderedPrompt
from mr3_reward.templates.variants import choose_frozen
from mr3_reward.types import JudgeRequest, Rubric, TaskKind

__all__ = ["TEMPLATE_VERSION", "RenderedPrompt", "Renderer"]

# Bump when the bytes a request renders to change: it is part of every cache key (`Renderer.key` reads it
# here; `mr3_reward.templates.TEMPLATE_VERSION` is this value, re-exported).
TEMPLATE_VERSION = "mr3-1"


@dataclass(frozen=True)
class _Template:
    key: tuple
    texts: Texts
    variants: tuple[tuple[tuple[str, str], ...], ...]
    layout: Layout
    response_headers: tuple[str, ...]
    solution_tag: str | None


class Renderer:
    """Renders `JudgeRequest`s for one judge configuration.

    model_id (`str`, *optional*): used to infer the language mode from its suffix.
    language_mode (`str`): ``"auto"`` (from the model id) or an explicit `LanguageMode` value.
    pack (`str | RubricPack`, *optional*): an official rubric pack; without it our English templates are used.
    family (`str`, *optional*): the pack family to use, e.g. ``"strict_pair/general"``; defaults by task.
    neutralize_headers (`bool`): escape forged template headers in user text (on by default).
    shuffle_labels (`bool`): shuffle rubric label order per sample id, as the models were trained.

    >>> r = Renderer(model_id="smollm2-135m")
    >>> p = r.render(JudgeRequest(task="pairwise", prompt="2+2?", responses=("4", "5")))
    >>> p.labels
    ('Assistant A', 'Assistant B')
    >>> p.prompt.user.splitlines()[3]
    '    # Assistant A'
    """

    _DEFAULT_FAMILY = {
        TaskKind.PAIRWISE: "strict_pair/general",
        TaskKind.PREFERENCE_STRENGTH: "helpsteer3",
        TaskKind.BINARY: "mgsm",
        TaskKind.MULTIPLE_CHOICE: "mcq",
    }

    def __init__(
        self,
        model_id: str | None = None,
        language_mode: str | LanguageMode = "auto",
        pack: str | Path | RubricPack | None = None,
        family: str | None = None,
        *,
        neutralize_headers: bool = True,
        shuffle_labels: bool = True,
    ) -> None:
        self.mode = LanguageMode.for_model(model_id, language_mode)
        self._tgt_prompt, self._tgt_thinking = self.mode.tgt_prompt, self.mode.tgt_thinking  # read per request
        self.pack = pack if isinstance(pack, RubricPack) or pack is None else RubricPack(pack)
        if family is not None and self.pack is None:
            raise ValueError(f"family={family!r} selects a template of a rubric pack; pass pack=<pack dir> too")
        if family is not None and family.partition("/")[0] not in FAMILIES:
            raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
        self.family = family
        self.neutralize_headers = neutralize_headers
        self.shuffle_labels = shuffle_labels
        self._headers = self.pack.header_keys if self.pack is not None else BASE_HEADER_KEYS
        self._templates: dict[tuple, _Template] = {}
        self._systems: dict[tuple, tuple[str, tuple[str, ...]]] = {}

    def key(self) -> dict[str, Any]:
        """What about this renderer changes the prompt bytes (for cache keys)."""
        return {
            "template_version": TEMPLATE_VERSION,
            "language_mode": self.mode.value,
            "pack": str(self.pack.path) if self.pack else None,
            "family": self.family,
            "neutralize": self.neutralize_headers,
            "shuffle": self.shuffle_labels,
        }

    def _template(self, request: JudgeRequest) -> _Template:
        """The localized template for a request's task and language (memoized: it never changes)."""
        family = self.family or (self._DEFAULT_FAMILY.get(request.task) if self.pack is not None else None)
        prompt_language = request.language if self._tgt_prompt else "en"
        thinking_language = request.language if self._tgt_thinking else "en"
        key = (family, request.task, prompt_language, thinking_language)
        tpl = self._templates.get(key)
        if tpl is not None:
            return tpl
        if family is not None:
            layout, solution_key, response_headers, kind = FAMILIES[family.partition("/")[0]]
            if kind is not request.task:
                raise ValueError(f"family {family!r} judges {kind.value!r} tasks, not {request.task.value!r}")
            texts, variants = self.pack.texts(
                family, prompt_language, tgt_thinking=self.mode.tgt_thinking, thinking_language=request.language
            )
            solution_tag = texts.tags.get(solution_key) if solution_key else None
        else:
            if prompt_language != "en":
                raise ValueError(
                    f"language mode {self.mode.value!r} needs template text in {request.language!r}, and the "
                    "built-in templates are English only; pass pack=<official rubric pack dir> (it has 30+ "
                    "languages) or language_mode='en-prompt-en-thinking'"
                )
            builtin = BUILTIN[request.task]
            texts, variants, layout = builtin.texts(), builtin.rubrics, builtin.layout
            response_headers, solution_tag = builtin.response_headers, builtin.solution_tag
        tpl = _Template(key, texts, tuple(tuple(v.items()) for v in variants), layout, response_headers, solution_tag)
        self._templates[key] = tpl
        return tpl

    def _system(self, tpl: _Template, request: JudgeRequest, rubric: Rubric | None) -> tuple[str, tuple[str, ...]]:
        """The system message and score labels; memoized, since every request with the same template,
        task description and rubric shares them."""
        key = (tpl.key, request.task_description, rubric.entries if rubric is not None else None)
        hit = self._systems.get(key)
        if hit is not None:
            return hit
        texts = tpl.texts
        if request.task_description is not None:
            texts = replace(texts, task_description=request.task_description)
        template_labels = _schema_labels(texts.schema, request.task)
        labels = rubric.labels if rubric is not None else template_labels
        if set(labels) != set(template_labels):
            texts = _with_labels(texts, labels)
        hit = (render_system(texts, tpl.layout, rubric.render() if rubric is not None else None), tuple(labels))
        if len(self._systems) >= 4096:  # bounded: a dataset of per-row rubrics must not grow it forever
            self._systems.clear()
        self._systems[key] = hit
        return hit

    def render(self, request: JudgeRequest) -> RenderedPrompt:
        tpl = self._template(request)
        if request.rubric is not None:
            rubric: Rubric | None = request.rubric
        elif tpl.variants:
            rubric = choose_frozen(tpl.variants, request.id, self.shuffle_labels)
        else:
            rubric = None
        system, labels = self._system(tpl, request, rubric)
        tags = tpl.texts.tags
        sections: list[tuple[str, str]] = [(tags["input_tag"], request.prompt)]
        if request.reference is not None:
            sections.append((tags.get("reference_tag", EN_TAGS["reference_tag"]), request.reference))
        if request.task is TaskKind.MULTIPLE_CHOICE:
            sections.append((tags["options_tag"], request.options or ""))
        elif tpl.solution_tag is not None and request.responses:
            sections.append((tpl.solution_tag, request.responses[0]))
        else:
            headers = tpl.response_headers or (tags.get("response_tag", "Response"),) * len(request.responses)
            sections += zip(headers, request.responses)
        neutralized = 0
        if self.neutralize_headers:  # user text is data: escape what would read as the prompt's structure
            for i, (header, value) in enumerate(sections):
                if not may_change(value):
                    continue
                value, n = neutralize(value, self._headers)
                if n:
                    sections[i] = (header, value)
                    neutralized += n
        prompt = render_messages(system, tpl.texts, tpl.layout, sections, force_thinking=self._tgt_thinking)
        return RenderedPrompt(prompt, labels, neutralized)

    def render_within(self, request: JudgeRequest, max_tokens: int, count: Callable[[ChatPrompt], int]) -> RenderedPrompt:
        """`render`, with the responses cut when the prompt would take more than ``max_tokens`` tokens by
        ``count`` (see `mr3_reward.templates.fit.render_within`)."""
        return render_within(self.render, request, max_tokens, count)


def _with_labels(texts: Texts, labels: Sequence[str]) -> Texts:
    """A caller's rubric may use other labels than the template's: the schema's enum must follow it."""
    schema = json.loads(json.dumps(dict(texts.schema)))
    score = schema.get("properties", {}).get("score")
    if isinstance(score, dict):
        score["enum"] = list(labels)
        score["description"] = verdict_description(labels)
    return replace(texts, schema=schema)


def _schema_labels(schema: Mapping[str, Any], task: TaskKind) -> tuple[str, ...]:
    enum_ = schema.get("properties", {}).get("score", {}).get("enum")
    return tuple(str(x) for x in enum_) if enum_ else DEFAULT_LABELS[task]
