"""Rule checkers to put in front of the judge: ``MR3Reward(mode="binary", verifier=number_match)``.

A verifier is ``fn(prompt, completion, **columns) -> True | False | None``: ``True`` (right), ``False``
(wrong) or ``None`` (it cannot tell). With a verifier, the reward asks the judge only where the rule is
unsure (``ask_judge="unsure"``), also where it says wrong (``"not_true"``), or always, to compare the two
(``"always"``): a cascade that catches the rule's false negatives ("zweiundvierzig" for 42) at a share of
the judge's cost.
"""

from __future__ import annotations

import re
from typing import Any

# Decimal digits of the scripts people write answers in, mapped to ASCII (str.isdigit covers more, but
# also superscripts; these are the ones `int()` reads the same way).
_DIGITS = {c: str(i) for script in ("٠١٢٣٤٥٦٧٨٩", "۰۱۲۳۴۵۶۷۸۹", "०१२३४५६७८९", "০১২৩৪৫৬৭৮৯", "๐๑๒๓๔๕๖๗๘๙",
                                     "０１２３４５６７８９")
           for i, c in enumerate(script)}
_MINUS = "-−－"
# 1,234 / 1 234 / 1.234.567 / 1'234, with an optional decimal part after the other separator (1.234,5)
_GROUPED = re.compile(r"(?<![\d.,])([-−－]?)(\d{1,3}([,.'’  _ ])\d{3}(?:\3\d{3})*)(?:([.,])(\d+))?(?!\d)")
_PLAIN = re.compile(r"(?<![\d])([-−－]?)(\d+)(?:[.,](\d+))?(?!\d)")


def _ascii_digits(text: str) -> str:
    return "".join(_DIGITS.get(c, c) for c in text)


def read_numbers(text: str) -> list[float]:
    """Every number written in digits in ``text`` (any of the scripts above, thousands separated by ``,``
    ``.`` ``'`` or a space, a decimal point or comma), in order.

    >>> read_numbers("1,234 apples, ٤٢ pears and -3.5 °C; total ４２, or 1.234.567,5")
    [1234.0, 42.0, -3.5, 42.0, 1234567.5]
    """
    plain = _ascii_digits(text)
    found: list[tuple[int, float]] = []
    taken: list[tuple[int, int]] = []
    for m in _GROUPED.finditer(plain):
        sign, whole, sep, point, frac = m.groups()
        if sep == "." and whole.count(".") == 1 and point is None:
            continue  # "1.234" is a decimal number, read below
        if point == sep:
            continue  # "1,234,5": not a number we can read with confidence
        value = float(whole.replace(sep, "") + (f".{frac}" if frac else ""))
        found.append((m.start(), -value if sign else value))
        taken.append(m.span())
    for m in _PLAIN.finditer(plain):
        if any(a <= m.start() < b for a, b in taken):
            continue
        sign, whole, frac = m.groups()
        value = float(whole + (f".{frac}" if frac else ""))
        found.append((m.start(), -value if sign else value))
    return [v for _, v in sorted(found)]


def number_match(prompt: Any, completion: Any, reference: Any = None, **columns: Any) -> bool | None:
    """Whether the last number the completion writes in digits equals the reference answer.

    ``None`` when it cannot tell: no reference (or one with no number), or a completion with no number in
    digits, such as an answer in words ("forty-two", "四十二"), which the judge should read instead.

    >>> number_match("What is 6 x 7?", "The answer is 42.", reference="42")
    True
    >>> number_match("What is 6 x 7?", "It is ٤١.", reference="42")
    False
    >>> number_match("What is 6 x 7?", "zweiundvierzig", reference="42") is None
    True
    """
    if not isinstance(completion, str):
        completion = completion[-1].get("content", "") if isinstance(completion, list) and completion else ""
    expected = read_numbers(str(reference)) if reference is not None else []
    if not expected:
        return None
    found = read_numbers(completion)
    if not found:
        return None
    return abs(found[-1] - expected[-1]) < 1e-9
