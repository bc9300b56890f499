"""Engine processes die with the process that started them (issue: orphaned servers), whether it exits,
raises or is SIGKILLed.

An *owner* process (a script written to a temporary folder) starts something, prints READY and waits. The
test collects the owner's whole process tree with psutil, ends the owner, and checks that no process of
that tree is left within 30 s (a zombie counts as gone: it holds nothing).

* unmarked, fast: the lifeline with stand-in processes (``sleep``, a small HTTP server) instead of vLLM: a
  `VLLMServer` whose command is a stand-in that starts a child of its own (as the server starts its engine
  core), and a watch-mode `Lifeline` over processes the owner starts, for each way the owner can end;
* ``vllm``: a real ``vllm serve`` and a real in-process engine, each in an owner that is SIGKILLed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.reliability.test_exposure import STAND_IN as EXPOSURE_STAND_IN

REPO = Path(__file__).resolve().parents[1]
GONE_WITHIN_S = 30

# A stand-in for `vllm serve` (the exposure tests' HTTP server on the same flags) that first starts a child
# of its own, which outlives it unless killed, as the server starts its engine core.
STAND_IN = ("import subprocess, sys\n"
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n" + EXPOSURE_STAND_IN)

OWNERS = {
    "stand-in server": """
import mr3_reward.backends.vllm_server as vllm_server
vllm_server.on_cpu = lambda: False
server = vllm_server.VLLMServer("smollm2-135m")
server.command = [sys.executable, "-c", STAND_IN, *server.command[3:]]
server.start(timeout_s=60)
""",
    "watched children": """
from mr3_reward.backends.lifeline import Lifeline
line = Lifeline.start()
# An 'engine': a process that starts one of its own, as vLLM's engine core starts its worker.
subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                  "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); time.sleep(600)"])
time.sleep(2)  # the lifeline polls twice a second: it has seen both
line.settle()
""",
    "vllm serve": """
from mr3_reward.backends.vllm import VLLMServer
server = VLLMServer("smollm2-135m", dtype="float32", max_model_len=1024,
                    args=["--enforce-eager", "--kv-cache-memory-bytes", str(1 << 30)])
server.start()
""",
    "in-process engine": """
from mr3_reward.backends.vllm import VLLMBackend
backend = VLLMBackend("smollm2-135m", dtype="float32", max_model_len=1024, enforce_eager=True,
                      kv_cache_memory_bytes=1 << 30)
""",
}

ENDINGS = {
    "sigkill": "time.sleep(3600)",
    "raise": "sys.stdin.readline(); raise RuntimeError('the owner fails')",
    "exit": "sys.stdin.readline(); os._exit(0)",  # no atexit handlers, no interpreter teardown
}


def start_owner(tmp_path: Path, what: str, ending: str) -> subprocess.Popen:
    script = tmp_path / "owner.py"
    body = OWNERS[what] + 'print("READY", flush=True)\n' + ENDINGS[ending] + "\n"
    script.write_text(
        "import os, subprocess, sys, time\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        'os.environ["HF_HUB_OFFLINE"] = "1"\n'
        f"STAND_IN = {STAND_IN!r}\n"
        'if __name__ == "__main__":\n' + "".join(f"    {line}\n" for line in body.splitlines() if line)
    )
    owner = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=open(tmp_path / "owner.log", "wb"), text=True)
    for line in owner.stdout:  # vLLM logs to stdout too
        if line.strip() == "READY":
            return owner
    pytest.fail(f"the owner ended before it was ready: {(tmp_path / 'owner.log').read_text()[-3000:]}")


def tree(owner: subprocess.Popen) -> list[psutil.Process]:
    """The owner's descendants, recursively; collected before it ends."""
    return psutil.Process(owner.pid).children(recursive=True)


def end(owner: subprocess.Popen, ending: str) -> None:
    if ending == "sigkill":
        os.kill(owner.pid, signal.SIGKILL)
    else:
        owner.stdin.write("go\n")
        owner.stdin.flush()
    owner.wait(timeout=60)


def left_after(processes: list[psutil.Process], seconds: float) -> list[str]:
    """What is still running of ``processes`` once ``seconds`` have passed (or sooner, when nothing is)."""
    deadline = time.monotonic() + seconds
    while True:
        alive = []
        for p in processes:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.5)


def kill_leftovers(processes: list[psutil.Process]) -> None:
    for p in processes:
        try:
            p.kill()
        except psutil.Error:
            pass


def check_tree_dies(tmp_path: Path, what: str, ending: str, at_least: int) -> None:
    owner = start_owner(tmp_path, what, ending)
    processes = tree(owner)
    try:
        assert len(processes) >= at_least, [p.cmdline() for p in processes]
        end(owner, ending)
        assert left_after(processes, GONE_WITHIN_S) == []
    finally:
        kill_leftovers([*processes, psutil.Process(owner.pid)] if owner.poll() is None else processes)


# =========================================================================================================
# Stand-ins (fast)
# =========================================================================================================


@pytest.mark.timeout(180)
@pytest.mark.parametrize("ending", list(ENDINGS))
def test_a_servers_whole_tree_dies_with_its_owner(tmp_path, ending):
    # lifeline, stand-in server, its 'engine core'
    check_tree_dies(tmp_path, "stand-in server", ending, at_least=3)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("ending", list(ENDINGS))
def test_watched_processes_and_their_children_die_with_their_owner(tmp_path, ending):
    # lifeline, 'engine', its 'worker'
    check_tree_dies(tmp_path, "watched children", ending, at_least=3)


@pytest.mark.timeout(120)
def test_a_released_lifeline_exits_and_leaves_its_processes_alone():
    from mr3_reward.backends.lifeline import Lifeline

    line = Lifeline.start()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        time.sleep(1.5)  # seen by the lifeline
        line.settle()
        line.release()
        assert line.proc.poll() is not None and child.poll() is None  # the watchdog exited; the child runs
    finally:
        child.kill()
        child.wait()


@pytest.mark.timeout(120)
def test_a_stopped_server_leaves_nothing_and_reports_its_exit(monkeypatch):
    import mr3_reward.backends.vllm_server as vllm_server

    monkeypatch.setattr(vllm_server, "on_cpu", lambda: False)
    server = vllm_server.VLLMServer("smollm2-135m")
    server.command = [sys.executable, "-c", STAND_IN, *server.command[3:]]
    server.start(timeout_s=60)
    processes = [psutil.Process(server.proc.pid), *tree(server.proc)]
    assert len(processes) == 3 and server.get("/health") == "ok"
    server.stop()
    assert server.proc.returncode == 128 + signal.SIGTERM  # the server's own code, passed on by the lifeline
    assert left_after(processes, GONE_WITHIN_S) == []


# =========================================================================================================
# Real vLLM
# =========================================================================================================


@pytest.mark.vllm
@pytest.mark.timeout(900)
def test_a_sigkilled_owner_of_vllm_serve_leaves_no_process(tmp_path):
    # lifeline, api_server, engine core, worker (plus multiprocessing's resource trackers)
    check_tree_dies(tmp_path, "vllm serve", "sigkill", at_least=4)


@pytest.mark.vllm
@pytest.mark.timeout(900)
def test_a_sigkilled_owner_of_an_in_process_engine_leaves_no_process(tmp_path):
    # lifeline, engine core, worker (plus the resource tracker)
    check_tree_dies(tmp_path, "in-process engine", "sigkill", at_least=3)
