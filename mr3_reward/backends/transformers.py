"""Plain Hugging Face ``transformers`` engine: ``model.generate`` on CPU or one GPU.

The reference engine: slow next to vLLM, but it runs anywhere torch runs, needs no server, and is what the
offline demo and the tests use (with the ``smollm2-135m`` / ``tiny-random`` aliases of `mr3_reward.models`).

It is a `Constrains` engine: `GenerationRequest.stop` and ``regex`` (through xgrammar) are honoured and
`score_continuations` scores given continuations, which is what budgeted and constrained judgments need
(`mr3_reward.phases`). Seeded sampling draws from one generator per row, never from torch's global one, and one
engine call runs at a time per backend, so a seed means the same text when judges or rewards run concurrently
(`mr3_reward.backends.hf_generate`).

torch and transformers are imported inside the class, never at module import, so ``import mr3_reward``
(and ``import mr3_reward.backends.transformers``) stays cheap for users who only talk to a vLLM server.

```python
from mr3_reward.backends.base import ChatPrompt, GenerationRequest
from mr3_reward.types import Sampling
backend = TransformersBackend("smollm2-135m")
backend.generate([GenerationRequest(ChatPrompt("Be brief.", "Hi!", prefix=""), Sampling(max_tokens=16))])
[Generation(text='Hello! How can I help you today?', finish_reason='stop', ...)]
```
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from mr3_reward.backends.base import ChatPrompt, Generation, GenerationRequest
from mr3_reward.backends.hf import encode, engine_error, overflow, token_ids
from mr3_reward.backends.hf_generate import (
    MAX_PADDING,
    Grammars,
    continuation_scores,
    generation_kwargs,
    left_padded,
    length_batches,
    row_seed,
    sampling_processors,
    score_inputs,
    to_generation,
)
from mr3_reward.models import resolve
from mr3_reward.types import Sampling

__all__ = ["TransformersBackend"]

_DTYPES = ("float32", "bfloat16", "float16", "auto")


def _import_torch_transformers() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise ImportError(
            "the transformers backend needs torch and transformers: pip install 'mr3-reward' "
            "(for a CPU-only torch first: pip install torch --index-url https://download.pytorch.org/whl/cpu)"
        ) from exc
    return torch, transformers


class TransformersBackend:
    """Generate with a local Hugging Face causal LM through ``model.generate``; an `EngineInfo`.

    Args:
        model (`str`):
            An alias (``smollm2-135m``, ``tiny-random``), a local model directory or a Hugging Face hub id such
            as ``rubricreward/mR3-Qwen3-4B-en-prompt-en-thinking``; see `mr3_reward.models.resolve`.
        device (`str`, *optional*, defaults to `"cpu"`):
            Where the model runs, e.g. ``"cpu"``, ``"cuda"``, ``"cuda:1"``.
        dtype (`str`, *optional*, defaults to `"float32"`):
            Weight dtype: ``"float32"``, ``"bfloat16"``, ``"float16"`` or ``"auto"`` (the checkpoint's own).
            Keep float32 on CPU, where half precision is slow or unsupported.
        batch_size (`int`, *optional*, defaults to 8):
            How many prompts go through one ``generate`` call.
        revision (`str`, *optional*):
            Branch, tag or commit of a hub model.
        trust_remote_code (`bool`, *optional*, defaults to `False`):
            Allow model code from the hub repository (not needed for Qwen3/Llama models).

    Attributes:
        model_id (`str`): the name given (alias or hub id), not the resolved path, so logs and caches key on it.
        revision (`str | None`): the revision given.
        path (`str`): the local directory the weights were loaded from.
        max_model_len (`int | None`): the model's context, its ``max_position_embeddings``; longer prompts are
            refused.
        eos_token_ids (`tuple[int, ...]`): every token id that ends a generation.
        max_padding (`float`): a batch is cut where padding to its longest prompt would exceed this multiple of
            its real tokens (`length_batches`); ``float("inf")`` pads every batch to its longest prompt.
    """

    max_padding: float = MAX_PADDING

    def __init__(
        self,
        model: str,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        batch_size: int = 8,
        revision: str | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if dtype not in _DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; use one of: {', '.join(_DTYPES)}")
        torch, transformers = _import_torch_transformers()
        self._torch = torch
        self.model_id = model
        self.revision = revision
        self.device = device
        self.batch_size = batch_size
        self.path = resolve(model, revision=revision)

        self.tokenizer = transformers.AutoTokenizer.from_pretrained(
            self.path, padding_side="left", trust_remote_code=trust_remote_code)
        if self.tokenizer.pad_token is None:
            if self.tokenizer.eos_token is None:
                raise ValueError(f"the tokenizer of {model!r} has neither a pad nor an eos token; cannot batch")
            self.tokenizer.pad_token = self.tokenizer.eos_token

        torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
        self.model = transformers.AutoModelForCausalLM.from_pretrained(
            self.path, dtype=torch_dtype, trust_remote_code=trust_remote_code)
        self.model.to(device).eval()

        self.eos_token_ids: tuple[int, ...] = _eos_token_ids(self.model, self.tokenizer, model)
        self.pad_token_id: int = self.tokenizer.pad_token_id

        text_config = self.model.config.get_text_config()
        self.max_model_len: int | None = getattr(text_config, "max_position_embeddings", None)
        self._grammars = Grammars(self.tokenizer, text_config.vocab_size, self.eos_token_ids)
        # One engine call at a time: concurrent callers (judges awaited together, async rewards of one step) get
        # the batches and numerics of a sequential run, and a GPU holds one batch's activations, not several.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        rev = f", revision={self.revision!r}" if self.revision else ""
        return f"TransformersBackend({self.model_id!r}{rev}, device={self.device!r}, batch_size={self.batch_size})"

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Generate one `Generation` per request, in the order given.

        Requests are grouped by identical `Sampling`, stop strings and regex (one ``generate`` call cannot mix
        them) and cut into batches of at most ``batch_size`` prompts of similar length (`length_batches`), so one
        long input does not pad every short prompt to its length. Problems with one prompt (too long, a chat
        template error) or one batch (a torch error) come back as ``finish_reason="error"`` items.

        Args:
            requests (`Sequence[GenerationRequest]`): prompts and their decoding settings; ``stop`` ends a row at
                its first stop string, ``regex`` decodes it under that regular expression (xgrammar) and ends it
                when the expression is complete.

        Returns:
            `list[Generation]`: ``text`` up to, not including, the first EOS, or up to and including the first
            stop string, with special tokens kept (``</think>`` survives); ``finish_reason`` is ``"stop"`` (EOS
            or a stop string), ``"length"`` (``max_tokens`` or the context reached first) or ``"error"``.
        """
        results: list[Generation | None] = [None] * len(requests)
        groups: dict[tuple[Sampling, tuple[str, ...], str | None], list[int]] = {}
        for i, req in enumerate(requests):
            groups.setdefault((req.sampling, tuple(req.stop), req.regex), []).append(i)

        for (sampling, stop, regex), indices in groups.items():
            encoded: list[tuple[int, list[int]]] = []
            for i in indices:
                ids, problem = self._checked(requests[i].prompt)
                if problem is None:
                    encoded.append((i, ids))
                else:
                    results[i] = problem
            for batch in length_batches(encoded, self.batch_size, self.max_padding):
                try:
                    generations = self._generate_batch([ids for _, ids in batch], sampling, stop, regex)
                except Exception as exc:  # e.g. out of memory: fail this batch's items, keep going
                    message = f"generation failed: {type(exc).__name__}: {exc}"
                    generations = [engine_error(message, prompt_tokens=len(ids)) for _, ids in batch]
                for (i, _), generation in zip(batch, generations):
                    results[i] = generation

        return [g if g is not None else engine_error("internal error: no result") for g in results]

    def score_continuations(self, items: Sequence[tuple[ChatPrompt, str]]) -> list[float | None]:
        """For each ``(prompt, continuation)``, the summed log-probability of the continuation's tokens right
        after the prompt (chat template and prefix included, as `generate` encodes it); the continuation is
        tokenized alone, without special tokens. Batched like `generate`; None for an item whose prompt cannot
        be built, or that does not fit the model's context, and for the items of a batch that failed."""
        scores: list[float | None] = [None] * len(items)
        rows: dict[int, tuple[list[int], list[int]]] = {}
        for i, (prompt, continuation) in enumerate(items):
            ids, problem = self._checked(prompt)
            try:
                cont = token_ids(self.tokenizer, continuation)
            except Exception:  # this item's continuation only
                continue
            fits = self.max_model_len is None or len(ids) + len(cont) <= self.max_model_len
            if problem is None and cont and fits:
                rows[i] = (ids, cont)
        for batch in length_batches([(i, p + c) for i, (p, c) in rows.items()], self.batch_size, self.max_padding):
            try:
                chosen = [rows[i] for i, _ in batch]
                inputs, keep = score_inputs(self._torch, self.device, self.pad_token_id, chosen)
                with self._lock, self._torch.inference_mode():
                    found = continuation_scores(self._torch, self.model(**inputs, logits_to_keep=keep).logits,
                                                chosen, keep)
            except Exception:  # e.g. out of memory: these items have no score, the others keep theirs
                continue
            for (i, _), score in zip(batch, found):
                scores[i] = score
        return scores

    def _checked(self, prompt: ChatPrompt) -> tuple[list[int], Generation | None]:
        """The prompt's token ids, or the error result of an item whose prompt cannot be built or does not fit."""
        try:
            ids = self._encode(prompt)
        except Exception as exc:  # a template or tokenizer problem belongs to this item only
            return [], engine_error(f"could not build the prompt: {type(exc).__name__}: {exc}")
        problem = _too_long(len(ids), self.max_model_len)
        return ids, None if problem is None else engine_error(problem, prompt_tokens=len(ids))

    def _encode(self, prompt: ChatPrompt) -> list[int]:
        # verbose=False: an over-long prompt is reported by `_too_long` as this item's error; the
        # tokenizer's own "will result in indexing errors" warning would only mislead.
        return encode(self.tokenizer, prompt, verbose=False)

    def count_tokens(self, prompt: ChatPrompt) -> int:
        """Tokens ``prompt`` takes in the model's context (chat template and prefix included), as `generate`
        counts them; the judge uses it to fit long inputs to ``max_model_len``."""
        return len(self._encode(prompt))

    def observe(self, stats: Mapping[str, int]) -> None:
        """A local engine keeps no statistics of its callers: nothing to do."""

    def _generate_batch(self, prompts: list[list[int]], sampling: Sampling, stop: tuple[str, ...],
                        regex: str | None) -> list[Generation]:
        torch = self._torch
        input_ids, attention_mask = left_padded(torch, prompts, self.pad_token_id)
        width = input_ids.shape[1]
        max_new = sampling.max_tokens
        if self.max_model_len is not None:
            # Never run past the positions the model was trained on; hitting this is reported as "length".
            max_new = min(max_new, self.max_model_len - width)
        kwargs = generation_kwargs(max_new, self.eos_token_ids, self.pad_token_id)
        if stop:
            kwargs.update(stop_strings=list(stop), tokenizer=self.tokenizer)
        with self._lock, torch.inference_mode():
            # The grammar masks the logits before the warpers and the per-row sampler see them.
            processors = [] if regex is None else [self._grammars.processor(regex)]
            processors += sampling_processors(sampling, [row_seed(sampling.seed, ids) for ids in prompts])
            output = self.model.generate(input_ids=input_ids.to(self.device),
                                         attention_mask=attention_mask.to(self.device),
                                         logits_processor=processors, **kwargs)
        return [to_generation(self.tokenizer, len(ids), row, self.eos_token_ids, stop)
                for ids, row in zip(prompts, output[:, width:].tolist())]


def _too_long(n_tokens: int, limit: int | None) -> str | None:
    """Why a prompt of ``n_tokens`` cannot run in the model's context of ``limit`` tokens, or None when it can."""
    room = overflow(n_tokens, limit)
    if room is None:
        return None
    if room == "fills":
        return (f"prompt has {n_tokens} tokens, which fills the model's context of {limit} and leaves no room "
                "to generate; shorten the input or raise the limit")
    return (f"prompt has {n_tokens} tokens, more than the model's context of {limit}; "
            "shorten the input or raise the limit")


def _eos_token_ids(model: Any, tokenizer: Any, name: str) -> tuple[int, ...]:
    """Every token id that ends a generation of ``model``.

    Chat models often list several stop ids in generation_config (Qwen3: <|im_end|> and <|endoftext|>); the
    tokenizer's eos is added too because it is the end-of-turn token for chat templates.
    """
    gen_eos = model.generation_config.eos_token_id
    eos: set[int] = set()
    if gen_eos is not None:
        eos.update([gen_eos] if isinstance(gen_eos, int) else gen_eos)
    if tokenizer.eos_token_id is not None:
        eos.add(tokenizer.eos_token_id)
    if not eos:
        raise ValueError(f"model {name!r} defines no eos token id; generation could never stop")
    return tuple(sorted(eos))
