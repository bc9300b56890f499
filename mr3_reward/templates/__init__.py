"""Rendering: (request, rubric, language mode) -> the two chat messages and assistant prefix mR3 expects.

An mR3 prompt is assembled from known parts only, by concatenation: no ``str.format`` ever runs over
user text, so braces, ``%s`` or backslashes in a completion render unchanged and cannot inject.

The byte layout follows what the models were trained on (see ``render_reference`` and the golden-file
test): every template line after the first is indented by 4 spaces, inserted values are not
re-indented, and task families differ only in three whitespace joints, captured by `Layout`.

One module per concern, in the order a request flows through them: ``modes`` (which language the
template text and the reasoning are in), ``builtin`` (our English templates) or ``packs`` (official
rubric packs) for the words, ``variants`` (the rubric variant a sample id picks), ``neutralization``
(forged headers in user text), ``layout`` (the byte layout), ``renderer`` (`Renderer`, and the
`TEMPLATE_VERSION` of what it renders), ``rendered`` (`RenderedPrompt`, what it gives), ``fit`` (the
judge's input limit) and ``reference`` (the reference implementation's rendering).
"""

from mr3_reward.templates.builtin import BUILTIN, DEFAULT_LABELS, FORCING_EN, SYSTEM_LINE_EN, BuiltinTemplate
from mr3_reward.templates.fit import TEMPLATE_ALLOWANCE, TRUNCATION_MARK, approx_tokens, prompt_bytes
from mr3_reward.templates.layout import (
    CLASSIFY,
    PAIR,
    SOLUTION,
    Layout,
    Texts,
    render_messages,
    render_system,
    render_user,
)
from mr3_reward.templates.modes import LanguageMode
from mr3_reward.templates.neutralization import header_keys, neutralize
from mr3_reward.templates.packs import RubricPack
from mr3_reward.templates.reference import conversation_text, render_reference
from mr3_reward.templates.rendered import RenderedPrompt
from mr3_reward.templates.renderer import TEMPLATE_VERSION, Renderer
from mr3_reward.templates.variants import choose_rubric, stable_seed

__all__ = [
    "BUILTIN",
    "CLASSIFY",
    "DEFAULT_LABELS",
    "FORCING_EN",
    "PAIR",
    "SOLUTION",
    "SYSTEM_LINE_EN",
    "TEMPLATE_ALLOWANCE",
    "TEMPLATE_VERSION",
    "TRUNCATION_MARK",
    "BuiltinTemplate",
    "LanguageMode",
    "Layout",
    "RenderedPrompt",
    "Renderer",
    "RubricPack",
    "Texts",
    "approx_tokens",
    "choose_rubric",
    "conversation_text",
    "header_keys",
    "neutralize",
    "prompt_bytes",
    "render_messages",
    "render_reference",
    "render_system",
    "render_user",
    "stable_seed",
]
