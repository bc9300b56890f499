"""The real vLLM engines that the budget and concurrency test modules share (CPU build, SmolLM2-135M):
class-scoped fixtures, so a module's in-process engine is closed before its server starts and the two never
hold memory and cores at once. Import them into a test module: ``from vllm_engines import engine, server``.

Small settings for CPU: float32 (bf16 is several times slower here), a short context, a 1 GiB KV cache, and
eager mode (torch.compile would add ~45 s to every engine start).
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before anything imports huggingface_hub, which reads it once

import pytest

MAX_MODEL_LEN = 2048
KV_CACHE_BYTES = 1 << 30


@pytest.fixture(scope="class")
def engine():
    """An in-process `VLLMBackend`, closed after the class."""
    from mr3_reward.backends.vllm import VLLMBackend

    backend = VLLMBackend("smollm2-135m", dtype="float32", max_model_len=MAX_MODEL_LEN, enforce_eager=True,
                          kv_cache_memory_bytes=KV_CACHE_BYTES)
    try:
        yield backend
    finally:
        backend.close()


@pytest.fixture(scope="class")
def server(tmp_path_factory):
    """A ``vllm serve`` on 127.0.0.1 (`VLLMServer`), stopped after the class; its log is kept in a temporary folder."""
    from mr3_reward.backends.vllm import VLLMServer

    srv = VLLMServer("smollm2-135m", dtype="float32", max_model_len=MAX_MODEL_LEN,
                     args=["--enforce-eager", "--kv-cache-memory-bytes", str(KV_CACHE_BYTES)],
                     log_path=tmp_path_factory.mktemp("vllm-serve") / "server.log")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
