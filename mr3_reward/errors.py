"""The package's error types, in one place so every module raises (and every caller catches) the same ones."""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(ValueError):
    """Bad input data; the message lists every problem found (up to 20) with where it is and how to fix it."""
