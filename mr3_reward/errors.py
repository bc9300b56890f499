"""The package's error types, in one place so every module raises (and every caller catches) the same ones."""

from __future__ import annotations

__all__ = ["ConfigError", "InputError"]


class InputError(ValueError):
    """Bad input data; the message lists every problem found (up to 20) with where it is and how to fix it."""


class ConfigError(ValueError, TypeError):
    """Bad constructor arguments; the message lists every problem found, each with how to fix it.

    One message may mix wrong types and out-of-range values, so it is both a `ValueError` and a `TypeError`:
    code that caught either for one argument keeps working now that every argument is checked at once.
    """
