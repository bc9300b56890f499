"""The pieces of `TransformersBackend`'s engine calls that are functions over token ids and tensors: batching by
length, left padding, seeded sampling with one random generator per row, grammar-constrained decoding, cutting a
row at its end, and the inputs and reading of a forward pass that scores given continuations.

Seeded sampling never touches torch's global random generator. ``model.generate`` draws from it, so a seeded
call that reseeds it races every other thread that draws from it (a second judge awaited at the same time, a
second async reward of the same training step, the training loop itself): the same seed gave other texts under
concurrency. Here generation is greedy over logits that `SeededSampler` has already reduced to one drawn token,
and each row draws from its own ``torch.Generator``, seeded by the request's seed and the row's prompt, so a seed
means the same text whatever else runs or shares the batch.

torch, transformers and xgrammar are imported inside the functions that use them.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from typing import Any

from mr3_reward.backends.base import Generation
from mr3_reward.types import SEED_LIMIT, Sampling

__all__ = [
    "MAX_PADDING", "Grammars", "SeededSampler", "first_stop_end", "generation_kwargs", "left_padded",
    "continuation_scores", "length_batches", "row_seed", "sampling_processors", "score_inputs", "to_generation",
]

# A batch grows while its padded size (rows x longest prompt) stays within this multiple of its real tokens: one
# long input must not make every short prompt of its batch pay for its length (a 200 KB completion in a batch of
# 6 cost 13x its own time when the 5 short prompts were padded to it).
MAX_PADDING = 1.5


def length_batches(encoded: Sequence[tuple[int, list[int]]], batch_size: int,
                   max_padding: float = MAX_PADDING) -> list[list[tuple[int, list[int]]]]:
    """Cut ``(index, token ids)`` items into batches of similar length, shortest first.

    Items are sorted by length (a stable sort: equal lengths keep their order, so the same list always forms
    the same batches); a batch is closed when it holds ``batch_size`` items or when adding the next (longest so
    far) item would pad it beyond ``max_padding`` times its real tokens.

    >>> [[i for i, _ in b] for b in length_batches([(0, [1] * 900), (1, [1] * 10), (2, [1] * 12), (3, [1] * 11)], 8)]
    [[1, 3, 2], [0]]
    >>> [[i for i, _ in b] for b in length_batches([(i, [1] * 5) for i in range(5)], 2)]
    [[0, 1], [2, 3], [4]]
    """
    batches: list[list[tuple[int, list[int]]]] = []
    batch: list[tuple[int, list[int]]] = []
    real = 0
    for item in sorted(encoded, key=lambda it: len(it[1])):
        n = len(item[1])
        if batch and (len(batch) >= batch_size or (len(batch) + 1) * n > max_padding * (real + n)):
            batches.append(batch)
            batch, real = [], 0
        batch.append(item)
        real += n
    if batch:
        batches.append(batch)
    return batches


def left_padded(torch: Any, rows: Sequence[list[int]], pad_id: int) -> tuple[Any, Any]:
    """``(input_ids, attention_mask)`` of ``rows``, left-padded to the longest: a decoder-only model continues from
    each row's last column, so every row must end there (right padding would put pads before the new tokens)."""
    width = max(len(ids) for ids in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, ids in enumerate(rows):
        input_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, width - len(ids):] = 1
    return input_ids, attention_mask


def row_seed(seed: int | None, prompt_ids: Sequence[int]) -> int:
    """The seed of one row's random generator: from the request's seed and the row's prompt (so two prompts of
    one batch draw independently, and a prompt draws the same whatever shares its batch); fresh randomness for
    an unseeded request.

    >>> row_seed(0, [1, 2]) == row_seed(0, [1, 2]) != row_seed(0, [1, 3])
    True
    """
    if seed is None:
        return secrets.randbelow(SEED_LIMIT)
    digest = hashlib.sha256(f"{seed}:{','.join(map(str, prompt_ids))}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % SEED_LIMIT


class SeededSampler:
    """A logits processor that draws each row's next token from its own ``torch.Generator`` and leaves only that
    token possible, so greedy decoding then picks it. It runs last, after the temperature/top-k/top-p/min-p
    warpers (`sampling_processors`), exactly where ``generate``'s own sampling would draw.

    seeds (`Sequence[int]`): one seed per row of the batch.
    """

    def __init__(self, seeds: Sequence[int]) -> None:
        self.seeds = list(seeds)
        self.generators: list[Any] | None = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if self.generators is None:  # on the device of the logits, created at the first step
            self.generators = [torch.Generator(device=scores.device).manual_seed(s) for s in self.seeds]
        probs = torch.softmax(scores.float(), dim=-1)
        picks = torch.cat([torch.multinomial(probs[row], 1, generator=g) for row, g in enumerate(self.generators)])
        only = torch.full_like(scores, float("-inf"))
        return only.scatter_(1, picks[:, None], 0.0)


def sampling_processors(sampling: Sampling, seeds: Sequence[int]) -> list[Any]:
    """The logits processors that sample as ``sampling`` says, each row from its own seed; none when greedy.

    The warpers are transformers' own, in ``generate``'s order; every knob comes from ``sampling``, never from
    the checkpoint's generation_config (mR3/Qwen3 ship their own top_k/top_p), since ``generate`` runs greedy.
    """
    if sampling.temperature == 0:
        return []
    from transformers import MinPLogitsWarper, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    warpers: list[Any] = []
    if sampling.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(sampling.temperature))
    if sampling.top_k > 0:
        warpers.append(TopKLogitsWarper(top_k=sampling.top_k))
    if sampling.top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p=sampling.top_p))
    if sampling.min_p > 0:
        warpers.append(MinPLogitsWarper(min_p=sampling.min_p))
    return [*warpers, SeededSampler(seeds)]


def generation_kwargs(max_new_tokens: int, eos_token_ids: Sequence[int], pad_token_id: int) -> dict[str, Any]:
    """The ``model.generate`` arguments besides the inputs and processors: always greedy (sampling is done by
    `SeededSampler`), stopping at every end-of-turn id."""
    return {"max_new_tokens": max_new_tokens, "do_sample": False, "eos_token_id": list(eos_token_ids),
            "pad_token_id": pad_token_id}


class Grammars:
    """Regular expressions compiled by xgrammar for one tokenizer, each once; `processor` gives a fresh logits
    processor per ``generate`` call (xgrammar's keeps per-call state).

    tokenizer: the model's Hugging Face tokenizer.
    vocab_size (`int`): the model's vocabulary (its logits' width, which may exceed the tokenizer's).
    stop_ids (`Sequence[int]`): the tokens that end a generation; once the expression is complete only these
        are allowed, so the row ends there.
    """

    def __init__(self, tokenizer: Any, vocab_size: int, stop_ids: Sequence[int]) -> None:
        self._args = (tokenizer, vocab_size, list(stop_ids))
        self._compiler: Any = None
        self._compiled: dict[str, Any] = {}

    def processor(self, regex: str) -> Any:
        try:
            import xgrammar
            import xgrammar.contrib.hf
        except ImportError as exc:
            raise ImportError("decoding under a regex on the transformers backend needs xgrammar: "
                              "pip install xgrammar") from exc
        if self._compiler is None:
            tokenizer, vocab_size, stop_ids = self._args
            info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=stop_ids)
            self._compiler = xgrammar.GrammarCompiler(info)
        if regex not in self._compiled:
            self._compiled[regex] = self._compiler.compile_regex(regex)
        return xgrammar.contrib.hf.LogitsProcessor(self._compiled[regex])


def first_stop_end(text: str, stops: Sequence[str]) -> int | None:
    """Where the first stop string to complete in ``text`` ends, or None.

    >>> first_stop_end("a</think>b</think>", ("</think>",)), first_stop_end("abc", ("x",))
    (9, None)
    """
    ends = [text.find(s) + len(s) for s in stops if s and s in text]
    return min(ends) if ends else None


def to_generation(tokenizer: Any, prompt_tokens: int, row: list[int], eos: Sequence[int],
                  stops: Sequence[str] = ()) -> Generation:
    """One row of generated tokens -> a `Generation`: cut at its first end-of-turn token, then after its first stop
    string (kept in the text, ``finish_reason="stop"``), decoded with special tokens kept (``</think>`` survives).

    After a row ends, ``generate`` fills it with pad tokens until the longest row is done, and a token may run on
    past a stop string: both are dropped. ``completion_tokens`` counts the end-of-turn token when there is one,
    and the tokens up to the one that completed the stop string when a stop string ended the row.
    """
    end = next((j for j, token in enumerate(row) if token in eos), None)
    kept, finish, completion = (row, "length", len(row)) if end is None else (row[:end], "stop", end + 1)

    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    text = decode(kept)
    cut = first_stop_end(text, stops)
    if cut is not None:
        lo, hi = 1, len(kept)  # the fewest tokens whose text holds a stop string (a monotone property)
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if first_stop_end(decode(kept[:mid]), stops) is not None else (mid + 1, hi)
        text, finish, completion = text[:cut], "stop", lo
    return Generation(text=text, finish_reason=finish, prompt_tokens=prompt_tokens, completion_tokens=completion)


def score_inputs(torch: Any, device: str, pad_id: int,
                 rows: Sequence[tuple[list[int], list[int]]]) -> tuple[dict[str, Any], int]:
    """The model inputs that score each ``(prompt ids, continuation ids)`` in one forward pass, and how many
    last positions' logits it needs (the longest continuation + 1): ``model(**inputs, logits_to_keep=keep)``.

    Rows are left-padded, so every continuation ends at the last column; positions come from the attention
    mask, as ``generate`` sets them.
    """
    input_ids, attention_mask = left_padded(torch, [p + c for p, c in rows], pad_id)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    inputs = {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device),
              "position_ids": position_ids.to(device), "use_cache": False}
    return inputs, max(len(c) for _, c in rows) + 1


def continuation_scores(torch: Any, logits: Any, rows: Sequence[tuple[list[int], list[int]]], keep: int) -> list[float]:
    """The summed log-probability of each row's continuation, from the forward pass over `score_inputs`."""
    logprobs = torch.log_softmax(logits[:, -keep:, :].float(), dim=-1)
    scores = []
    for row, (_, cont) in enumerate(rows):
        # The logit that predicts the token at column j sits at column j - 1: the continuation's tokens are the
        # last len(cont) columns, so their logits are the len(cont) kept positions before the last one.
        at = torch.arange(keep - 1 - len(cont), keep - 1, device=logprobs.device)
        targets = torch.tensor(cont, dtype=torch.long, device=logprobs.device)
        scores.append(float(logprobs[row, at, targets].sum()))
    return scores
