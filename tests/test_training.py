"""The training toolkit, stage by stage, then end to end.

Stage tests use a scripted teacher whose correctness is set per row and strategy, so each assertion
checks the recipe's definition (the alignment filter keeps exactly the all-correct rows, the curriculum
order is easy to hard with length tie-breaks, SFT sees rows in that order). The end-to-end test runs the
tiny CPU config through all stages with the scripted teacher and a real SFT of `tiny-random`, then
loads the checkpoint in `Judge`. A separate test runs the real SmolLM2 teacher through distillation,
and one kills a pipeline mid-distillation and checks that the re-run resumes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mr3_reward.backends.base import ChatPrompt
from mr3_reward.backends.fake import FakeBackend
from mr3_reward.types import Sampling

from training.curriculum import CurriculumConfig, DifficultyConfig, order_rows, score_difficulty
from training.distill import STRATEGIES, DistillConfig, distill
from training.filtering import FilterConfig, alignment_filter
from training.intake import IntakeConfig, SourceSpec, intake
from training.pipeline import ROOT, Pipeline, config_from_dict, load_config
from training.rows import ROW_COLUMNS, Renderers, decode_rubric
from training.rubrics import RubricConfig, write_rubrics
from training.sft import SFTSettings, build_examples, build_trainer, completion_text

torch.set_num_threads(1)  # the CI machine has 2 cores, shared

CONFIGS = ROOT / "training" / "configs"
EN_PP, TGT_EN, TGT_TGT = STRATEGIES[0], STRATEGIES[1], STRATEGIES[2]
EN_EN = "en-prompt-en-thinking"
_ENUM = re.compile(r"'enum': (\[[^\]]*\])")


# --------------------------------------------------------------------------------------------------
# A scripted teacher: answers judge prompts right or wrong per (row, strategy, sample), writes rubrics
# --------------------------------------------------------------------------------------------------
def strategy_of(prompt: ChatPrompt) -> str:
    """Which language mode rendered a prompt (for non-English rows all four differ). The response-format
    header tells the template language ("Instruction" is also French)."""
    english_template = "# Response Format\n" in prompt.system
    forced = prompt.prefix != "<think>"
    return {(True, True): EN_PP, (False, False): TGT_EN, (False, True): TGT_TGT, (True, False): EN_EN}[
        (english_template, forced)]


class ScriptedTeacher(FakeBackend):
    """verdict(row, strategy, sample) -> True (gold), False (another label) or None (no verdict).

    Records every judged (row id, strategy, sample) in ``seen``. Rubric prompts get a valid rubric
    (or labels ``yes``/``no`` for sources in ``bad_sources``).
    """

    def __init__(self, rows, verdict=lambda row, strategy, k: True, *, base_seed=0, bad_sources=(), words=None):
        self.rows = sorted(rows, key=lambda r: -len(r["prompt"]))  # longest first: no prompt shadows another
        self.verdict = verdict
        self.base_seed = base_seed
        self.bad_sources = set(bad_sources)
        self.words = words or (lambda row: 3)
        self.seen: list[tuple[str, str, int]] = []
        super().__init__(self._respond, model_id="scripted-teacher")

    def _row(self, user: str):
        return next(r for r in self.rows if r["prompt"] in user)

    def _respond(self, prompt: ChatPrompt, sampling: Sampling) -> str:
        if prompt.system.startswith("You write evaluation rubrics"):
            return self._rubric(prompt)
        row = self._row(prompt.user)
        strategy, k = strategy_of(prompt), (sampling.seed or 0) - self.base_seed
        self.seen.append((row["id"], strategy, k))
        ok = self.verdict(row, strategy, k)
        thought = " ".join(["think"] * self.words(row))
        if ok is None:
            return thought  # never closes its thought: no verdict
        labels = json.loads(_ENUM.search(prompt.system).group(1).replace("'", '"'))
        score = row["gold"] if ok else next(x for x in labels if x != row["gold"])
        return f"{thought}</think>\n{{\"explanation\": \"scripted\", \"score\": \"{score}\"}}"

    def _rubric(self, prompt: ChatPrompt) -> str:
        user = prompt.user
        if "each once:" in user:  # a first draft
            source = re.search(r"from the source '([^']+)'", user).group(1)
            labels = re.findall(r"'([^']+)'", user.split("each once:")[1].splitlines()[0])
            if source in self.bad_sources:
                labels = ["yes", "no"]
            lines = "\n".join(f"- {label}: when {label} fits best." for label in labels)
            return f"<think>plan</think>TASK: Judge {source} data carefully.\nRUBRIC:\n{lines}\nThat is all."
        # paraphrase or translation: echo the rubric with new descriptions
        block = user.rsplit("RUBRIC:\n", 1)[1]
        task = re.search(r"TASK: (.*)\nRUBRIC", user, re.S).group(1)
        tag = "übersetzt" if "into German" in user else "reworded"
        lines = "\n".join(f"{line.partition(':')[0]}: {tag} {line.partition(':')[2].strip()}"
                          for line in block.splitlines() if ":" in line)
        return f"TASK: {tag} {task}\nRUBRIC:\n{lines}"


def make_row(i: int, lang: str = "de", gold: str = "Assistant A", **extra) -> dict:
    row = {k: None for k in ROW_COLUMNS}
    row.update(id=f"q{i:02d}", source="t", task="pairwise", language=lang, prompt=f"[q{i:02d}] Frage Nummer {i}?",
               responses=[f"Antwort eins zu {i}.", f"Antwort zwei zu {i}."], gold=gold)
    row.update(extra)
    return row


def trace(strategy, correct, sample=0, failure=None, tokens=10):
    return {"strategy": strategy, "sample": sample, "correct": correct, "failure": failure,
            "score": None if failure else "x", "explanation": "", "text": "t</think>{}",
            "prompt_tokens": 100, "completion_tokens": tokens}


# --------------------------------------------------------------------------------------------------
# Intake
# --------------------------------------------------------------------------------------------------
def test_intake_reads_the_sample_and_it_renders_under_every_strategy(pack_dir):
    rows, report = intake(IntakeConfig([SourceSpec("training/data/sample.jsonl")]), ROOT)
    assert report["rows"] == 24 and set(report["by_language"]) == {"en", "de", "es", "fr", "ja", "zh"}
    assert set(report["by_task"]) == {"pairwise", "preference_strength", "binary", "multiple_choice"}
    assert Renderers(pack_dir).check(rows, [*STRATEGIES, EN_EN]) == []
    # English rows need no pack; non-English target-language prompts do, and say so.
    assert Renderers().check([r for r in rows if r["language"] == "en"], STRATEGIES) == []
    problems = Renderers().check([r for r in rows if r["id"] == "pair-de-1"], [TGT_EN])
    assert problems and "pack=" in problems[0]


def test_intake_adapters_map_public_layouts(tmp_path):
    def write(name, rows):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        return str(path)

    sources = [
        SourceSpec(write("mrb", [{"id": "m1", "input": "Q?", "response_1": "a", "response_2": "b",
                                  "actual_score": "Assistant B", "language": "de", "source": "hep-python"}]),
                   format="mr3-pairwise"),
        SourceSpec(write("hs3", [{"id": "h1", "context": [{"role": "user", "content": "Hi"}], "response1": "a",
                                  "response2": "b", "actual_score": -2, "language": "fr"}]), format="helpsteer3"),
        SourceSpec(write("mgsm", [{"id": "g1", "question": "2+2?", "answer": "4", "label": True, "language": "ja"}]),
                   format="mgsm"),
        SourceSpec(write("mcq", [{"id": "c1", "question": "Q?", "options_str": "A. x\nB. y\nC. z\nD. w",
                                  "answer": "C"}]), format="mcq", language="es"),
        SourceSpec(write("pg", [{"id": "p1", "prompt_text": "Is this harmful?", "label": "false"}]),
                   format="polyguard", columns={"prompt": "prompt_text"}),
    ]
    rows, report = intake(IntakeConfig(sources), ROOT)
    by_id = {r["id"]: r for r in rows}
    assert by_id["m1"]["gold"] == "Assistant B" and by_id["m1"]["family"] == "strict_pair/code"
    assert by_id["h1"]["gold"] == "2" and by_id["h1"]["prompt"] == "<user>\nHi\n</user>\n"
    assert by_id["g1"]["gold"] == "true" and by_id["g1"]["responses"] == ["4"] and by_id["g1"]["family"] == "mgsm"
    assert by_id["c1"]["gold"] == "C" and by_id["c1"]["language"] == "es" and by_id["c1"]["task"] == "multiple_choice"
    assert by_id["p1"]["prompt"] == "Is this harmful?" and by_id["p1"]["responses"] == []
    assert report["by_task"] == {"pairwise": 1, "preference_strength": 1, "binary": 2, "multiple_choice": 1}

    # Every bad row of every source at once, each with where it is.
    bad = [SourceSpec(write("bad1", [{"id": "x", "input": "Q", "response_1": "a", "response_2": "b", "actual_score": "C"}]),
                      format="mr3-pairwise"),
           SourceSpec(write("bad2", [{"id": "y", "question": "Q"}]), format="mcq")]
    with pytest.raises(ValueError) as e:
        intake(IntakeConfig(bad), ROOT)
    assert "2 problem(s)" in str(e.value) and "bad1.jsonl:1" in str(e.value) and "options_str" in str(e.value)


# --------------------------------------------------------------------------------------------------
# Rubrics
# --------------------------------------------------------------------------------------------------
def test_rubric_stage_writes_validated_rubrics_and_falls_back(tmp_path, pack_dir):
    rows = [make_row(1, "en", source="good"), make_row(2, "de", source="good"),
            make_row(3, "en", source="bad", task="binary", responses=["4"], gold="true"),
            make_row(4, "de", source="official", family="strict_pair/general")]
    teacher = ScriptedTeacher(rows, bad_sources={"bad"})
    config = RubricConfig(paraphrases=1, translate=True, max_attempts=2)
    out, report = write_rubrics(rows, teacher, Sampling(), config, shard_dir=tmp_path)
    by_id = {r["id"]: r for r in out}
    for rid in ("q01", "q02"):
        rubric = decode_rubric(by_id[rid]["rubric"])
        assert set(rubric.labels) == {"Assistant A", "Assistant B"}
        assert by_id[rid]["task_description"] == "Judge good data carefully."
    assert by_id["q02"]["rubric_tgt"] and "übersetzt" in by_id["q02"]["rubric_tgt"]
    assert by_id["q01"]["rubric_tgt"] is None  # English rows need no translation
    assert by_id["q03"]["rubric"] is None and by_id["q04"]["rubric"] is None  # template fallback / official family
    assert report["groups"] == 2 and report["groups_written"] == 1 and report["groups_invalid"] == 1
    assert report["translations"] == 1 and report["translations_failed"] == 0
    assert "are not exactly" in next(iter(report["invalid_reasons"]))
    assert next(g for g in report["groups_detail"] if g["source"] == "bad")["attempts"] == 2
    # The rows render, in the target language with the translated rubric.
    renderers = Renderers(pack_dir)
    assert renderers.check(out, STRATEGIES) == []
    system = renderers.render(by_id["q02"], TGT_TGT).prompt.system
    assert "übersetzt" in system and "Judge good data" in renderers.render(by_id["q02"], EN_PP).prompt.system

    dropped, report = write_rubrics(rows, ScriptedTeacher(rows, bad_sources={"bad"}), Sampling(),
                                    RubricConfig(paraphrases=0, on_invalid="drop", max_attempts=1))
    assert [r["id"] for r in dropped] == ["q01", "q02", "q04"] and report["rows_dropped"] == 1


# --------------------------------------------------------------------------------------------------
# Distillation and the alignment filter
# --------------------------------------------------------------------------------------------------
def test_distill_records_correctness_per_strategy_and_sample(pack_dir):
    rows = [make_row(i) for i in range(1, 5)] + [make_row(5, "en", gold="Assistant B")]

    def verdict(row, strategy, k):
        if row["id"] == "q01" and strategy == TGT_EN:
            return False
        if row["id"] == "q02" and strategy == TGT_TGT and k == 0:
            return None
        return True

    teacher = ScriptedTeacher(rows, verdict)
    out, report = distill(rows, teacher, Sampling(seed=0), DistillConfig(samples=2), Renderers(pack_dir))
    by_id = {r["id"]: r for r in out}
    assert all(len(r["traces"]) == 3 * 2 for r in out)
    q1 = {(t["strategy"], t["sample"]): t for t in by_id["q01"]["traces"]}
    assert not q1[(TGT_EN, 0)]["correct"] and q1[(TGT_EN, 1)]["score"] == "Assistant B" and q1[(EN_PP, 0)]["correct"]
    q2 = {(t["strategy"], t["sample"]): t for t in by_id["q02"]["traces"]}
    assert q2[(TGT_TGT, 0)]["failure"] == "no_answer" and q2[(TGT_TGT, 1)]["correct"]
    assert all(t["correct"] for t in by_id["q05"]["traces"])
    # English prompts are identical under en-prompt-tgt-thinking and tgt-prompt-tgt-thinking: generated once.
    assert teacher.items == 4 * 3 * 2 + 2 * 2
    assert teacher.calls == 1  # one engine round for the shard, whatever the strategies and samples
    assert report["by_strategy"][TGT_EN] == {"correct": 8, "wrong": 2}
    assert report["by_strategy"][TGT_TGT] == {"correct": 9, "no_answer": 1}
    assert report["rows_generated_this_run"] == 5


def test_alignment_filter_keeps_exactly_the_rows_correct_under_all_strategies():
    rows = [
        {"id": "all", "language": "de", "traces": [trace(s, True) for s in STRATEGIES]},
        {"id": "one-wrong", "language": "de", "traces": [trace(EN_PP, True), trace(TGT_EN, False), trace(TGT_TGT, True)]},
        {"id": "no-verdict", "language": "fr",
         "traces": [trace(EN_PP, True), trace(TGT_EN, True), trace(TGT_TGT, False, failure="bad_json")]},
        # k = 2: the target strategy is right only on its second sample
        {"id": "second", "language": "fr",
         "traces": [trace(EN_PP, True), trace(TGT_EN, True), trace(TGT_TGT, False, 0), trace(TGT_TGT, True, 1, tokens=7)]},
        {"id": "missing", "language": "en", "traces": [trace(EN_PP, True), trace(TGT_EN, True)]},
    ]
    kept, report = alignment_filter(rows, STRATEGIES, TGT_TGT, FilterConfig())
    assert [r["id"] for r in kept] == ["all", "second"]
    assert kept[1]["target"]["sample"] == 1 and kept[1]["target"]["completion_tokens"] == 7
    assert all(r["aligned"] for r in kept)
    assert report["failed_by_reason"] == {"incorrect": 1, "no_verdict": 2}
    assert report["by_language"]["de"] == {"in": 2, "kept": 1, "incorrect": 1}
    assert report["by_language"]["fr"] == {"in": 2, "kept": 1, "no_verdict": 1}
    assert report["failures_by_strategy"] == {TGT_TGT: {"bad_json": 1}}

    strict, _ = alignment_filter(rows, STRATEGIES, TGT_TGT, FilterConfig(per_strategy="all"))
    assert [r["id"] for r in strict] == ["all"]

    smoke, report = alignment_filter(rows, STRATEGIES, TGT_TGT, FilterConfig(smoke_test_keep_unaligned=True))
    assert [r["id"] for r in smoke if not r["aligned"]] == ["one-wrong", "no-verdict"]  # "missing" has no TGT_TGT trace
    assert report["kept_unaligned_smoke_test"] == 2 and "never for a real judge" in report["warning"]
    with pytest.raises(ValueError, match="was not distilled"):
        alignment_filter(rows, [EN_PP], TGT_TGT, FilterConfig())


# --------------------------------------------------------------------------------------------------
# Difficulty and curriculum
# --------------------------------------------------------------------------------------------------
def test_difficulty_drops_solved_rows_and_curriculum_orders_follow_the_definition(pack_dir):
    n_correct = {"q01": 3, "q02": 0, "q03": 2, "q04": 2, "q05": 1, "q06": 2, "q07": 0}
    lengths = {"q01": 5, "q02": 9, "q03": 40, "q04": 20, "q05": 7, "q06": 20, "q07": 3}
    langs = {"q03": "en", "q05": "en"}
    rows = [make_row(int(i[1:]), langs.get(i, "de"),
                     target={**trace(TGT_TGT, True), "prompt_tokens": 0, "completion_tokens": lengths[i]})
            for i in n_correct]
    model = ScriptedTeacher(rows, lambda row, strategy, k: k < n_correct[row["id"]], base_seed=100)
    scored, report = score_difficulty(rows, model, Sampling(seed=100), DifficultyConfig(samples=3, shard_size=3),
                                      Renderers(pack_dir))
    assert {s for _, s, _ in model.seen} == {EN_EN}  # the English setting only
    assert [r["id"] for r in scored] == ["q02", "q03", "q04", "q05", "q06", "q07"]  # q01 solved 3/3: dropped
    assert report["dropped_solved"] == 1 and report["n_correct_histogram"] == {"0": 2, "1": 1, "2": 3, "3": 1}
    assert {r["id"]: (r["n_correct"], r["length"]) for r in scored}["q04"] == (2, 20)

    def order(name, seed=0):
        return [r["id"] for r in order_rows(scored, CurriculumConfig(order=name, seed=seed))[0]]

    # easy -> hard: most correct first; ties by length (shorter first), then id
    assert order("easy_to_hard") == ["q04", "q06", "q03", "q05", "q07", "q02"]
    assert order("hard_to_easy") == order("easy_to_hard")[::-1]
    assert order("english_first") == ["q03", "q05", "q04", "q06", "q07", "q02"]
    shuffled = order("random", seed=1)
    assert sorted(shuffled) == sorted(order("easy_to_hard")) and shuffled == order("random", seed=1)  # seeded
    ordered, _ = order_rows(scored, CurriculumConfig())
    assert [r["position"] for r in ordered] == list(range(6))


# --------------------------------------------------------------------------------------------------
# SFT
# --------------------------------------------------------------------------------------------------
def _sft_rows(n=6):
    rows = []
    for i in range(1, n + 1):
        text = f"Gedanken zu {i}. " * i + "</think>\n{'explanation': 'weil', 'score': 'Assistant A'}"
        rows.append(make_row(i, target={**trace(TGT_TGT, True), "text": text, "score": "Assistant A",
                                        "explanation": "weil"}, aligned=True))
    return rows


@pytest.mark.model
def test_sft_examples_are_the_serving_prompt_plus_a_completion_only_loss(pack_dir):
    from mr3_reward.backends.transformers import TransformersBackend
    from mr3_reward.judge import Judge
    from training.rows import to_request
    from training.sft import load_tokenizer

    rows = _sft_rows(2)
    tokenizer = load_tokenizer("tiny-random")
    examples, report = build_examples(rows, tokenizer, TGT_TGT, Renderers(pack_dir), max_length=4096)
    assert report["examples"] == 2 and report["dropped_too_long"] == 0
    # The prompt ids are exactly what the judge feeds the model at serving time.
    judge = Judge("tiny-random", backend=TransformersBackend("tiny-random"), language_mode=TGT_TGT, pack=pack_dir)
    served = judge.backend._encode(judge.render(to_request(rows[0], TGT_TGT)).prompt)
    ex = examples[0]
    assert ex["input_ids"][: ex["prompt_tokens"]] == served
    assert ex["completion_mask"] == [0] * len(served) + [1] * (len(ex["input_ids"]) - len(served))
    completion = tokenizer.decode(ex["input_ids"][len(served):])
    assert completion == completion_text(rows[0]["target"]) + tokenizer.eos_token
    assert completion.endswith('</think>\n{"explanation": "weil", "score": "Assistant A"}<|im_end|>')
    # Too long: dropped and counted, never truncated.
    _, report = build_examples(rows, tokenizer, TGT_TGT, Renderers(pack_dir), max_length=ex["prompt_tokens"] + 5)
    assert report["examples"] == 0 and report["dropped_too_long"] == 2


@pytest.mark.model
def test_sft_trainer_sees_rows_in_curriculum_order(tmp_path, pack_dir):
    rows = _sft_rows(6)
    rows = [rows[i] for i in (3, 0, 5, 1, 4, 2)]  # a curriculum order that is not the id or length order
    from training.sft import load_tokenizer

    tokenizer = load_tokenizer("tiny-random")
    examples, _ = build_examples(rows, tokenizer, TGT_TGT, Renderers(pack_dir), max_length=4096)
    settings = SFTSettings(student="tiny-random", epochs=2, per_device_batch_size=2, gradient_accumulation_steps=1,
                           bf16=False, gradient_checkpointing=False, logging_steps=1, max_length=4096)
    trainer = build_trainer(examples, settings, tmp_path / "run", tokenizer=tokenizer)
    seen: list[tuple[int, ...]] = []
    collate = trainer.data_collator

    def recording(batch):
        seen.extend(tuple(ex["input_ids"]) for ex in batch)
        return collate(batch)

    trainer.data_collator = recording
    # Loss only on the completion: every prompt position is masked.
    for ex, prepared in zip(examples, trainer.train_dataset):
        assert prepared["labels"][: ex["prompt_tokens"]] == [-100] * ex["prompt_tokens"]
        assert prepared["labels"][ex["prompt_tokens"]:] == ex["input_ids"][ex["prompt_tokens"]:]
    trainer.train()
    ids = {tuple(ex["input_ids"]): ex["id"] for ex in examples}
    assert [ids[s] for s in seen] == [r["id"] for r in rows] * 2  # every epoch replays the curriculum
    assert trainer.state.global_step == 6


@pytest.mark.model
def test_sft_resumes_from_its_last_checkpoint(tmp_path, pack_dir):
    from transformers import TrainerCallback

    from training.sft import train_sft

    class Crash(TrainerCallback):
        def __init__(self, at=None):
            self.at, self.steps = at, []

        def on_step_end(self, args, state, control, **kwargs):
            self.steps.append(state.global_step)
            if state.global_step == self.at:
                raise KeyboardInterrupt("killed")

    rows = _sft_rows(6)
    settings = SFTSettings(student="tiny-random", epochs=1, per_device_batch_size=2, gradient_accumulation_steps=1,
                           bf16=False, gradient_checkpointing=False, save_steps=1, max_length=4096)
    work = tmp_path / "sft"
    with pytest.raises(KeyboardInterrupt):
        train_sft(rows, settings, Renderers(pack_dir), work, callbacks=[Crash(at=3)])
    assert sorted(p.name for p in work.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    again = Crash()
    _, report, model_dir = train_sft(rows, settings, Renderers(pack_dir), work, callbacks=[again])
    assert report["resumed"] and again.steps == [3] and report["global_steps"] == 3  # steps 1-2 not redone
    assert (model_dir / "config.json").is_file() and (model_dir / "mr3_training.json").is_file()


def test_toolkit_doctests():
    import doctest

    import training.curriculum
    import training.filtering
    import training.rubrics
    import training.sft

    for module in (training.curriculum, training.filtering, training.rubrics, training.sft):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__


# --------------------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------------------
def test_configs_open_with_their_command_and_load():
    for path in sorted(CONFIGS.glob("*.yaml")):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# ") and f"-m training.pipeline training/configs/{path.name}" in first
        load_config(path)
    assert {p.name for p in CONFIGS.glob("*.yaml")} >= {"tiny-cpu.yaml", "mr3-4b.yaml"}


def test_config_problems_are_reported_at_once():
    raw = {"workdir": "x", "teacher": {"model": "m", "sampling": {"temprature": 1}},
           "sft": {"student": "s", "language_mode": "en-prompt-en-thinking", "epochs": 0},
           "distill": {"samples": 0}, "curriculum": {"order": "by_vibes"}, "bogus": 1}
    with pytest.raises(ValueError) as e:
        config_from_dict(raw)
    assert "unknown section 'bogus'" in str(e.value)
    raw.pop("bogus")
    with pytest.raises(ValueError) as e:
        config_from_dict(raw)
    message = str(e.value)
    for needle in ("temprature", "sft.epochs", "distill.samples", "by_vibes", "is not one of distill.strategies"):
        assert needle in message


# --------------------------------------------------------------------------------------------------
# End to end, real engines
# --------------------------------------------------------------------------------------------------
@pytest.mark.model
def test_real_small_teacher_through_distillation(pack_dir):
    """SmolLM2-135M as a real transformers-backend teacher: traces are recorded whatever it writes."""
    config = load_config(CONFIGS / "tiny-cpu.yaml", ["teacher.sampling.max_tokens=12"])
    rows, _ = intake(config.data, ROOT)
    rows = [r for r in rows if r["id"] in ("pair-en-1", "math-de-1")]
    out, report = distill(rows, config.teacher.build(), config.teacher.make_sampling(), DistillConfig(),
                          Renderers(pack_dir))
    traces = [t for r in out for t in r["traces"]]
    assert len(traces) == 6 and all(t["prompt_tokens"] > 100 and t["completion_tokens"] > 0 for t in traces)
    assert all((t["score"] is None) == (t["failure"] is not None) for t in traces)
    assert all(t["correct"] == (t["score"] == r["gold"]) for r in out for t in r["traces"])
    assert set(report["by_strategy"]) == set(STRATEGIES) and report["tokens"]["completion"] > 0


def _sample_teacher(rows):
    """An oracle for the sample data with scripted mistakes: the rows it must drop are known."""
    wrong = {("pair-de-2", TGT_EN), ("hs-es-1", EN_PP), ("math-fr-1", TGT_TGT)}
    silent = {("mcq-ja-1", TGT_EN)}

    def verdict(row, strategy, k):
        if (row["id"], strategy) in silent:
            return None
        return (row["id"], strategy) not in wrong

    return ScriptedTeacher(rows, verdict, words=lambda row: len(row["id"])), {"pair-de-2", "hs-es-1", "math-fr-1", "mcq-ja-1"}


@pytest.mark.model
def test_tiny_pipeline_end_to_end_and_the_judge_loads(tmp_path, pack_dir):
    from mr3_reward import JudgeRequest
    from mr3_reward.judge import Judge

    config = load_config(CONFIGS / "tiny-cpu.yaml", [f"workdir={tmp_path / 'work'}",
                                                     "filter.smoke_test_keep_unaligned=false"])
    rows, _ = intake(config.data, ROOT)
    teacher, failing = _sample_teacher(rows)
    solved = {"pair-en-1", "math-ja-1"}  # the difficulty model gets these right 2/2: dropped as too easy
    difficulty = ScriptedTeacher(rows, lambda row, s, k: row["id"] in solved or (k == 0 and row["language"] == "de"),
                                 base_seed=100)
    reports = Pipeline(config, backends={"teacher": teacher, "difficulty": difficulty}).run()

    assert reports["rubrics"]["groups_written"] == 1  # the sample-custom rows got a written rubric
    assert reports["distill"]["rows"] == 24
    assert reports["filter"]["kept"] == 24 - len(failing) and reports["filter"]["kept_unaligned_smoke_test"] == 0
    assert reports["difficulty"]["dropped_solved"] == len(solved)
    kept = 24 - len(failing) - len(solved)
    assert reports["curriculum"]["rows"] == kept and reports["sft"]["examples"] == kept
    assert reports["sft"]["global_steps"] == (kept + 1) // 2
    pipeline = Pipeline(config, backends={"teacher": teacher, "difficulty": difficulty})
    curriculum = pipeline.workdir.load("curriculum")
    assert not (set(curriculum["id"]) & (failing | solved))
    assert curriculum["n_correct"][0] == 1 and curriculum["n_correct"][-1] == 0  # German rows (1/2) first

    # The checkpoint is a judge: the mode comes from the folder name, prompts from the same renderer.
    model_dir = pipeline.model_dir()
    info = json.loads((model_dir / "mr3_training.json").read_text())
    assert info["language_mode"] == TGT_TGT and info["examples"] == kept
    judge = Judge(str(model_dir), pack=pack_dir, max_tokens=8, max_retries=0)
    assert judge.language_mode.value == TGT_TGT
    out = judge.judge([JudgeRequest(task="pairwise", prompt="Wie viele Beine hat eine Spinne?",
                                    responses=("Acht.", "Sechs."), language="de", id="x")])
    assert len(out) == 1 and (out[0].ok or out[0].failure in ("no_answer", "bad_json", "truncated"))
    assert out[0].prompt_tokens > 100

    # Everything is finished: a second run skips every stage and never calls a model.
    calls = teacher.items, difficulty.items
    again = pipeline.run()
    assert all(r.get("skipped") for r in again.values()) and (teacher.items, difficulty.items) == calls


# --------------------------------------------------------------------------------------------------
# Killed mid-stage, resumed
# --------------------------------------------------------------------------------------------------
def logging_teacher(model: str, rows: str, log: str, delay: float = 0.0) -> ScriptedTeacher:
    """A factory for ``backend: "test_training:logging_teacher"``: an always-right teacher that appends the
    row ids of every generate call to ``log`` and sleeps ``delay`` seconds per call."""
    data = [json.loads(line) for line in Path(rows).read_text(encoding="utf-8").splitlines() if line.strip()]
    teacher = ScriptedTeacher(data)
    generate = teacher.generate

    def logged(requests):
        out = generate(requests)
        ids = sorted({i for i, _, _ in teacher.seen})
        teacher.seen.clear()
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps(ids) + "\n")
        time.sleep(delay)
        return out

    teacher.generate = logged
    return teacher


def test_killed_distill_resumes_without_redoing_finished_shards(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"id": f"r{i}", "task": "pairwise", "language": "en", "family": "strict_pair/general",
                                        "prompt": f"Question number {i}?", "responses": ["a", "b"],
                                        "gold": "Assistant A"}) + "\n" for i in range(8)), encoding="utf-8")
    log = tmp_path / "calls.jsonl"
    config = {
        "workdir": str(tmp_path / "work"),
        "data": {"sources": [{"path": str(data)}]},
        "teacher": {"model": "scripted", "backend": "test_training:logging_teacher",
                    "backend_options": {"rows": str(data), "log": str(log), "delay": 2.0}},
        "distill": {"shard_size": 2},
        "sft": {"student": "tiny-random"},
    }
    path = tmp_path / "run.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)]), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "training.pipeline", str(path), "--until", "distill"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    shards = lambda: sorted((tmp_path / "work" / ".partial").glob("distill-*/shard-*.jsonl"))  # noqa: E731
    deadline = time.monotonic() + 120
    while len(shards()) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    finished = {p.name: p.stat().st_mtime_ns for p in shards()}
    assert 2 <= len(finished) < 4 and not (tmp_path / "work" / "distill").exists()
    first_run = [json.loads(line) for line in log.read_text().splitlines()]

    # The same command again (same config: a changed teacher setting would rightly start afresh).
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    second_run = [json.loads(line) for line in log.read_text().splitlines()][len(first_run):]
    regenerated = {i for call in second_run for i in call}
    already = {f"r{2 * int(name[6:11]) + j}" for name in finished for j in (0, 1)}
    assert regenerated == {f"r{i}" for i in range(8)} - already  # only the unfinished shards
    assert len(second_run) == 4 - len(finished)
    distilled = Pipeline(load_config(path)).workdir.load("distill")
    assert sorted(distilled["id"]) == [f"r{i}" for i in range(8)]
    assert all(len(t) == 3 for t in distilled["traces"])
    assert not list((tmp_path / "work" / ".partial").glob("distill-*"))  # checkpoints cleared once committed
