"""Stage 7, SFT: fine-tune the student on the teacher's reasoning + verdict, in curriculum order.

Each example is the serving prompt and the teacher's answer, tokenized the way the judge sees them:

- prompt = `mr3_reward.backends.base.chat_text` (the student's chat template + ``<think>`` + any forcing
  sentence) over the package renderer's messages for the student's language mode, tokenized without
  added special tokens: the same ids `TransformersBackend` feeds the model at serving time;
- completion = the teacher's reasoning, ``</think>``, the verdict as JSON
  (``{"explanation": ..., "score": ...}``) and the tokenizer's EOS (the chat turn's end for Qwen3/ChatML),
  tokenized on its own, as the model generates it after the prompt.

The two are concatenated into ``input_ids`` with a ``completion_mask``; TRL's ``SFTTrainer`` with
``completion_only_loss=True`` turns the mask into labels, so the loss is on the completion only. An
example longer than ``max_length`` is dropped (and counted), never truncated: a cut-off example would
teach the judge to stop before its verdict.

Order: the dataset is in curriculum order and stays so: ``shuffle_dataset=False`` (TRL) and
``train_sampling_strategy="sequential"`` (transformers' default sampler shuffles). Every epoch replays
the same order. Under ``accelerate launch`` each global batch is split across processes in order.

Defaults follow SPEC "Training recipe" step 6: 3 epochs, cosine schedule, 10% warmup, lr 2e-5 (4B; use
1e-5 for 8B/14B), 16 sequences per optimizer step per device, 16384-token cutoff, bf16. The saved folder
(model, tokenizer with its chat template, generation config) loads in every backend of the package, and
its name ends with the language mode so ``Judge(path)`` infers it.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mr3_reward.backends.base import chat_text
from mr3_reward.models import resolve
from mr3_reward.templates import TEMPLATE_VERSION, LanguageMode
from mr3_reward.templates.modes import TRAINING_INFO
from mr3_reward.types import THINK_CLOSE

from training.rows import Renderers

logger = logging.getLogger("training")


@dataclass
class SFTSettings:
    """student (`str`): base model (alias, folder or hub id); language_mode (`str`): the mode the student
    is trained and served in (one of the distilled strategies); use_pack (`bool`): render the student's
    prompts with the run's rubric pack (false: with the package's own English templates, so the judge is
    served with no pack; ``en-prompt-en-thinking`` only); snapshots (`bool`): keep the model of every saved
    checkpoint (``snapshots/step-N`` beside the judge) for a learning curve; the rest as in TRL's
    ``SFTConfig``; trainer_args (`dict`): any other ``SFTConfig`` field (``deepspeed``, ``fsdp``, ``optim``...)."""

    student: str = "Qwen/Qwen3-4B"
    language_mode: str = LanguageMode.TGT_PROMPT_TGT_THINKING.value
    epochs: float = 3.0
    learning_rate: float = 2e-5
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.1
    per_device_batch_size: int = 1
    gradient_accumulation_steps: int = 16
    max_length: int = 16384
    bf16: bool = True
    gradient_checkpointing: bool = True
    save_steps: int = 500
    logging_steps: int = 10
    seed: int = 0
    use_pack: bool = True
    snapshots: bool = False
    trainer_args: dict[str, Any] = field(default_factory=dict)

    def problems(self) -> list[str]:
        out = []
        try:
            LanguageMode.parse(self.language_mode)
        except ValueError as exc:
            out.append(f"sft.language_mode: {exc}")
        for name in ("epochs", "learning_rate", "per_device_batch_size", "gradient_accumulation_steps",
                     "max_length", "save_steps", "logging_steps"):
            if getattr(self, name) <= 0:
                out.append(f"sft.{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.warmup_ratio < 1:
            out.append(f"sft.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if not self.use_pack and self.language_mode != LanguageMode.EN_PROMPT_EN_THINKING.value:
            out.append(f"sft.use_pack: false needs language_mode en-prompt-en-thinking (the package's own templates "
                       f"are English only), got {self.language_mode!r}")
        return out


def completion_text(target: Mapping[str, Any]) -> str:
    """What the student learns to write after the prompt: reasoning, ``</think>``, the verdict as JSON.

    The verdict is rewritten canonically from what the parser read (fenced or single-quoted answers
    become plain JSON). A target without a verdict (smoke-test rows only) is used as generated.

    >>> completion_text({"text": "A is right.</think>\\n```json\\n{'score': 'A'}\\n```", "score": "Assistant A",
    ...                  "explanation": None})
    'A is right.</think>\\n{"explanation": "", "score": "Assistant A"}'
    """
    if target.get("score") is None:
        return target["text"]
    head, sep, _ = target["text"].rpartition(THINK_CLOSE)
    answer = json.dumps({"explanation": target.get("explanation") or "", "score": target["score"]}, ensure_ascii=False)
    return (head if sep else "") + THINK_CLOSE + "\n" + answer


def load_tokenizer(student: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve(student))
    if tokenizer.eos_token_id is None:
        raise ValueError(f"the tokenizer of {student!r} has no eos token: the student could never learn to stop")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_examples(
    rows: Sequence[Mapping[str, Any]],
    tokenizer: Any,
    language_mode: str,
    renderers: Renderers,
    max_length: int,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Tokenize rows (in order) into ``{id, input_ids, completion_mask, prompt_tokens}`` examples.

    Returns the examples and a report (kept, dropped as too long, unaligned smoke-test rows).
    """
    examples, too_long = [], []
    for row in rows:
        rendered = renderers.render(row, language_mode)
        prompt_ids = tokenizer(chat_text(tokenizer, rendered.prompt), add_special_tokens=False)["input_ids"]
        completion_ids = tokenizer(completion_text(row["target"]), add_special_tokens=False)["input_ids"]
        completion_ids = [*completion_ids, tokenizer.eos_token_id]
        if len(prompt_ids) + len(completion_ids) > max_length:
            too_long.append(row["id"])
            continue
        examples.append({
            "id": row["id"],
            "input_ids": prompt_ids + completion_ids,
            "completion_mask": [0] * len(prompt_ids) + [1] * len(completion_ids),
            "prompt_tokens": len(prompt_ids),
        })
    lengths = [len(e["input_ids"]) for e in examples]
    report = {
        "examples": len(examples),
        "dropped_too_long": len(too_long),
        "dropped_too_long_ids": too_long[:20],
        "unaligned_smoke_test_rows": sum(not r.get("aligned", True) for r in rows if r["id"] not in too_long),
        "tokens": sum(lengths),
        "max_tokens": max(lengths, default=0),
        "by_language": dict(Counter(r["language"] for r in rows if r["id"] not in set(too_long))),
    }
    return examples, report


def sft_config(settings: SFTSettings, output_dir: str | Path):
    """TRL's ``SFTConfig`` for the settings: curriculum order kept, loss on the completion only."""
    import torch
    from trl import SFTConfig

    args: dict[str, Any] = {
        "output_dir": str(output_dir),
        "num_train_epochs": settings.epochs,
        "learning_rate": settings.learning_rate,
        "lr_scheduler_type": settings.lr_scheduler,
        "warmup_steps": settings.warmup_ratio,  # a float < 1 is a fraction of the steps in transformers 5
        "per_device_train_batch_size": settings.per_device_batch_size,
        "gradient_accumulation_steps": settings.gradient_accumulation_steps,
        "max_length": settings.max_length,
        "bf16": settings.bf16,
        "gradient_checkpointing": settings.gradient_checkpointing,
        "save_strategy": "steps",
        "save_steps": settings.save_steps,
        "save_total_limit": 2,
        "logging_steps": settings.logging_steps,
        "seed": settings.seed,
        "report_to": "none",
        "use_cpu": not torch.cuda.is_available(),
        # The curriculum is the row order: neither TRL nor the sampler may shuffle it.
        "shuffle_dataset": False,
        "train_sampling_strategy": "sequential",
        "completion_only_loss": True,
    }
    fixed = {"shuffle_dataset", "train_sampling_strategy", "completion_only_loss", "output_dir"}
    clash = sorted(fixed & set(settings.trainer_args))
    if clash:
        raise ValueError(f"sft.trainer_args may not set {clash}: they keep the curriculum order and the loss mask")
    args.update(settings.trainer_args)
    return SFTConfig(**args)


def build_trainer(examples: Sequence[Mapping[str, Any]], settings: SFTSettings, output_dir: str | Path, *,
                  tokenizer: Any = None, callbacks: list | None = None):
    """An ``SFTTrainer`` over pre-tokenized examples, not yet trained (tests wrap its collator)."""
    from datasets import Dataset
    from trl import SFTTrainer

    tokenizer = tokenizer or load_tokenizer(settings.student)
    dataset = Dataset.from_list([{k: e[k] for k in ("input_ids", "completion_mask")} for e in examples])
    return SFTTrainer(
        model=resolve(settings.student),
        args=sft_config(settings, output_dir),
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=callbacks,
    )


SNAPSHOTS = "snapshots"
_TRAINER_ONLY = ("optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json", "training_args.bin")


def snapshot_callback(dest: Path):
    """A ``TrainerCallback`` that copies each saved checkpoint's model (not its optimizer) to ``dest/step-N``."""
    import shutil

    from transformers import TrainerCallback

    class Snapshots(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            source = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            target = dest / f"step-{state.global_step}"
            if source.is_dir() and not target.exists():
                tmp = dest / f".tmp-step-{state.global_step}"
                shutil.copytree(source, tmp, ignore=shutil.ignore_patterns(*_TRAINER_ONLY), dirs_exist_ok=True)
                tmp.rename(target)

    return Snapshots()


def model_dir_name(language_mode: str) -> str:
    """``judge-<mode>``: `LanguageMode.for_model` reads the mode back from the folder name."""
    return f"judge-{LanguageMode.parse(language_mode).value}"


def train_sft(
    rows: Sequence[Mapping[str, Any]],
    settings: SFTSettings,
    renderers: Renderers,
    work_dir: Path,
    *,
    info: Mapping[str, Any] | None = None,
    callbacks: list | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any], Path]:
    """Fine-tune the student on the rows, in their order; resume from a checkpoint in ``work_dir``.

    Args:
        rows (`Sequence[dict]`): curriculum-ordered rows with a ``target`` trace.
        settings (`SFTSettings`): see the class.
        renderers (`Renderers`): rendering with the run's rubric pack (the student is served with it too).
        work_dir (`Path`): trainer checkpoints; a ``checkpoint-*`` there is resumed from.
        info (`dict`, *optional*): extra facts written to the model's ``mr3_training.json``.
        callbacks (`list`, *optional*): ``TrainerCallback``s for the trainer.

    Returns:
        `tuple[list[dict], dict, Path]`: the examples, a report and the saved model folder
        (``work_dir / judge-<mode>``).
    """
    tokenizer = load_tokenizer(settings.student)
    examples, report = build_examples(rows, tokenizer, settings.language_mode, renderers, settings.max_length)
    if not examples:
        raise ValueError(
            "no SFT examples: the alignment filter (or max_length) left nothing to train on; see the filter report. "
            "A weak teacher is never right under all strategies: use a stronger teacher (plumbing runs can set "
            "filter.smoke_test_keep_unaligned: true)"
        )
    trainer = build_trainer(examples, settings, work_dir, tokenizer=tokenizer,
                            callbacks=_with_snapshots(callbacks, settings, work_dir))
    resume = any(work_dir.glob("checkpoint-*"))
    if resume:
        logger.info("sft: resuming from the last checkpoint in %s", work_dir)
    result = trainer.train(resume_from_checkpoint=True if resume else None)
    out = work_dir / model_dir_name(settings.language_mode)
    trainer.save_model(str(out))
    trainer.accelerator.wait_for_everyone()  # under accelerate, every rank is done before rank 0 commits
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(out))
        facts = _training_facts(settings, renderers, len(examples), report, info)
        (out / TRAINING_INFO).write_text(json.dumps(facts, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    report.update(
        global_steps=trainer.state.global_step,
        train_loss=result.training_loss,
        resumed=resume,
        log=[{k: v for k, v in entry.items() if isinstance(v, (int, float))} for entry in trainer.state.log_history],
        model_dir=out.name,
    )
    return examples, report, out


def _with_snapshots(callbacks: list | None, settings: SFTSettings, work_dir: Path) -> list:
    """The caller's callbacks, plus the one that keeps each checkpoint's model when ``settings.snapshots``."""
    callbacks = list(callbacks or [])
    if settings.snapshots:
        (work_dir / SNAPSHOTS).mkdir(parents=True, exist_ok=True)
        callbacks.append(snapshot_callback(work_dir / SNAPSHOTS))
    return callbacks


def _training_facts(settings: SFTSettings, renderers: Renderers, n_examples: int, report: Mapping[str, Any],
                    info: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the saved model's ``mr3_training.json`` says of how it was trained; ``info`` adds to it."""
    return {
        "language_mode": LanguageMode.parse(settings.language_mode).value,
        "template_version": TEMPLATE_VERSION,
        "pack": str(renderers.pack.path) if renderers.pack else None,
        "base_model": settings.student,
        "settings": asdict(settings),
        "examples": n_examples,
        "unaligned_smoke_test_rows": report["unaligned_smoke_test_rows"],
        **dict(info or {}),
    }
