"""Tests for `mr3_reward.parsing`: a table of realistic judge outputs, prefix handling and labels. No model
is needed. The fuzzing and the pathological inputs live in tests/reliability/test_parser_fuzz.py, which
reuses this table as its seed answers."""

from __future__ import annotations

import doctest

import pytest

from mr3_reward import parsing
from mr3_reward.parsing import normalize_label, parse_judgment
from mr3_reward.types import Failure, Rubric

PAIR = ("Assistant A", "Assistant B")
PAIR_TIE = ("Assistant A", "Assistant B", "Tie", "Both Bad")
STRENGTH = tuple(str(i) for i in range(1, 8))
POINT = tuple(str(i) for i in range(1, 6))
BINARY = ("true", "false")
MCQ = ("A", "B", "C", "D")
LABEL_SETS = (PAIR, PAIR_TIE, STRENGTH, POINT, BINARY, MCQ)

FORCING = (
    "<think>Okay, I have to think explicitly and provide my answer in English. I will carefully examine all "
    "provided information and evaluate it according to the given rubric, then provide my answer in the "
    "required JSON format."
)

ANY = object()  # the explanation is not what the case is about

NO_ANSWER = Failure.NO_ANSWER.value
BAD_JSON = Failure.BAD_JSON.value
NOT_IN_RUBRIC = Failure.LABEL_NOT_IN_RUBRIC.value
TRUNCATED = Failure.TRUNCATED.value

EN_REASONING = (
    " Let me look at what the user asked: a Python function that removes duplicates from a list while "
    "keeping the order. Assistant A uses dict.fromkeys, which keeps insertion order since Python 3.7, and "
    "explains why. Assistant B converts to a set and back, which loses the order, so it does not meet the "
    "requirement. Both are concise, but only A is correct.\n\nSo A is clearly better."
)
DE_REASONING = (
    "Okay, ich muss die beiden Antworten vergleichen. Der Nutzer fragt nach der Hauptstadt von Australien. "
    "Assistent A sagt Sydney – das ist falsch, die Hauptstadt ist Canberra. Assistent B nennt Canberra und "
    "erklärt kurz, dass die Stadt als Kompromiss zwischen Sydney und Melbourne gegründet wurde. "
    "Damit ist B korrekt und hilfreicher."
)
ZH_REASONING = (
    "好的，我需要评估这个回答。用户问的是如何用中文写一封正式的请假邮件。回答给出了一个模板，"
    "结构清楚，但语气有些随意，而且缺少请假的具体日期和交接安排。整体来说是一个中等水平的回答，"
    "我会给3分。"
)
AR_REASONING = (
    "حسنًا، يجب أن أتحقق مما إذا كانت الإجابة صحيحة. السؤال: ما هو ناتج ٧ × ٨؟ الإجابة المقدمة هي ٥٤، "
    "لكن الناتج الصحيح هو ٥٦. إذن الإجابة خاطئة."
)
RU_REASONING = (
    "Хорошо, нужно оценить ответ. Пользователь просил краткое резюме статьи о климате. Ответ слишком "
    "длинный и содержит неточности в цифрах, но основная мысль передана верно."
)
JA_REASONING = "ユーザーは東京の観光地を尋ねています。アシスタントAは古い情報を含み、アシスタントBは正確で詳しいです。"


def case(text, labels, score, failure, explanation=ANY, *, id, prefix="", truncated=False, raw_score=ANY):
    return pytest.param(text, labels, prefix, truncated, score, failure, explanation, raw_score, id=id)


CASES = [
    case(
        EN_REASONING + '\n</think>\n\n{"explanation": "Assistant A keeps the order as required; Assistant B loses it.", "score": "Assistant A"}',
        PAIR, "Assistant A", None, "Assistant A keeps the order as required; Assistant B loses it.",
        id="en-clean-pairwise",
    ),
    case(
        'The required output format is {"explanation": "...", "score": "Assistant B"}, so I must pick one label. '
        'An example answer would be {"score": "Assistant B"}. But here A is more accurate and complete.'
        '\n</think>\n{"explanation": "A is more accurate.", "score": "Assistant A"}',
        PAIR, "Assistant A", None, "A is more accurate.", id="json-in-reasoning-ignored",
    ),
    case(
        DE_REASONING + '\n</think>\n```json\n{\n  "explanation": "Assistent B nennt korrekt Canberra, A nennt fälschlich Sydney.",\n  "score": "Assistant B"\n}\n```',
        PAIR, "Assistant B", None, "Assistent B nennt korrekt Canberra, A nennt fälschlich Sydney.", id="de-fenced-json",
    ),
    case(
        ZH_REASONING + '</think>\n```\n{"explanation": "模板结构清楚，但缺少日期和交接安排。", "score": "3"}\n```\n',
        POINT, "3", None, "模板结构清楚，但缺少日期和交接安排。", id="zh-bare-fence",
    ),
    case(
        AR_REASONING + "\n</think>\n{'explanation': 'الناتج الصحيح هو ٥٦ وليس ٥٤.', 'score': 'false'}",
        BINARY, "false", None, "الناتج الصحيح هو ٥٦ وليس ٥٤.", id="ar-python-dict-quotes",
    ),
    case(
        EN_REASONING + '</think>\n{"explanation": "Only A preserves order.", "score": "Assistant A"}\n\n'
        "I hope this evaluation helps! Let me know if you'd like a more detailed breakdown {or a table}.",
        PAIR, "Assistant A", None, "Only A preserves order.", id="trailing-prose-with-braces",
    ),
    case(
        "Both answers say the same thing in different words.</think>\nHere is my final verdict:\n\n"
        '{"explanation": "Both responses are equally correct and equally brief.", "score": "Tie"}',
        PAIR_TIE, "Tie", None, "Both responses are equally correct and equally brief.", id="leading-prose-tie",
    ),
    case(
        "A looks better at first.</think>\n"
        '{"explanation": "A is shorter.", "score": "Assistant A"}\n\n'
        "Wait, on second thought B's code actually runs while A's has a syntax error. Corrected answer:\n"
        '{"explanation": "B\'s code runs; A has a syntax error.", "score": "Assistant B"}',
        PAIR, "Assistant B", None, "B's code runs; A has a syntax error.", id="two-objects-last-wins",
    ),
    case(
        "Response 2 is somewhat better.</think>\n"
        '{"explanation": "Response 2 is slightly clearer.", "score": "6.0"}',
        STRENGTH, "6", None, id="strength-float-string",
    ),
    case(
        AR_REASONING.replace("خاطئة", "صحيحة") + '</think>{"explanation": "The answer is right.", "score": true}',
        BINARY, "true", None, "The answer is right.", id="binary-json-true",
    ),
    case(
        RU_REASONING + '</think>\n{"explanation": "Суть передана, но есть неточности.", "score": 4}',
        POINT, "4", None, "Суть передана, но есть неточности.", id="ru-int-score",
    ),
    case(RU_REASONING + '</think>\n{"score": 4.0, "explanation": "ok"}', POINT, "4", None, "ok", id="float-score"),
    case(
        EN_REASONING + '</think>{"explanation": "A is correct.", "score": "  assistant a "}',
        PAIR, "Assistant A", None, id="padded-lowercase-label",
    ),
    case(EN_REASONING + '</think>{"explanation": "A is correct.", "score": "A"}', PAIR, "Assistant A", None, id="bare-letter-a"),
    case(DE_REASONING + '</think>{"explanation": "B.", "score": "b"}', PAIR_TIE, "Assistant B", None, id="bare-letter-b-with-tie-labels"),
    case(
        "Neither response answers the question; both hallucinate a citation.</think>\n"
        '{"explanation": "Both invent sources.", "score": "both bad"}',
        PAIR_TIE, "Both Bad", None, id="both-bad-lowercase",
    ),
    case(
        "The question asks which gas plants absorb. A: oxygen, B: nitrogen, C: carbon dioxide, D: helium. "
        "Photosynthesis uses CO2.</think>\n"
        '{"explanation": "Plants absorb carbon dioxide for photosynthesis.", "score": "C"}',
        MCQ, "C", None, "Plants absorb carbon dioxide for photosynthesis.", id="mcq-c",
    ),
    case("Option C is right.</think>\n{\"score\": \"(c)\"}", MCQ, "C", None, None, id="mcq-parenthesized-lowercase"),
    case(EN_REASONING + "\n</think>", PAIR, None, NO_ANSWER, id="empty-after-think"),
    case(EN_REASONING + "\n</think>\n\n   \n", PAIR, None, NO_ANSWER, id="whitespace-after-think"),
    case("", PAIR, None, NO_ANSWER, id="empty-generation"),
    case(
        'I need to answer in the form {"explanation": "...", "score": "Assistant B"}. Let me first check A\'s claims one by one. '
        "The first claim is about the 1969 landing, which is correct. The second claim",
        PAIR, None, TRUNCATED, truncated=True, id="truncated-mid-thought-json-in-reasoning",
    ),
    case(
        EN_REASONING + '</think>\n{"explanation": "Assistant A keeps the order, while Assistant B',
        PAIR, None, TRUNCATED, truncated=True, id="truncated-partial-object",
    ),
    case(
        EN_REASONING + '</think>\n{"explanation": "A keeps order.", "score": "Assistant A"}',
        PAIR, "Assistant A", None, truncated=True, id="truncated-flag-but-complete-answer",
    ),
    case(
        EN_REASONING + '</think>{"explanation": "A is best.", "score": "Assistant C"}',
        PAIR, None, NOT_IN_RUBRIC, "A is best.", raw_score="Assistant C", id="assistant-c-not-in-rubric",
    ),
    case(
        "Response 2 is far better in every respect.</think>{\"explanation\": \"Much better.\", \"score\": 8}",
        STRENGTH, None, NOT_IN_RUBRIC, raw_score=8, id="eight-on-1-to-7",
    ),
    case('Mostly fine.</think>{"score": "4.5"}', POINT, None, NOT_IN_RUBRIC, raw_score="4.5", id="half-point"),
    case(
        "The proof is valid: each step follows from the previous one.</think>\nexplanation: every step is justified\nscore: true",
        BINARY, "true", None, "every step is justified", id="bare-score-true-no-braces",
    ),
    case(
        JA_REASONING + "</think>\n**Explanation:** Assistant B is accurate and detailed.\n\n**Score:** Assistant B\n",
        PAIR, "Assistant B", None, "Assistant B is accurate and detailed.", id="ja-markdown-bold-score",
    ),
    case(
        'Both responses are fine but A is more complete.\n{"explanation": "A is more complete.", "score": "Assistant A"}',
        PAIR, "Assistant A", None, "A is more complete.", id="no-think-small-model-json",
    ),
    case("I think the first answer is better because it is more polite.", PAIR, None, NO_ANSWER, id="no-think-prose-only"),
    case('Answer:\n{"explanation": "good", "scor', PAIR, None, BAD_JSON, id="no-think-broken-json"),
    case(
        "Let me think.</think> Hmm, actually I should double-check B's arithmetic: 17*3 = 51, correct.</think>\n"
        '{"explanation": "B\'s arithmetic is correct.", "score": "Assistant B"}',
        PAIR, "Assistant B", None, "B's arithmetic is correct.", id="think-close-twice",
    ),
    case(
        'A is better.</think>{"explanation": "A.", "score": "Assistant A"}</think>\n',
        PAIR, None, NO_ANSWER, id="answer-between-two-closes-nothing-after-last",
    ),
    case(EN_REASONING + "</think>\nI cannot decide between them.", PAIR, None, BAD_JSON, id="garbage-answer"),
    case(EN_REASONING + '</think>{"explanation": "A keeps order."}', PAIR, None, BAD_JSON, id="object-without-score"),
    case(EN_REASONING + '</think>{"score": "Assistant A"}', PAIR, "Assistant A", None, None, id="missing-explanation"),
    case('Fine.</think>{"explanation": 3, "score": "3"}', POINT, "3", None, "3", id="explanation-not-a-string"),
    case(
        EN_REASONING + '</think>\n{explanation: "A keeps the order.", score: "Assistant A"}',
        PAIR, "Assistant A", None, "A keeps the order.", id="unquoted-keys",
    ),
    case(
        DE_REASONING + '</think>\n{\n  "explanation": "B ist korrekt.",\n  "score": "Assistant B",\n}',
        PAIR, "Assistant B", None, "B ist korrekt.", id="trailing-comma",
    ),
    case(
        EN_REASONING + '</think>\n{"explanation": "A says "thank you" and answers; B does not.", "score": "Assistant A"}',
        PAIR, "Assistant A", None, 'A says "thank you" and answers; B does not.', id="unescaped-quotes-in-explanation",
    ),
    case(
        EN_REASONING + '</think>\n{"explanation": "A says "thanks", B does not.", "confidence": "high", "score": "Assistant A"}',
        PAIR, "Assistant A", None, 'A says "thanks", B does not.', id="broken-json-extra-key-between",
    ),
    case(
        EN_REASONING + '</think>\n{"explanation": "A uses `dict.fromkeys(xs)` and `{k: None}`; B writes `set(xs)` and a stray \\"}\\".", "score": "Assistant A"}',
        PAIR, "Assistant A", None, 'A uses `dict.fromkeys(xs)` and `{k: None}`; B writes `set(xs)` and a stray "}".',
        id="braces-and-escaped-quotes-in-explanation",
    ),
    case("Correct.</think>{'explanation': 'Right.', 'score': True}", BINARY, "true", None, "Right.", id="python-true"),
    case('Correct.</think>{"explanation": "Right.", "score": "TRUE"}', BINARY, "true", None, id="uppercase-true"),
    case(
        'I cannot judge this.</think>{"explanation": "Not enough information.", "score": null}',
        PAIR, None, NOT_IN_RUBRIC, "Not enough information.", raw_score=None, id="score-null",
    ),
    case(
        'B is better.</think>{"result": {"explanation": "B is right.", "score": "Assistant B"}}',
        PAIR, "Assistant B", None, "B is right.", id="nested-result-object",
    ),
    case("Wrong.</think>{'explanation': 'No.', 'score': false}", BINARY, "false", None, "No.", id="python-quotes-json-false"),
    case(
        AR_REASONING + '</think>{"explanation": "إجابة متوسطة.", "score": "٤"}', POINT, "4", None, id="arabic-indic-digit",
    ),
    case(
        'A.</think>{"Explanation": "A is right.", "Score": "Assistant A"}',
        PAIR, "Assistant A", None, "A is right.", id="capitalized-keys",
    ),
    case(
        'B.</think>{"explanation": "B is right.", "score": "Assistant B"}\n{"note": "evaluation complete"}',
        PAIR, "Assistant B", None, "B is right.", id="last-object-without-score-skipped",
    ),
    case('A.</think>{"explanation": "A.", "score": "Assistant A."}', PAIR, "Assistant A", None, id="label-with-full-stop"),
    case(
        RU_REASONING + '</think>\nМоя оценка:\nscore: 2 из 5', POINT, "2", None, id="ru-bare-score-with-trailing-words",
    ),
    case(JA_REASONING + '</think>{"score"："Assistant B"}', PAIR, "Assistant B", None, id="ja-fullwidth-colon"),
    case(
        EN_REASONING + '</think>{"explanation": "A is best.", "score": "Assistant C"}',
        PAIR, None, TRUNCATED, truncated=True, id="truncated-wins-over-bad-label",
    ),
    case(
        '<think>Echoed tag. A is better.</think>{"score": "Assistant A"}', PAIR, "Assistant A", None, id="engine-echoes-think-tag",
    ),
]


@pytest.mark.parametrize("text, labels, prefix, truncated, score, failure, explanation, raw_score", CASES)
def test_table(text, labels, prefix, truncated, score, failure, explanation, raw_score):
    j = parse_judgment(text, labels, prefix, truncated=truncated)
    assert (j.score, j.failure) == (score, failure)
    if explanation is not ANY:
        assert j.explanation == explanation
    if raw_score is not ANY:
        assert j.meta["raw_score"] == raw_score
    assert j.raw == text
    assert "</think>" not in (j.explanation or "")


def test_table_is_big_enough():
    assert len(CASES) >= 35


# ---------------------------------------------------------------------------------------------------
# Prefix and reasoning


def test_forcing_sentence_starts_the_reasoning():
    text = " A answers the question, B does not.\n</think>\n{\"explanation\": \"A answers.\", \"score\": \"Assistant A\"}"
    j = parse_judgment(text, PAIR, prefix=FORCING)
    assert j.score == "Assistant A"
    assert j.reasoning.startswith("Okay, I have to think explicitly and provide my answer in English.")
    assert j.reasoning.endswith("A answers the question, B does not.")
    assert "<think>" not in j.reasoning and "</think>" not in j.reasoning


def test_echoed_think_tag_is_not_in_the_reasoning():
    j = parse_judgment("<think>\nA is right.</think>{\"score\": \"Assistant A\"}", PAIR, prefix="<think>")
    assert j.reasoning == "A is right."
    assert j.score == "Assistant A"


def test_json_in_the_forcing_sentence_is_never_the_answer():
    prefix = '<think>I must end with {"explanation": "...", "score": "Assistant B"}.'
    assert parse_judgment(' A is better.</think>{"score": "Assistant A"}', PAIR, prefix).score == "Assistant A"
    # Without a </think>, only the generated text is searched, not the prompt's prefix.
    assert parse_judgment(" A is better, I think", PAIR, prefix).failure == NO_ANSWER


def test_truncated_keeps_the_partial_reasoning():
    j = parse_judgment(" Looking at A first, its second step", PAIR, prefix=FORCING, truncated=True)
    assert (j.score, j.failure) == (None, TRUNCATED)
    assert j.reasoning.startswith("Okay, I have to think explicitly")
    assert j.reasoning.endswith("its second step")


def test_no_think_tags_gives_empty_reasoning():
    j = parse_judgment('Short thought.\n{"score": "Assistant B"}', PAIR)
    assert (j.score, j.reasoning) == ("Assistant B", "")


def test_prefix_that_closes_thinking_makes_the_generation_the_answer():
    j = parse_judgment('{"explanation": "B.", "score": "Assistant B"}', PAIR, prefix="<think>\n\n</think>\n\n")
    assert (j.score, j.explanation, j.reasoning) == ("Assistant B", "B.", "")
    assert parse_judgment("no json here", PAIR, prefix="<think>\n\n</think>\n\n").failure == BAD_JSON


def test_reasoning_keeps_an_earlier_close_tag_and_explanation_comes_from_after_the_last():
    j = parse_judgment("one</think> two</think>{\"explanation\": \"x\", \"score\": \"A\"}", MCQ, "<think>")
    assert j.reasoning == "one</think> two"
    assert (j.score, j.explanation) == ("A", "x")


# ---------------------------------------------------------------------------------------------------
# Arguments, labels, meta


def test_rubric_is_accepted_as_labels():
    rubric = Rubric.from_mapping({"true": "The answer is right.", "false": "The answer is wrong."})
    assert parse_judgment('ok</think>{"score": "true"}', rubric).score == "true"


def test_empty_labels_is_a_caller_error():
    with pytest.raises(ValueError, match="parse_judgment needs the rubric's labels; got none"):
        parse_judgment('</think>{"score": "A"}', [])


def test_non_string_arguments_are_caller_errors():
    with pytest.raises(TypeError):
        parse_judgment(b'</think>{"score": "A"}', MCQ)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        parse_judgment('</think>{"score": "true"}', "true")  # a string is not a label list


def test_parsed_with_is_reported():
    assert parse_judgment('</think>{"score": "A"}', MCQ).meta["parsed_with"] == "json"
    assert parse_judgment("</think>{'score': 'A'}", MCQ).meta["parsed_with"] == "python_literal"
    assert parse_judgment("</think>score: A", MCQ).meta["parsed_with"] == "regex"


@pytest.mark.parametrize(
    "value, labels, expected",
    [
        ("Assistant A", PAIR, "Assistant A"),
        (" assistant b ", PAIR, "Assistant B"),
        ("**Assistant B**", PAIR, "Assistant B"),
        ("AssistantA", PAIR, "Assistant A"),
        ("assistant_b", PAIR, "Assistant B"),
        ("A", PAIR, "Assistant A"),
        ("A", MCQ, "A"),  # a bare letter is an option when options are the labels
        ("Assistant A", MCQ, None),
        ("C", PAIR, None),
        (4, STRENGTH, "4"),
        (4.0, STRENGTH, "4"),
        ("4.0", STRENGTH, "4"),
        ("04", STRENGTH, "4"),
        ("４", STRENGTH, "4"),  # full-width digit
        (4.5, STRENGTH, None),
        (True, BINARY, "true"),
        (False, BINARY, "false"),
        ("False", BINARY, "false"),
        (1, BINARY, None),  # 1 is a number, not a truth value
        (True, STRENGTH, None),  # and True is not 1
        (None, BINARY, None),
        (["A"], MCQ, None),
        ({"score": "A"}, MCQ, None),
        ("", MCQ, None),
        ("nan", STRENGTH, None),
        ("inf", STRENGTH, None),
        (10**5000, STRENGTH, None),  # beyond int->str limits: no crash
        ("x" * 100_000, MCQ, None),
    ],
    ids=lambda v: "huge-int" if isinstance(v, int) and v > 10**100 else repr(v)[:24],
)
def test_normalize_label(value, labels, expected):
    assert normalize_label(value, labels) == expected


def test_normalize_label_ambiguous_spelling_matches_nothing():
    assert normalize_label("a", ("A", "a", "B")) == "a"  # exact wins
    assert normalize_label(" A ", ("A", "a")) is None  # ambiguous once case is ignored


def test_doctests_run():
    result = doctest.testmod(parsing, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 5 and result.failed == 0


# Fuzzing (10k + 10k in CI, 100k under `slow`) and pathological inputs: tests/reliability/test_parser_fuzz.py


@pytest.mark.parametrize("obj", [
    {"explanation": "  A is right. ", "score": "Assistant A"},
    {"score": 3, "explanation": "three"},
    {"explanation": None, "score": "A"},
    {"explanation": 7, "score": "A"},
    {"explanation": "", "score": ["A"]},
])
def test_trained_answer_shape_reads_as_the_general_reading(obj):
    # `_answer_in` reads an object of exactly the trained keys directly; another key sends the same object
    # the general way (it changes nothing there), so both readings must agree.
    from mr3_reward.parsing.objects import _answer_in

    assert _answer_in(obj, "json") == _answer_in({**obj, "other": 1}, "json")
