"""How a judge pool is built (`PoolConfig`), its names, its error, and the two helpers every part uses:
Ray imported on demand and the first line of a remote error."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mr3_reward.backends.registry import BACKENDS, is_import_path

DEFAULT_NAME = "mr3-judges"
NAMESPACE = "mr3"
ENGINES = BACKENDS  # the engine names a replica can run: the backends `make_backend` knows
_ONE_CALL_ENGINES = ("vllm", "transformers")  # engines that serve one generate call at a time


class PoolError(RuntimeError):
    """A pool could not be started or reached as asked (the message says what to change)."""


def _ray():
    import ray

    return ray


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _cause(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


@dataclass(frozen=True)
class PoolConfig:
    """How a pool is built; the controller keeps it, clients read it when they connect.

    model (`str`): hub id, local directory or alias of the judge.
    engine (`str`): the backend each replica runs: ``vllm``, ``transformers``, ``openai``, ``fake``, or
        ``package.module:Class`` for any class built as ``Class(model, **backend_options)`` with
        ``model_id`` and ``generate`` (e.g. ``mr3_reward.backends.testing:LatencyBackend``).
    gpus_per_replica (`float`): GPUs reserved per replica; with vLLM and more than one GPU the engine uses
        tensor parallelism over them. cpus_per_replica (`float`): CPUs reserved per replica.
    resources (`dict`): extra Ray resources per replica (a custom resource marks judge nodes).
    backend_options (`dict`): passed to the engine's constructor in every replica.
    max_batch (`int`): the most items a replica sends to its engine in one call.
    engine_calls (`int`): engine calls a replica runs at once. 1 suits an engine that runs one call at a time
        (vLLM's in-process ``LLM``, transformers): chunks that arrive while it works join its next call. More
        suits an engine that batches across calls (``openai`` against a ``vllm serve``, `LatencyBackend`):
        a chunk that arrives while others are in the engine starts at once instead of waiting for them.
    request_timeout_s (`float`): how long one attempt of a chunk may take before it is re-sent, and how long
        an engine may sit on one batch before the controller restarts its replica.
    max_restarts (`int`): restarts of one replica (crashes and hang restarts) before it is taken out.
    health_interval_s (`float`): how often the controller checks the replicas.
    thinking_budget (`int`, *optional*): the pool's cap on reasoning tokens: a budgeted or constrained request
        thinks at most this long, and an unbudgeted one (which runs as one free generation) is left as it is.
    """

    model: str
    engine: str = "vllm"
    gpus_per_replica: float = 1.0
    cpus_per_replica: float = 1.0
    resources: Mapping[str, float] = field(default_factory=dict)
    backend_options: Mapping[str, Any] = field(default_factory=dict)
    max_batch: int = 256
    engine_calls: int = 1
    request_timeout_s: float = 900.0
    max_restarts: int = 5
    health_interval_s: float = 5.0
    thinking_budget: int | None = None

    def problems(self) -> list[str]:
        """Every problem with these settings, each saying what to pass; `JudgePool.start` raises them at once."""
        out = []
        if not isinstance(self.model, str) or not self.model.strip():
            out.append(f"model must be a model id, a local directory or an alias, got {self.model!r}")
        if not isinstance(self.engine, str) or (self.engine not in ENGINES and not is_import_path(self.engine)):
            out.append(f"unknown engine {self.engine!r}; use one of: {', '.join(ENGINES)}, or package.module:Class")
        for label, value in (("gpus_per_replica", self.gpus_per_replica), ("cpus_per_replica", self.cpus_per_replica)):
            if not _number(value) or value < 0:
                out.append(f"{label} must be a number >= 0, got {value!r}")
        gpus = self.gpus_per_replica
        if _number(gpus) and gpus > 1 and gpus != int(gpus):
            out.append(f"gpus_per_replica above 1 must be a whole number (the engine's tensor parallelism), got {gpus!r}")
        if not _integer(self.max_batch) or self.max_batch < 1:
            out.append(f"max_batch must be a positive integer, got {self.max_batch!r}")
        if not _integer(self.engine_calls) or self.engine_calls < 1:
            out.append(f"engine_calls must be a positive integer, got {self.engine_calls!r}")
        elif self.engine_calls > 1 and self.engine in _ONE_CALL_ENGINES:
            out.append(f"engine_calls={self.engine_calls} needs an engine that batches across calls; {self.engine!r} runs "
                       "one call at a time (a replica merges waiting chunks into its next call): use engine_calls=1")
        if not _integer(self.max_restarts) or self.max_restarts < 0:
            out.append(f"max_restarts must be an integer >= 0, got {self.max_restarts!r}")
        for label, value in (("request_timeout_s", self.request_timeout_s), ("health_interval_s", self.health_interval_s)):
            if not _number(value) or value <= 0:
                out.append(f"{label} must be > 0 seconds, got {value!r}")
        if self.thinking_budget is not None and (not _integer(self.thinking_budget) or self.thinking_budget < 1):
            out.append(f"thinking_budget must be a positive number of tokens or None, got {self.thinking_budget!r}")
        if not isinstance(self.resources, Mapping):
            out.append(f"resources must be a dict of Ray resource -> amount per replica, e.g. {{'mr3_judge': 1}}; "
                       f"got {type(self.resources).__name__}")
        else:
            out += [f"resources[{k!r}] must be a positive number, got {v!r}" for k, v in self.resources.items()
                    if not isinstance(k, str) or not _number(v) or v <= 0]
        if not isinstance(self.backend_options, Mapping) or not all(isinstance(k, str) for k in self.backend_options):
            out.append(f"backend_options must be a dict of the engine's keyword arguments, e.g. "
                       f"{{'max_model_len': 8192}}; got {self.backend_options!r}")
        return out

    def bundle(self) -> dict[str, float]:
        """The placement-group bundle of one replica."""
        b = {"CPU": float(self.cpus_per_replica), "GPU": float(self.gpus_per_replica),
             **{k: float(v) for k, v in dict(self.resources).items()}}
        b = {k: v for k, v in b.items() if v > 0}
        return b or {"CPU": 0.01}  # Ray refuses an empty bundle

    def engine_options(self) -> dict[str, Any]:
        """Backend options with the defaults a replica's resources imply."""
        options = dict(self.backend_options)
        gpus = int(self.gpus_per_replica)
        if self.engine == "vllm" and gpus > 1:
            options.setdefault("tensor_parallel_size", gpus)
        if self.engine == "transformers" and self.gpus_per_replica > 0:
            options.setdefault("device", "cuda")
        return options
