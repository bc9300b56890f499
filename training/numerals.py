"""Numbers as people write them: digits, number words and native numerals, in both directions.

The verifiable items (`training.items`) write answers in three forms, and the teacher that stands in for
a real one (`training.teacher`) reads them back:

| form | what it is | languages |
|---|---|---|
| ``digits`` | ``42``, ``-7`` | all |
| ``words`` | ``forty-two``, ``zweiundvierzig``, ``сорок два`` (via ``num2words``) | en de es fr it ru ar th |
| ``native`` | the language's own numerals: ``四十二`` (zh, ja), ``٤٢`` (ar), ``४२`` (hi), ``๔๒`` (th), ``৪২`` (bn) | zh ja ar hi th bn |

Reading is by lookup: every form of every number in ``READ_RANGE`` is generated once per language and
inverted, so ``read_number`` reads exactly what ``write_number`` writes (and digits in any script).
"""

from __future__ import annotations

import functools
import re

FORMS = ("digits", "words", "native")
WORD_LANGUAGES = ("en", "de", "es", "fr", "it", "ru", "ar", "th")
NATIVE_LANGUAGES = ("zh", "ja", "ar", "hi", "th", "bn")
LANGUAGES = ("en", "de", "es", "fr", "it", "ru", "zh", "ja", "th", "bn", "ar", "hi")
READ_RANGE = range(-1000, 20001)

_DIGIT_SCRIPTS = {"ar": "٠١٢٣٤٥٦٧٨٩", "hi": "०१२३४५६७८९", "th": "๐๑๒๓๔๕๖๗๘๙", "bn": "০১২৩৪৫৬৭৮৯"}
_ALL_DIGITS = {c: str(i) for script in (*_DIGIT_SCRIPTS.values(), "０１２３４５６７８９") for i, c in enumerate(script)}
_CJK_DIGITS = "零一二三四五六七八九"
_MINUS = {"zh": "负", "ja": "マイナス", "hi": "-"}


def forms_of(language: str) -> tuple[str, ...]:
    """The answer forms a language has (``digits`` always)."""
    return ("digits",) + (("words",) if language in WORD_LANGUAGES else ()) + (
        ("native",) if language in NATIVE_LANGUAGES else ())


def _chinese(n: int) -> str:
    """Chinese numerals for 0 <= n < 100000 (一万二千, 一百零五, 十二)."""
    if n == 0:
        return _CJK_DIGITS[0]
    out, zero_pending = "", False
    for value, unit in ((10000, "万"), (1000, "千"), (100, "百"), (10, "十"), (1, "")):
        d, n = divmod(n, value)
        if d:
            if zero_pending:
                out += _CJK_DIGITS[0]
            out += ("" if d == 1 and unit == "十" and not out else _CJK_DIGITS[d]) + unit
            zero_pending = False
        elif out:
            zero_pending = True
    return out


def write_number(n: int, form: str, language: str) -> str:
    """``n`` in ``form`` for ``language``; raises ValueError for a form the language does not have.

    >>> write_number(42, "words", "de"), write_number(42, "native", "zh"), write_number(-42, "native", "ar")
    ('zweiundvierzig', '四十二', '-٤٢')
    """
    if form not in forms_of(language):
        raise ValueError(f"language {language!r} has no {form!r} form; it has {', '.join(forms_of(language))}")
    if form == "digits":
        return str(n)
    if form == "words":
        from num2words import num2words

        return num2words(n, lang=language)
    sign = _MINUS.get(language, "-") if n < 0 else ""
    if language in _DIGIT_SCRIPTS:
        return sign + "".join(_DIGIT_SCRIPTS[language][int(c)] for c in str(abs(n)))
    if language == "ja":
        from num2words import num2words

        return sign + num2words(abs(n), lang="ja")
    return sign + _chinese(abs(n))


def _norm(text: str) -> str:
    return re.sub(r"[\s\-‐]+", " ", text.lower()).strip(" .,!?。、！？")


@functools.lru_cache(maxsize=None)
def _table(language: str) -> dict[str, int]:
    table: dict[str, int] = {}
    for form in forms_of(language):
        if form == "digits":
            continue
        for n in READ_RANGE:
            table.setdefault(_norm(write_number(n, form, language)), n)
    return table


_DIGITS_RE = re.compile(r"[-−]?\d+")


def read_number(text: str, language: str) -> int | None:
    """The number a short answer states, in any form ``write_number`` writes; None when it states none.

    Number words are found as the longest run of words that spells a number; digits in any script count.

    >>> read_number("Die Antwort ist zweiundvierzig.", "de"), read_number("答案是四十二。", "zh")
    (42, 42)
    >>> read_number("Let's solve this step by step.", "en") is None
    True
    """
    plain = "".join(_ALL_DIGITS.get(c, c) for c in text)
    found = _DIGITS_RE.findall(plain)
    if found:
        return int(found[-1].replace("−", "-"))
    table = _table(language) if language in LANGUAGES else {}
    words = _norm(plain).split(" ")
    if language in ("zh", "ja", "th"):  # no spaces: the longest numeral substring
        s = "".join(words)
        best = max((s[i:j] for i in range(len(s)) for j in range(i + 1, len(s) + 1)
                    if s[i:j] in table), key=len, default=None)
        return None if best is None else table[best]
    for size in range(len(words), 0, -1):
        for i in range(len(words) - size + 1):
            span = " ".join(words[i:i + size])
            if span in table:
                return table[span]
    return None
