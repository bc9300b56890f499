"""Plain Hugging Face ``transformers`` engine: ``model.generate`` on CPU or one GPU.

The reference engine: slow next to vLLM, but it runs anywhere torch runs, needs no server, and is what the
offline demo and the tests use (with the ``smollm2-135m`` / ``tiny-random`` aliases of `mr3_reward.models`).

torch and transformers are imported inside the class, never at module import, so ``import mr3_reward``
(and ``import mr3_reward.backends.transformers``) stays cheap for users who only talk to a vLLM server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mr3_reward.backends.base import ChatPrompt, Generation, GenerationRequest
from mr3_reward.backends.hf import encode, engine_error, overflow
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

    Example:

    ```python
    from mr3_reward.backends.base import ChatPrompt, GenerationRequest
    from mr3_reward.types import Sampling
    backend = TransformersBackend("smollm2-135m")
    backend.generate([GenerationRequest(ChatPrompt("Be brief.", "Hi!", prefix=""), Sampling(max_tokens=16))])
    [Generation(text='Hello! How can I help you today?', finish_reason='stop', ...)]
    ```
    """

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

        # Left padding: a decoder-only model continues from the last position of each row, so every row's
        # real prompt must end at the same (last) column; right padding would put pads between the prompt
        # and the generated tokens.
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(
            self.path, padding_side="left", trust_remote_code=trust_remote_code
        )
        if self.tokenizer.pad_token is None:
            if self.tokenizer.eos_token is None:
                raise ValueError(f"the tokenizer of {model!r} has neither a pad nor an eos token; cannot batch")
            self.tokenizer.pad_token = self.tokenizer.eos_token

        torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
        self.model = transformers.AutoModelForCausalLM.from_pretrained(
            self.path, dtype=torch_dtype, trust_remote_code=trust_remote_code
        )
        self.model.to(device)
        self.model.eval()

        self.eos_token_ids: tuple[int, ...] = _eos_token_ids(self.model, self.tokenizer, model)
        self.pad_token_id: int = self.tokenizer.pad_token_id

        text_config = self.model.config.get_text_config()
        self.max_model_len: int | None = getattr(text_config, "max_position_embeddings", None)

    def __repr__(self) -> str:
        rev = f", revision={self.revision!r}" if self.revision else ""
        return f"TransformersBackend({self.model_id!r}{rev}, device={self.device!r}, batch_size={self.batch_size})"

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Generate one `Generation` per request, in the order given.

        Requests are grouped by identical `Sampling` (one ``generate`` call cannot mix settings), sorted by
        prompt length inside a group so a batch wastes little compute on padding, and cut into batches of
        ``batch_size``. Problems with one prompt (too long, a chat template error) or one batch (a torch
        error) come back as ``finish_reason="error"`` items; the call itself does not raise.

        Args:
            requests (`Sequence[GenerationRequest]`): prompts and their decoding settings.

        Returns:
            `list[Generation]`: ``text`` is the generated text up to, not including, the first EOS, decoded
            with special tokens kept (so tags such as ``</think>`` survive); ``finish_reason`` is ``"stop"``
            (EOS reached), ``"length"`` (``max_tokens`` or the model's context reached first) or
            ``"error"``; ``completion_tokens`` counts the EOS token when there is one.
        """
        results: list[Generation | None] = [None] * len(requests)
        groups: dict[Sampling, list[int]] = {}
        for i, req in enumerate(requests):
            groups.setdefault(req.sampling, []).append(i)

        for sampling, indices in groups.items():
            encoded: list[tuple[int, list[int]]] = []
            for i in indices:
                try:
                    ids = self._encode(requests[i].prompt)
                except Exception as exc:  # a template or tokenizer problem belongs to this item only
                    results[i] = engine_error(f"could not build the prompt: {type(exc).__name__}: {exc}")
                    continue
                problem = self._context_problem(len(ids))
                if problem:
                    results[i] = engine_error(problem, prompt_tokens=len(ids))
                    continue
                encoded.append((i, ids))

            # Stable sort: equal-length prompts keep their order, so the same request list always forms the
            # same batches and a seeded run is reproducible.
            encoded.sort(key=lambda item: len(item[1]))
            for start in range(0, len(encoded), self.batch_size):
                batch = encoded[start : start + self.batch_size]
                try:
                    generations = self._generate_batch([ids for _, ids in batch], sampling)
                except Exception as exc:  # e.g. out of memory: fail this batch's items, keep going
                    message = f"generation failed: {type(exc).__name__}: {exc}"
                    generations = [engine_error(message, prompt_tokens=len(ids)) for _, ids in batch]
                for (i, _), generation in zip(batch, generations):
                    results[i] = generation

        return [g if g is not None else engine_error("internal error: no result") for g in results]

    def _encode(self, prompt: ChatPrompt) -> list[int]:
        # verbose=False: an over-long prompt is reported by `_context_problem` as this item's error; the
        # tokenizer's own "will result in indexing errors" warning would only mislead.
        return encode(self.tokenizer, prompt, verbose=False)

    def count_tokens(self, prompt: ChatPrompt) -> int:
        """Tokens ``prompt`` takes in the model's context (chat template and prefix included), as `generate`
        counts them; the judge uses it to fit long inputs to ``max_model_len``."""
        return len(self._encode(prompt))

    def observe(self, stats: Mapping[str, int]) -> None:
        """A local engine keeps no statistics of its callers: nothing to do."""

    def _context_problem(self, n_tokens: int) -> str | None:
        limit = self.max_model_len
        room = overflow(n_tokens, limit)
        if room is None:
            return None
        if room == "fills":
            return (
                f"prompt has {n_tokens} tokens, which fills the model's context of {limit} and leaves no room "
                "to generate; shorten the input or raise the limit"
            )
        return (
            f"prompt has {n_tokens} tokens, more than the model's context of {limit}; "
            "shorten the input or raise the limit"
        )

    def _generate_batch(self, prompts: list[list[int]], sampling: Sampling) -> list[Generation]:
        torch = self._torch
        width = max(len(ids) for ids in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, ids in enumerate(prompts):
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, width - len(ids) :] = 1

        max_new = sampling.max_tokens
        if self.max_model_len is not None:
            # Never run past the positions the model was trained on; hitting this is reported as "length".
            max_new = min(max_new, self.max_model_len - width)

        kwargs = _generation_kwargs(self, sampling, max_new)
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        if sampling.seed is None:
            with torch.inference_mode():
                output = self.model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        else:
            # Seed right before each batch so a batch's samples depend only on its inputs, not on what ran
            # before it in this process. fork_rng puts the caller's RNG state back afterwards: a reward
            # function that reseeded the global RNG on every call would make a training loop's own random
            # draws (dropout, its sampling) repeat identically from step to step.
            cuda_in_use = torch.cuda.is_available() and torch.cuda.is_initialized()
            devices = list(range(torch.cuda.device_count())) if cuda_in_use else []
            with torch.random.fork_rng(devices=devices), torch.inference_mode():
                torch.manual_seed(sampling.seed)
                output = self.model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        return _cut_at_eos(self.tokenizer, prompts, output[:, width:].tolist(), set(self.eos_token_ids))


def _generation_kwargs(backend: TransformersBackend, sampling: Sampling, max_new_tokens: int) -> dict[str, Any]:
    """The ``model.generate`` arguments that run exactly ``sampling`` on ``backend``'s model."""
    kwargs: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "do_sample": sampling.temperature > 0,
        "eos_token_id": list(backend.eos_token_ids),
        "pad_token_id": backend.pad_token_id,
    }
    if sampling.temperature > 0:
        # Every knob is set explicitly: transformers fills unset (None) ones from the checkpoint's
        # generation_config (mR3/Qwen3 ship their own top_k/top_p), and `Sampling` must be what runs.
        kwargs["temperature"] = sampling.temperature
        kwargs["top_p"] = sampling.top_p
        kwargs["top_k"] = sampling.top_k if sampling.top_k > 0 else 0  # -1 (off) -> 0, which transformers skips
        if sampling.min_p > 0:
            kwargs["min_p"] = sampling.min_p
        elif getattr(backend.model.generation_config, "min_p", None) is not None:
            kwargs["min_p"] = 0.0  # override a checkpoint default; 0 keeps every token
    return kwargs


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


def _cut_at_eos(tokenizer: Any, prompts: list[list[int]], new_tokens: list[list[int]], stop: set[int]) -> list[Generation]:
    """One `Generation` per row of generated tokens, cut at its first stop token and decoded."""
    generations = []
    for ids, row in zip(prompts, new_tokens):
        # After a row hits EOS, generate() fills it with pad tokens until the longest row is done, so
        # everything from the first EOS on is dropped.
        end = next((j for j, token in enumerate(row) if token in stop), None)
        if end is None:
            kept, finish, completion = row, "length", len(row)
        else:
            kept, finish, completion = row[:end], "stop", end + 1
        text = tokenizer.decode(kept, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        generations.append(
            Generation(text=text, finish_reason=finish, prompt_tokens=len(ids), completion_tokens=completion)
        )
    return generations
