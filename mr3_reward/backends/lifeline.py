"""Engine processes that die with the process that started them, however it ends: exit, exception or SIGKILL.

vLLM runs its engine in child processes: ``vllm serve`` (`VLLMServer`) is a server plus its engine core and
worker, and an in-process engine (`VLLMBackend`) spawns an engine core and a worker. None of them notices
when the Python process that started them dies: SIGKILLed, it leaves them running, holding their memory,
until they are killed by hand. ``atexit`` does not run on SIGKILL, and ``PR_SET_PDEATHSIG`` fires when the
*thread* that started a child ends, so on its own it would kill a server started from a worker thread.

A lifeline is a small watchdog process (this file, run as a script: the standard library, plus psutil in
watch mode) that polls its parent's pid. Once the parent is gone it ends what it guards: SIGTERM, then
SIGKILL after ``grace_s``. Two modes:

* **wrap**: ``lifeline.py --parent PID --grace S -- COMMAND...`` runs COMMAND as its child, in its own
  process group (the caller starts it with ``start_new_session=True``), and exits with its code. The child
  gets ``PR_SET_PDEATHSIG`` from the lifeline's only thread, so it also ends if the lifeline itself is
  killed. `VLLMServer` starts the server this way: server, engine core and worker are one ``killpg`` away.
* **watch**: ``lifeline.py --parent PID --grace S`` adopts the descendants its parent starts after it, until
  a line ``settle`` on its stdin (or its end); from then on it follows only those and their descendants,
  and exits when they are gone or on a line ``release``. `VLLMBackend` starts one before ``vllm.LLM``, so an
  engine whose parent dies while it is still starting is ended too.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
import warnings
from typing import Any

__all__ = ["GRACE_S", "Lifeline", "wrap"]

GRACE_S = 5.0  # seconds between SIGTERM and SIGKILL once the parent is gone
POLL_S = 0.5  # how often the parent's pid is checked
_PR_SET_PDEATHSIG = 1


def wrap(command: list[str], grace_s: float = GRACE_S) -> list[str]:
    """``command`` run under a lifeline of this process (wrap mode): start the result with
    ``start_new_session=True``; its pid is then the group of everything it runs.

    >>> wrap(["sleep", "9"])[-3:]
    ['--', 'sleep', '9']
    """
    return [*_script(grace_s), "--", *command]


class Lifeline:
    """A watch-mode lifeline of this process: `start` it before starting an engine's processes, `settle` once
    they run, `release` when they have been shut down.

    >>> line = Lifeline.start()
    >>> line.settle(); line.release()
    """

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc

    @classmethod
    def start(cls, grace_s: float = GRACE_S) -> Lifeline:
        """Start the watchdog and wait until it runs; from now on it adopts every process this one starts,
        until `settle`. A watchdog that cannot start is a warning: the engine works without it."""
        proc = subprocess.Popen(_script(grace_s), stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
        if proc.stdout.readline().strip() != b"ready":  # it noted the processes that are not ours
            warnings.warn(f"the lifeline watchdog did not start (exit code {proc.wait()}): engine processes "
                          "will outlive this process if it is killed", RuntimeWarning, stacklevel=2)
        proc.stdout.close()
        return cls(proc)

    def _say(self, line: str) -> None:
        try:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        except (OSError, ValueError):  # the watchdog has already exited
            pass

    def settle(self) -> None:
        """Stop adopting new processes of this one: guard those adopted so far, and their descendants."""
        self._say("settle")

    def release(self) -> None:
        """Stop guarding (the engine was shut down) and let the watchdog exit."""
        self._say("release")
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass


def _script(grace_s: float) -> list[str]:
    # -I: the script's folder (mr3_reward/backends, with its openai.py and vllm.py) stays off sys.path.
    return [sys.executable, "-I", os.path.abspath(__file__), "--parent", str(os.getpid()), "--grace", str(grace_s)]


# ---- the watchdog process ------------------------------------------------------------------------------


def _main(argv: list[str]) -> int:
    command = argv[argv.index("--") + 1:] if "--" in argv else []
    options = argv[:argv.index("--")] if "--" in argv else argv
    parent = int(options[options.index("--parent") + 1])
    grace_s = float(options[options.index("--grace") + 1])
    if os.getppid() != parent:  # the parent died before we started: nothing of it to guard
        return 1
    return _wrapped(command, parent, grace_s) if command else _watch(parent, grace_s)


def _wrapped(command: list[str], parent: int, grace_s: float) -> int:
    # `VLLMServer.stop` signals the whole group: the lifeline waits for its child to shut down instead of
    # dying first. Handlers (unlike SIG_IGN) are reset in the child by exec.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    child = subprocess.Popen(command, preexec_fn=_death_signal(os.getpid()))
    while True:
        try:
            code = child.wait(timeout=POLL_S)
            os.killpg(0, signal.SIGTERM)  # anything of the group the child left behind (not this process)
            return code if code >= 0 else 128 - code  # killed by a signal: the shell's convention
        except subprocess.TimeoutExpired:
            pass
        if os.getppid() != parent:
            os.killpg(0, signal.SIGTERM)
            try:
                child.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
            os.killpg(0, signal.SIGKILL)  # whatever is left of the group, this process last


def _death_signal(lifeline: int) -> Any:
    """What the wrapped child runs before exec: arm SIGTERM for when the lifeline (one thread) dies."""
    prctl = None
    if sys.platform.startswith("linux"):
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl

    def arm() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != lifeline:  # it died before the signal was armed
            os._exit(1)

    return arm


def _watch(parent_pid: int, grace_s: float) -> int:
    import psutil

    parent = psutil.Process(parent_pid)
    before = {p.pid for p in _descendants(parent)}
    print("ready", flush=True)
    ours: dict[int, Any] = {}
    settled, reading = False, True
    while True:
        command = _commands(POLL_S) if reading else (time.sleep(POLL_S) or "")
        if command is None:  # the parent closed its end (or is dying): no more commands; settle
            reading, command = False, "settle"
        if "release" in command:
            return 0
        if os.getppid() != parent_pid:
            _end(list(ours.values()), grace_s)
            return 0
        if not settled:
            ours.update((p.pid, p) for p in _descendants(parent) if p.pid not in before)
        settled = settled or "settle" in command
        ours = {pid: p for pid, p in ours.items() if p.is_running()}
        if settled and not ours:
            return 0


def _commands(timeout: float) -> str | None:
    """The commands that reached stdin within ``timeout`` ("" if none), or None at its end."""
    ready, _, _ = select.select([0], [], [], timeout)
    if not ready:
        return ""
    chunk = os.read(0, 4096)
    return chunk.decode(errors="replace") if chunk else None


def _descendants(process: Any) -> list[Any]:
    import psutil

    try:
        return process.children(recursive=True)
    except psutil.Error:
        return []


def _end(processes: list[Any], grace_s: float) -> None:
    """SIGTERM ``processes`` and their descendants, then SIGKILL what is left after ``grace_s``."""
    import psutil

    everything = {p.pid: p for p in processes if p.is_running()}
    for p in list(everything.values()):
        everything.update((d.pid, d) for d in _descendants(p))
    for p in everything.values():
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(list(everything.values()), timeout=grace_s)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
