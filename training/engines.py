"""Which model a stage calls (teacher, difficulty model), built from a config block.

Any backend of the package works: a name that `mr3_reward.judge.make_backend` knows (``transformers``;
the vLLM and OpenAI-compatible backends by their names as they land), or ``"package.module:factory"``
for an engine of your own, called as ``factory(model=..., **backend_options)`` and returning an object
with ``model_id`` and ``generate(requests)`` (the `mr3_reward.backends.base.Backend` protocol).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mr3_reward.backends.base import Backend
from mr3_reward.backends.registry import load_object
from mr3_reward.judge import make_backend
from mr3_reward.types import Sampling

# Backend options that change speed or placement but not what is generated: left out of stage digests
# so a run can resume on another machine with another batch size.
PERFORMANCE_ONLY = frozenset({
    "batch_size", "device", "tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size",
    "gpu_memory_utilization", "max_num_seqs", "max_concurrency", "timeout", "timeout_s", "enforce_eager",
    "enable_prefix_caching", "max_retries", "backoff_s", "api_key_env", "kv_cache_memory_bytes",
})


@dataclass
class ModelSpec:
    """A model to generate with.

    model (`str`): an alias (``smollm2-135m``), a local folder or a hub id (``openai/gpt-oss-120b``).
    backend (`str`): a backend name (``transformers``, ``vllm``, ``openai``...) or ``"module:factory"``.
    backend_options (`dict`): passed to the backend's constructor (``device``, ``batch_size``, ``base_url``...).
    sampling (`dict`): overrides of `mr3_reward.types.Sampling` (``max_tokens``, ``temperature``, ``seed``...);
        the defaults are mR3's recommended decoding.
    """

    model: str
    backend: str = "transformers"
    backend_options: dict[str, Any] = field(default_factory=dict)
    sampling: dict[str, Any] = field(default_factory=dict)

    def problems(self, where: str) -> list[str]:
        out = []
        if not isinstance(self.model, str) or not self.model.strip():
            out.append(f"{where}.model must name a model (an alias, a folder or a hub id)")
        try:
            self.make_sampling()
        except (TypeError, ValueError) as exc:
            out.append(f"{where}.sampling: {exc}")
        return out

    def make_sampling(self) -> Sampling:
        return Sampling().with_(**self.sampling)

    def key(self) -> dict[str, Any]:
        """What about this model changes its generations (for stage digests)."""
        options = {k: v for k, v in self.backend_options.items() if k not in PERFORMANCE_ONLY}
        return {"model": self.model, "backend": self.backend, "options": options,
                "sampling": asdict(self.make_sampling())}

    def build(self) -> Backend:
        return load_backend(self.backend, self.model, self.backend_options)


def load_backend(backend: str | Backend, model: str, options: dict[str, Any] | None = None) -> Backend:
    """A backend by name, by ``"module:factory"`` import path, or an instance passed through."""
    options = dict(options or {})
    if isinstance(backend, str) and ":" in backend:
        instance = load_object(backend)(model=model, **options)
        return make_backend(instance, model)  # checks it follows the Backend protocol
    return make_backend(backend, model, **options)
