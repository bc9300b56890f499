"""Verifiable multilingual items: questions with one right number, and answers to judge, made here.

A source for judges that check answers, generated (nothing is downloaded): ``python -m training.items``
writes rows in the ``native`` format (`mr3 judge --input` rows plus ``gold``); the pipeline reads the
same rows through the ``verifiable`` source format.

- **Tasks**: ``arithmetic`` (+ − × ÷, small operands), ``conversion`` (units), ``comparison`` (the larger
  or smaller of two numbers) and ``counting`` (the entries of a list).
- **Languages**: see `training.numerals.LANGUAGES`, each with three question and three answer phrasings
  (`training.phrasings`).
- **Answer forms**: ``digits``, ``words``, ``native`` where the language has it (`training.numerals`).
- **Wrong answers look plausible**: off by one, off by ten, a sign error, the wrong operation (or unit factor,
  or the other number).
- **Items**: ``pairwise`` (two answers, no reference: the judge must solve the question) and ``binary`` (one
  answer and the reference; a share of them answer nothing at all, which is never correct).

Splits (``split=``):

| split | operands | phrasings | languages |
|---|---|---|---|
| ``train`` | train pairs | all but the last of each list | ``languages`` |
| ``test`` | held-out pairs, never in train | the held-out (last) phrasings | ``languages`` |
| ``heldout_language`` | held-out pairs | all | ``heldout_language`` only |
| ``probes`` | held-out pairs | the held-out non-answers ("Thought process:", ":" ...) | ``languages`` |

Operand pairs go to train or test by a stable hash (``test_share``), so the split never depends on how
many items are drawn.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from training.numerals import FORMS, LANGUAGES, forms_of, write_number
from training.phrasings import ANSWERS, HELD_OUT_NON_ANSWERS, NON_ANSWERS, QUESTIONS, UNITS

TASKS = ("arithmetic", "conversion", "comparison", "counting")
SPLITS = ("train", "test", "heldout_language", "probes")
ITEMS_VERSION = 1
OPS = ("+", "−", "×", "÷")


@dataclass
class ItemsConfig:
    """What to generate (the ``options`` of a ``verifiable`` source).

    tasks, languages, forms (`list[str]`): which task kinds, languages and answer forms to use.
    heldout_language (`str`, *optional*): a language kept out of ``train``, for the ``heldout_language`` split.
    items (`dict[str, int]`): how many rows per split.
    pairwise_share (`float`): the share of pairwise items (the rest are binary).
    non_answer_share (`float`): the share of binary items whose response states no number.
    test_share (`float`): the share of operand pairs held out for the evaluation splits.
    seed (`int`): the draw.
    """

    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    languages: list[str] = field(default_factory=lambda: ["en", "de", "es", "fr", "ru", "zh", "ja", "th", "bn"])
    forms: list[str] = field(default_factory=lambda: list(FORMS))
    heldout_language: str | None = "it"
    items: dict[str, int] = field(default_factory=lambda: {"train": 800, "test": 240, "heldout_language": 48,
                                                           "probes": 24})
    pairwise_share: float = 0.5
    non_answer_share: float = 0.08
    test_share: float = 0.25
    seed: int = 0

    def problems(self, where: str = "options") -> list[str]:
        out = []
        for name, values, known in (("tasks", self.tasks, TASKS), ("languages", self.languages, LANGUAGES),
                                    ("forms", self.forms, FORMS)):
            if not values:
                out.append(f"{where}.{name} is empty; use some of: {', '.join(known)}")
            for v in values or []:
                if v not in known:
                    out.append(f"{where}.{name}: unknown {name[:-1]} {v!r}; known: {', '.join(known)}")
        if self.heldout_language is not None:
            if self.heldout_language not in LANGUAGES:
                out.append(f"{where}.heldout_language: unknown language {self.heldout_language!r}; known: "
                           f"{', '.join(LANGUAGES)}")
            elif self.heldout_language in (self.languages or []):
                out.append(f"{where}.heldout_language {self.heldout_language!r} is also in languages: a held-out "
                           "language must not be trained on")
        for split, n in (self.items or {}).items():
            if split not in SPLITS:
                out.append(f"{where}.items: unknown split {split!r}; splits: {', '.join(SPLITS)}")
            elif not isinstance(n, int) or n < 0:
                out.append(f"{where}.items.{split} must be a count >= 0, got {n!r}")
        for name in ("pairwise_share", "non_answer_share"):
            if not 0 <= getattr(self, name) <= 1:
                out.append(f"{where}.{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0 < self.test_share < 1:
            out.append(f"{where}.test_share must be in (0, 1), got {self.test_share}")
        return out

    @classmethod
    def checked(cls, options: Mapping[str, Any], where: str = "options") -> tuple[ItemsConfig | None, list[str]]:
        """The settings built from ``options``, and every problem with them (None when they cannot be built)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        problems = [f"{where}: unknown key(s) {unknown}; known: {', '.join(sorted(known))}"] if unknown else []
        try:
            config = cls(**{k: v for k, v in options.items() if k in known})
        except TypeError as exc:
            return None, [*problems, f"{where}: {exc}"]
        return config, problems + config.problems(where)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], where: str = "options") -> ItemsConfig:
        """Build and validate; every problem is reported at once."""
        config, problems = cls.checked(options, where)
        if problems:
            raise ValueError(f"{len(problems)} problem(s) in the item settings:\n- " + "\n- ".join(problems))
        return config


# --------------------------------------------------------------------------------------------------
# Questions: operands, the right answer and plausible wrong ones
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Question:
    kind: str        # a QUESTIONS key
    values: dict     # the placeholders' values (a, b, op, v, unit, list)
    answer: int
    wrong: tuple[int, ...]  # plausible wrong answers, distinct from the answer

    def operands(self) -> tuple:
        """What the train/test split is drawn on: the operands, order-free for symmetric questions."""
        v = self.values
        if self.kind == "arithmetic":
            pair = (v["a"], v["b"]) if v["op"] in "−÷" else tuple(sorted((v["a"], v["b"])))
            return (v["op"], *pair)
        if self.kind == "conversion":
            return (v["unit"], v["v"])
        if self.kind == "counting":
            return (tuple(v["list"]),)
        return ("cmp", *sorted((v["a"], v["b"])))


def _apply(op: str, a: int, b: int) -> int:
    return {"+": a + b, "−": a - b, "×": a * b, "÷": a // b}[op]


def _plausible(answer: int, extra: list[int], rng: random.Random, sign_error: bool) -> tuple[int, ...]:
    wrong = [answer + 1, answer - 1, answer + 10, answer - 10, *extra]
    if sign_error and answer:
        wrong.append(-answer)
    wrong = sorted({w for w in wrong if w != answer and w >= (-1000 if sign_error else 0)})
    rng.shuffle(wrong)
    return tuple(wrong)


def draw_question(task: str, rng: random.Random) -> Question:
    """One question of a task kind, with its answer and plausible wrong answers."""
    if task == "arithmetic":
        op = rng.choice(OPS)
        if op == "+":
            a, b = rng.randint(2, 49), rng.randint(2, 49)
        elif op == "−":
            a = rng.randint(11, 99)
            b = rng.randint(2, a - 1)
        elif op == "×":
            a, b = rng.randint(2, 12), rng.randint(2, 12)
        else:
            b, q = rng.randint(2, 12), rng.randint(2, 12)
            a = b * q
        answer = _apply(op, a, b)
        others = [_apply(o, a, b) for o in OPS if o != op and (o != "÷" or a % b == 0)]
        return Question("arithmetic", {"a": a, "b": b, "op": op}, answer, _plausible(answer, others, rng, True))
    if task == "conversion":
        (unit, factor) = rng.choice(list(UNITS))
        v = rng.randint(2, 12)
        answer = v * factor
        others = [v * f for f in (10, 100, 1000, 60) if f != factor] + [v]
        return Question("conversion", {"v": v, "unit": unit}, answer, _plausible(answer, others, rng, False))
    if task == "comparison":
        a, b = rng.sample(range(2, 100), 2)
        kind = rng.choice(("comparison_max", "comparison_min"))
        answer = max(a, b) if kind == "comparison_max" else min(a, b)
        other = b if answer == a else a
        return Question(kind, {"a": a, "b": b}, answer, (other, *_plausible(answer, [], rng, True)[:2]))
    if task == "counting":
        items = [rng.randint(0, 9) for _ in range(rng.randint(3, 9))]
        answer = len(items)
        return Question("counting", {"list": items}, answer, _plausible(answer, [], rng, False)[:3])
    raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")


def question_text(question: Question, language: str, phrasing: str) -> str:
    v = question.values
    fill = {"a": str(v.get("a")), "b": str(v.get("b")), "op": v.get("op", ""), "v": str(v.get("v"))}
    if question.kind == "conversion":
        unit = next(u for u in UNITS if u[0] == v["unit"])
        fill["big"], fill["small"] = UNITS[unit][language]
    if question.kind == "counting":
        fill["list"] = ", ".join(map(str, v["list"]))
    out = phrasing
    for key, value in fill.items():  # known placeholders only, never str.format
        out = out.replace("{" + key + "}", value)
    return out


def _stable(*parts: Any) -> float:
    """A number in [0, 1) that depends only on ``parts`` (not on Python's salted hash)."""
    h = hashlib.sha256(json.dumps(parts, ensure_ascii=False, default=str).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def is_test_pair(question: Question, test_share: float) -> bool:
    return _stable("split", question.kind.split("_")[0], question.operands()) < test_share


# --------------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------------
def _phrasings(texts: list[str], split: str) -> list[str]:
    if split == "train":
        return texts[:-1]
    if split == "test":
        return texts[-1:]
    return texts


def _answer(n: int, form: str, language: str, phrasing: str) -> str:
    return phrasing.replace("{x}", write_number(n, form, language))


def iter_items(config: ItemsConfig, split: str) -> Iterator[dict[str, Any]]:
    """Rows of one split, in the ``native`` format, with ``gold`` and the item's facts (``item``: task kind,
    answer, operands, question phrasing index, the deciding answer's form, the wrong answer)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")
    languages = [config.heldout_language] if split == "heldout_language" else list(config.languages)
    if split == "heldout_language" and config.heldout_language is None:
        return
    rng = random.Random(f"{config.seed}:{split}")
    want_test = split != "train"
    made = 0
    while made < config.items.get(split, 0):
        task = rng.choice(config.tasks)
        question = draw_question(task, rng)
        if is_test_pair(question, config.test_share) != want_test:
            continue
        language = rng.choice(languages)
        forms = [f for f in config.forms if f in forms_of(language)] or ["digits"]
        phrasing = rng.choice(_phrasings(QUESTIONS[question.kind][language], split))
        prompt = question_text(question, language, phrasing)
        answers = _phrasings(ANSWERS[language], split)
        facts = {"kind": task, "answer": question.answer, "operands": json.loads(json.dumps(question.operands())),
                 "phrasing": QUESTIONS[question.kind][language].index(phrasing)}
        wrong = rng.choice(question.wrong)
        pairwise = split != "probes" and rng.random() < config.pairwise_share
        row: dict[str, Any] = {"id": f"{split}-{made}", "language": language, "source": f"verifiable-{split}"}
        row["family"] = "strict_pair/math" if pairwise else "mgsm"  # the pack templates for target-language prompts
        if pairwise:
            form_right, form_wrong = rng.choice(forms), rng.choice(forms)
            right = _answer(question.answer, form_right, language, rng.choice(answers))
            bad = _answer(wrong, form_wrong, language, rng.choice(answers))
            first_right = rng.random() < 0.5
            row.update(task="pairwise", prompt=prompt, responses=[right, bad] if first_right else [bad, right],
                       gold="Assistant A" if first_right else "Assistant B",
                       item={**facts, "form": form_right, "forms": [form_right, form_wrong], "wrong": wrong})
        else:
            non_answer = split == "probes" or rng.random() < config.non_answer_share
            correct = not non_answer and rng.random() < 0.5
            form = rng.choice(forms)
            if non_answer:
                pool = NON_ANSWERS[-HELD_OUT_NON_ANSWERS:] if split == "probes" else NON_ANSWERS[:-HELD_OUT_NON_ANSWERS]
                response, form = rng.choice(pool), "none"
            else:
                response = _answer(question.answer if correct else wrong, form, language, rng.choice(answers))
            row.update(task="binary", prompt=prompt, responses=[response], reference=str(question.answer),
                       gold="true" if correct else "false",
                       item={**facts, "form": form, "forms": [form], "wrong": None if correct or non_answer else wrong})
        made += 1
        yield row


def items_digest(config: ItemsConfig, split: str) -> str:
    """What a generated source's rows are: the settings, the split and the generator's version."""
    return "items:" + hashlib.sha256(json.dumps([ITEMS_VERSION, asdict(config), split], sort_keys=True)
                                     .encode()).hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.items", description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=SPLITS, default="train")
    parser.add_argument("--out", default="-", help="a .jsonl file (default: standard output)")
    parser.add_argument("--set", dest="options", action="append", default=[], metavar="KEY=JSON",
                        help='an ItemsConfig field, e.g. --set languages=\'["en","de"]\' --set items=\'{"train": 50}\'')
    args = parser.parse_args(argv)
    try:
        config = ItemsConfig.from_options({k: json.loads(v) for k, _, v in (o.partition("=") for o in args.options)})
    except (ValueError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    lines = [json.dumps(row, ensure_ascii=False) + "\n" for row in iter_items(config, args.split)]
    if args.out == "-":
        sys.stdout.writelines(lines)
    else:
        with open(args.out, "w", encoding="utf-8") as f:
            f.writelines(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
