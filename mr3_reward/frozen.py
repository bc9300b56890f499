"""Building frozen dataclasses on the per-judgment path.

A frozen dataclass's generated ``__init__`` sets each field with ``object.__setattr__``, which is about half
the cost of building one. The few objects made once per judgment (the rendered and chat prompts, the engine
request, the judgment) are built with `built` instead; everything else uses the constructors.
"""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")


def built(cls: type[T], fields: dict[str, Any]) -> T:
    """``cls(**fields)`` for a frozen dataclass without ``__post_init__``, at about half the cost.

    Nothing is checked or defaulted: ``fields`` names every field of ``cls`` (tests/test_judge.py checks the
    objects the judging loop builds this way).

    >>> from mr3_reward.backends.base import ChatPrompt
    >>> built(ChatPrompt, {"system": "s", "user": "u", "prefix": "<think>"}) == ChatPrompt("s", "u", "<think>")
    True
    """
    obj = object.__new__(cls)
    obj.__dict__.update(fields)
    return obj
