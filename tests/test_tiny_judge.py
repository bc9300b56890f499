"""Building a judge that checks answers: the verifiable items, the exact teacher, the reduced recipe.

The items and the teacher are pure and checked exhaustively on their own. The reduced recipe runs the
tiny-judge config on a couple of dozen rows with real engines (the exact teacher, SmolLM2-135M as the
difficulty model and as the student, a few SFT steps), checks every stage's report, that the alignment
filter dropped exactly the rows where the teacher injected an error, that the SFT loss falls, and that the
exported judge loads with no other flag. The full `make judge` run is a benchmark
(`python -m benchmarks judge_quality`), not a test.
"""

from __future__ import annotations

import json

import pytest

from mr3_reward.backends.base import GenerationRequest
from mr3_reward.templates import LanguageMode
from mr3_reward.types import Sampling

from training.items import SPLITS, ItemsConfig, draw_question, is_test_pair, iter_items
from training.numerals import LANGUAGES, forms_of, read_number, write_number
from training.phrasings import ANSWERS, HELD_OUT_NON_ANSWERS, NON_ANSWERS, QUESTIONS
from training.pipeline import ROOT, config_from_dict, load_config
from training.rows import Renderers
from training.teacher import ExactTeacher, solve

CONFIG = ROOT / "training" / "configs" / "tiny-judge.yaml"
STRATEGIES = ("en-prompt-en-thinking", "en-prompt-tgt-thinking", "tgt-prompt-en-thinking", "tgt-prompt-tgt-thinking")


def _request(renderers, row, mode, seed=0):
    rendered = renderers.render(row, mode)
    thinking = row["language"] if LanguageMode.parse(mode).tgt_thinking else "en"
    return GenerationRequest(prompt=rendered.prompt, sampling=Sampling(seed=seed), labels=rendered.labels,
                             thinking_language=thinking)


def _verdict(text):
    return json.loads(text.rpartition("</think>")[2])["score"]


# -- numbers ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("language", LANGUAGES)
def test_every_form_reads_back_as_written(language):
    numbers = [*range(-30, 160), 300, 480, 600, 700, 1000, 1001, 1200, 7000, 9990, 12000]
    for form in forms_of(language):
        for n in numbers:
            written = write_number(n, form, language)
            for phrasing in ANSWERS.get(language, ["{x}"]):
                assert read_number(phrasing.replace("{x}", written), language) == n, (form, n, phrasing)


def test_native_numerals_and_words_look_as_people_write_them():
    assert [write_number(42, "native", lang) for lang in ("zh", "ja", "ar", "hi", "th", "bn")] == \
        ["四十二", "四十二", "٤٢", "४२", "๔๒", "৪২"]
    assert write_number(42, "words", "de") == "zweiundvierzig" and write_number(105, "native", "zh") == "一百零五"
    with pytest.raises(ValueError, match="has no 'words' form"):
        write_number(3, "words", "zh")
    for text in NON_ANSWERS:
        assert read_number(text, "en") is None


# -- items ------------------------------------------------------------------------------------------------
def test_splits_share_no_operands_and_no_phrasings():
    config = ItemsConfig(items={"train": 400, "test": 150, "heldout_language": 40, "probes": 20})
    rows = {split: list(iter_items(config, split)) for split in SPLITS}
    assert {s: len(r) for s, r in rows.items()} == {"train": 400, "test": 150, "heldout_language": 40, "probes": 20}
    last = len(next(iter(QUESTIONS["arithmetic"].values()))) - 1
    assert all(r["language"] in config.languages and r["item"]["phrasing"] < last for r in rows["train"])
    assert all(r["item"]["phrasing"] == last for r in rows["test"])
    train_operands = {json.dumps(r["item"]["operands"]) for r in rows["train"]}
    for split in ("test", "heldout_language", "probes"):
        assert not train_operands & {json.dumps(r["item"]["operands"]) for r in rows[split]}, split
    assert {r["language"] for r in rows["heldout_language"]} == {"it"}
    assert all(r["task"] == "binary" and r["gold"] == "false" and r["responses"][0] in NON_ANSWERS[-HELD_OUT_NON_ANSWERS:]
               for r in rows["probes"])
    assert not any(r["responses"][0] in NON_ANSWERS[-HELD_OUT_NON_ANSWERS:] for r in rows["train"])
    # the operand split is a property of the question, so no test question's operands occur in training
    import random

    rng = random.Random(0)
    for _ in range(2000):
        q = draw_question(rng.choice(config.tasks), rng)
        assert is_test_pair(q, 0.25) == is_test_pair(draw_question_like(q), 0.25)
    forms = {r["item"]["form"] for r in rows["train"]}
    assert forms == {"digits", "words", "native", "none"}
    golds = [r["gold"] for r in rows["train"]]
    assert 0.3 < golds.count("Assistant A") / max(1, golds.count("Assistant A") + golds.count("Assistant B")) < 0.7


def draw_question_like(q):
    """The same question with symmetric operands swapped: it must fall in the same split."""
    from dataclasses import replace

    v = dict(q.values)
    if q.kind == "arithmetic" and v["op"] in "+×" or q.kind.startswith("comparison"):
        v["a"], v["b"] = v["b"], v["a"]
    return replace(q, values=v)


def test_wrong_answers_are_plausible_and_never_right():
    for row in iter_items(ItemsConfig(items={"train": 300}), "train"):
        item = row["item"]
        if item["wrong"] is not None:
            assert item["wrong"] != item["answer"]
            assert abs(item["wrong"] - item["answer"]) in (1, 10) or item["kind"] in ("arithmetic", "conversion",
                                                                                       "comparison")


def test_bad_item_settings_fail_at_load_with_every_problem():
    source = {"path": "v", "format": "verifiable", "split": "dev",
              "options": {"tasks": ["arithmetic", "algebra"], "languages": ["en", "xx"], "forms": ["roman"],
                          "heldout_language": "en", "colour": 1}}
    with pytest.raises(ValueError) as e:
        config_from_dict({"workdir": "x", "teacher": {"model": "t"}, "data": {"sources": [source]},
                          "sft": {"student": "s", "language_mode": "en-prompt-en-thinking"},
                          "distill": {"strategies": ["en-prompt-en-thinking"]}})
    message = str(e.value)
    for needle in ("unknown task 'algebra'", "unknown language 'xx'", "unknown form 'roman'", "'colour'",
                   "heldout_language 'en' is also in languages", "split 'dev'"):
        assert needle in message


# -- the exact teacher ------------------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, "0.1"])
def test_teacher_error_rate_outside_0_1_is_refused(rate):
    with pytest.raises(ValueError, match=r"error_rate must be in \[0, 1\)"):
        ExactTeacher(error_rate=rate)


def test_teacher_is_right_under_every_strategy_and_language(pack_dir):
    renderers = Renderers(pack_dir)
    teacher = ExactTeacher()
    rows = list(iter_items(ItemsConfig(items={"train": 120, "test": 60}), "train"))
    rows += list(iter_items(ItemsConfig(items={"train": 120, "test": 60}), "test"))
    for row in rows:
        for mode in STRATEGIES:
            out = teacher.generate([_request(renderers, row, mode)])[0]
            assert out.finish_reason == "stop" and _verdict(out.text) == row["gold"], (row, mode, out.text)
    assert solve("What is the capital of France?") is None
    unsolvable = teacher.generate([_request(Renderers(None), dict(rows[0], prompt="Tell me a joke."),
                                            "en-prompt-en-thinking")])[0]
    assert unsolvable.finish_reason == "error" and "cannot solve" in unsolvable.error


def test_teacher_reasons_in_the_strategy_language(pack_dir):
    renderers = Renderers(pack_dir)
    row = next(r for r in iter_items(ItemsConfig(languages=["de"], items={"train": 5}), "train") if r["task"] == "binary")
    english = teacher_text(renderers, row, "tgt-prompt-en-thinking")
    german = teacher_text(renderers, row, "tgt-prompt-tgt-thinking")
    assert "The reference is" in english and "Die Referenz ist" in german


def teacher_text(renderers, row, mode):
    return ExactTeacher().generate([_request(renderers, row, mode)])[0].text


def test_injected_errors_are_about_the_rate_and_flip_the_verdict():
    renderers = Renderers(None)
    rows = list(iter_items(ItemsConfig(items={"train": 400}), "train"))
    teacher = ExactTeacher(error_rate=0.2, seed=3)
    requests = [_request(renderers, r, "en-prompt-en-thinking") for r in rows]
    flipped = [teacher.injected(q) for q in requests]
    assert 0.14 < sum(flipped) / len(flipped) < 0.26
    for row, q, f in zip(rows, requests, flipped):
        assert (_verdict(teacher.generate([q])[0].text) == row["gold"]) != f


# -- the built judge loads with no flag -------------------------------------------------------------------
def test_a_judge_folder_records_its_language_mode(tmp_path):
    folder = tmp_path / "my-judge"
    folder.mkdir()
    assert LanguageMode.for_model(str(folder)) is LanguageMode.EN_PROMPT_EN_THINKING
    (folder / "mr3_training.json").write_text(json.dumps({"language_mode": "tgt-prompt-en-thinking"}))
    assert LanguageMode.for_model(str(folder)) is LanguageMode.TGT_PROMPT_EN_THINKING
    assert LanguageMode.for_model(str(folder), "en-prompt-en-thinking") is LanguageMode.EN_PROMPT_EN_THINKING
    (folder / "mr3_training.json").write_text(json.dumps({"language_mode": "klingon"}))
    with pytest.raises(ValueError, match="does not record a language mode"):
        LanguageMode.for_model(str(folder))


# -- the reduced recipe, real engines ---------------------------------------------------------------------
@pytest.mark.model
def test_reduced_recipe_builds_a_judge_that_loads_with_no_flag(tmp_path, pack_dir):
    """The tiny-judge recipe on 24 rows: the exact teacher, SmolLM2-135M (transformers) as the difficulty
    model and as the student for a few SFT steps. Every stage reports; the filter drops exactly the rows
    where the teacher injected an error; the loss falls; the exported folder loads in `Judge` as it is."""
    from mr3_reward import JudgeRequest
    from mr3_reward.judge import Judge

    from training.distill import teacher_judge
    from training.pipeline import Pipeline, export_judge

    overrides = [
        f"workdir={tmp_path / 'work'}",
        "data.sources=[{path: v, format: verifiable, split: train, "
        "options: {items: {train: 24}, seed: 5}}]",
        "teacher.backend_options={error_rate: 0.1, seed: 1}",
        "difficulty_model={model: smollm2-135m, backend: transformers, backend_options: {batch_size: 16}, "
        "sampling: {max_tokens: 8, temperature: 0.6, seed: 100, thinking_budget: 1, verdict: constrained, "
        "explanation_tokens: 1}}",
        "sft.learning_rate=2.0e-4", "sft.per_device_batch_size=2", "sft.logging_steps=1", "sft.save_steps=3",
        "sft.trainer_args={max_steps: 6, save_total_limit: 1}",
    ]
    config = load_config(CONFIG, overrides)
    pipeline = Pipeline(config)
    reports = pipeline.run()
    assert list(reports) == ["intake", "rubrics", "distill", "filter", "difficulty", "curriculum", "sft"]
    assert reports["intake"]["rows"] == 24 and set(reports["intake"]["by_task"]) == {"pairwise", "binary"}
    assert reports["distill"]["traces"] == 24 * len(STRATEGIES)
    assert set(reports["distill"]["by_strategy"]) == set(STRATEGIES)

    # Which rows did the teacher get wrong on purpose? Recomputed from the prompts, independently of the run.
    teacher = ExactTeacher(error_rate=0.1, seed=1)
    renderers = Renderers(pack_dir)
    sampling = config.teacher.make_sampling()
    rows = pipeline.workdir.load("intake").to_list()
    injected = set()
    for row in rows:
        for mode in STRATEGIES:
            judge = teacher_judge(teacher, sampling, renderers.get(mode, row["family"]), 0)
            seed = judge.sampling.seed
            if teacher.injected(_request(renderers, row, mode, seed=seed)):
                injected.add(row["id"])
    kept = {r["id"] for r in pipeline.workdir.load("filter").to_list()}
    assert injected and kept == {r["id"] for r in rows} - injected
    assert reports["filter"]["dropped"] == len(injected) and reports["filter"]["kept_unaligned_smoke_test"] == 0
    assert reports["filter"]["failed_by_reason"] == {"incorrect": len(injected)}

    assert reports["difficulty"]["rows"] == len(kept) and reports["difficulty"]["model_failures"] == 0
    assert sum(reports["difficulty"]["n_correct_histogram"].values()) == len(kept)
    assert reports["curriculum"]["rows"] == len(kept)
    losses = [e["loss"] for e in reports["sft"]["log"] if "loss" in e]
    assert len(losses) == 6 and sum(losses[-2:]) / 2 < losses[0], losses
    assert reports["sft"]["examples"] == len(kept) and reports["sft"]["dropped_too_long"] == 0

    out = export_judge(pipeline.model_dir(), tmp_path / "tiny-judge")
    info = json.loads((out / "mr3_training.json").read_text())
    assert info["language_mode"] == "en-prompt-en-thinking" and info["pack"] is None
    assert (pipeline.workdir.stage_dir("sft") / "snapshots" / "step-3" / "model.safetensors").is_file()
    judge = Judge(str(out), max_tokens=24, max_retries=0, thinking_budget=12, verdict="constrained",
                  explanation_tokens=4, temperature=0.0)
    assert judge.renderer.mode is LanguageMode.EN_PROMPT_EN_THINKING
    j = judge.judge([JudgeRequest(task="binary", prompt="What is 2 + 2?", responses=("4",), reference="4")])[0]
    assert j.failure is None and j.score in ("true", "false")


# -- the evaluation's arithmetic --------------------------------------------------------------------------
def test_evaluation_counts_both_orders_and_their_consistency():
    from benchmarks.judge_quality import GOALS, consistency, eval_rows, metrics, swapped

    splits = eval_rows(CONFIG)
    assert set(splits) == {"test", "heldout_language", "probes", "unlike"}
    pair = next(r for r in splits["test"] if r["task"] == "pairwise")
    twin = swapped(pair)
    assert twin["responses"] == pair["responses"][::-1] and twin["gold"] != pair["gold"]
    train = {json.dumps(r["item"]["operands"]) for r in iter_items(
        ItemsConfig.from_options(load_config(CONFIG).data.sources[0].options), "train")}
    assert not train & {json.dumps(r["item"]["operands"]) for r in splits["test"]}

    def v(score, gold):
        return {"score": score, "failure": None, "correct": score == gold}

    rows = [pair, twin]
    # right in one order, "Assistant A" in both: half right, never consistent
    assert consistency(list(zip(rows, [v("Assistant A", pair["gold"]), v("Assistant A", twin["gold"])]))) == 0.0
    # the same answer picked in both orders: consistent, and right or wrong together
    both = [v(pair["gold"], pair["gold"]), v(twin["gold"], twin["gold"])]
    assert consistency(list(zip(rows, both))) == 1.0
    m = metrics(rows, both)
    assert m["overall"] == m["pairwise"] == 1.0 and m["binary"] is None and m["judgments"] == 2
    assert set(GOALS) <= set(m)
