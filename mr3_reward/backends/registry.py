"""The engines the package knows by name, and the one way to load an engine of your own by import path.

Every caller that builds an engine from a name goes through here: `mr3_reward.judge.Judge` (``backend=``),
the ``mr3`` commands (``--backend``), the pool replicas (``--engine``) and the training stages. Engine
modules are imported only when one is built.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from mr3_reward.backends.base import Backend

__all__ = ["BACKENDS", "is_import_path", "load_object", "make_backend"]

BACKENDS = ("transformers", "vllm", "openai", "fake")
_IMPORT_PATH = re.compile(r"[\w.]+:\w+")


def make_backend(backend: str | Backend, model: str, **options: Any) -> Backend:
    """Build a backend by name (imports stay lazy), or pass an instance through.

    Args:
        backend (`str` or `Backend`): one of `BACKENDS`, or an object with ``model_id`` and ``generate``.
        model (`str`): the model the engine loads (an alias, a local folder or a hub id), or the served name.
        options: the engine's keyword arguments (``base_url`` is required for ``openai``).

    Raises:
        ValueError: an unknown name, or ``openai`` without ``base_url``.
        TypeError: ``backend`` is neither a name nor a `Backend`.

    >>> make_backend("fake", "judge").model_id
    'judge'
    """
    if not isinstance(backend, str):
        if not isinstance(backend, Backend):
            raise TypeError(f"backend must be a name ({', '.join(BACKENDS)}) or an object with model_id and "
                            f"generate(requests); got {type(backend).__name__}")
        return backend
    if backend == "transformers":
        from mr3_reward.backends.transformers import TransformersBackend

        return TransformersBackend(model, **options)
    if backend == "vllm":
        from mr3_reward.backends.vllm import VLLMBackend

        return VLLMBackend(model, **options)
    if backend == "openai":
        if "base_url" not in options:
            raise ValueError("backend 'openai' needs the server's URL: backend_options={'base_url': "
                             "'http://127.0.0.1:8000/v1'} (the model name is the one the server serves)")
        from mr3_reward.backends.openai import OpenAIBackend

        return OpenAIBackend(model, **options)
    if backend == "fake":
        from mr3_reward.backends.fake import FakeBackend

        return FakeBackend(model_id=model, **options)
    raise ValueError(f"unknown backend {backend!r}; use one of: {', '.join(BACKENDS)}")


def is_import_path(name: object) -> bool:
    """Whether ``name`` has the ``package.module:Name`` form `load_object` reads.

    >>> is_import_path("mr3_reward.backends.testing:LatencyBackend"), is_import_path("vllm")
    (True, False)
    """
    return bool(_IMPORT_PATH.fullmatch(str(name)))


def load_object(path: str) -> Any:
    """The object ``package.module:Name`` names: an engine class or factory of your own.

    Raises:
        ValueError: the module cannot be imported or has no such name (the message says what to pass).

    >>> load_object("mr3_reward.backends.testing:LatencyBackend").__name__
    'LatencyBackend'
    """
    module_name, _, attr = path.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"backend {path!r}: cannot import {attr!r} from {module_name!r} ({exc}); "
                         "use 'package.module:factory' with the module on the Python path") from None
