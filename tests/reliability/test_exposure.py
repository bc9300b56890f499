"""Exposure (issue #9, item 6): what the tools start listens on 127.0.0.1 unless the user asks otherwise,
and an OpenAI-compatible server's API key, read from an environment variable, never appears in a log,
an error, a repr, a judgment, a cached record or a command's output.

* `VLLMServer` (what the tests and benchmarks start as ``vllm serve``): its default host and command
  line, and the socket its process really opens, checked in the kernel's table of listening sockets
  (/proc/net/tcp) with a stand-in server on the same command line (a real vLLM start costs ~22 s and is
  exercised by tests/test_vllm.py::TestServer on the same default). The Ray dashboard of ``mr3 serve`` is
  checked by the pool's serve test.
* `OpenAIBackend` against a local HTTP server that echoes the credentials it receives into its error
  messages (the careless server case): the key is sent, and shows up nowhere else.
"""

from __future__ import annotations

import inspect
import json
import logging
import socket
import sys

import pytest

import mr3_reward.backends.vllm_server as vllm_server
from mr3_reward.backends.openai import OpenAIBackend
from mr3_reward.backends.vllm import VLLMServer
from mr3_reward.cli import main as mr3
from mr3_reward.judge import Judge
from mr3_reward.reward import MR3Reward
from mr3_reward.types import Failure, JudgeRequest
from tests.openai_stub import StubServer, completion

SECRET = "sk-mr3-test-7f3a9c1e-DO-NOT-LEAK"
LOOPBACK_HEX = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it (little-endian)
TCP_LISTEN = "0A"


# ---------------------------------------------------------------------------------------------------
# Listening sockets


def listening(port: int) -> list[str]:
    """Local addresses (hex, as the kernel writes them) with a listening TCP socket on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.rpartition(":")
            if state == TCP_LISTEN and int(hex_port, 16) == port:
                found.append(address)
    return found


def test_vllm_server_binds_loopback_by_default():
    assert inspect.signature(VLLMServer).parameters["host"].default == "127.0.0.1"
    server = VLLMServer("smollm2-135m")
    assert server.host == "127.0.0.1"
    i = server.command.index("--host")
    assert server.command[i + 1] == "127.0.0.1" and server.command.count("--host") == 1
    assert server.url == f"http://127.0.0.1:{server.port}/v1"
    # Only a user who asks for it gets another address.
    assert VLLMServer("smollm2-135m", host="0.0.0.0").command[i + 1] == "0.0.0.0"


# A stand-in for the API server: the same flags, parsed the same way, bound where it is told.
STAND_IN = """
import argparse, http.server
p = argparse.ArgumentParser()
p.add_argument("--host", default="0.0.0.0")
p.add_argument("--port", type=int, default=8000)
args, _ = p.parse_known_args()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
http.server.HTTPServer((args.host, args.port), H).serve_forever()
"""


@pytest.mark.timeout(60)
def test_the_started_server_process_listens_on_loopback_only(monkeypatch):
    monkeypatch.setattr(vllm_server, "on_cpu", lambda: False)
    server = VLLMServer("smollm2-135m")
    assert server.command[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    server.command = [sys.executable, "-c", STAND_IN, *server.command[3:]]  # same flags, no engine
    server.start(timeout_s=30)
    try:
        addresses = listening(server.port)
        assert addresses == [LOOPBACK_HEX], addresses  # 127.0.0.1, not 0.0.0.0 (00000000) nor an interface
        assert server.get("/health") == "ok"
    finally:
        server.stop()
    assert listening(server.port) == []


# ---------------------------------------------------------------------------------------------------
# The API key


ANSWER = 'Checked.</think>{"explanation": "right", "score": "true"}'


def echoing_server(plan) -> StubServer:
    """An OpenAI-compatible server on 127.0.0.1 that puts the Authorization header it got into its errors.
    ``plan(n, body)`` picks the answer to the n-th completion request: "401", "403", "500", "400" or "ok"."""

    def script(n, body, headers):
        auth = headers.get("authorization", "")
        kind = plan(n, body)
        if kind == "ok":
            return 200, completion(ANSWER), 0
        return int(kind), {"error": {"message": f"request {n} refused; credentials were {auth!r} "
                                                f"(key {auth.removeprefix('Bearer ')})"}}, 0

    def on_get(headers):  # /models: echo the key in an error here too
        return 404, {"error": {"message": f"no listing for {headers.get('authorization')}"}}

    return StubServer(script, on_get=on_get).start()


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from mr3_reward.models import resolve

    return AutoTokenizer.from_pretrained(resolve("smollm2-135m"))


def requests(n):
    return [JudgeRequest(task="binary", prompt=f"Is {i}+{i}={2 * i}?", responses=(f"Yes, {2 * i}.",)) for i in range(n)]


def everything_written(tmp_path) -> str:
    """Every byte under tmp_path (cache files and their -wal/-shm, outputs), decoded loosely."""
    return "".join(p.read_bytes().decode("utf-8", "replace") for p in sorted(tmp_path.rglob("*")) if p.is_file())


def test_the_api_key_comes_from_the_environment_only():
    parameters = inspect.signature(OpenAIBackend).parameters
    assert "api_key" not in parameters and parameters["api_key_env"].default == "OPENAI_API_KEY"
    with pytest.raises(TypeError):
        OpenAIBackend("judge", "http://127.0.0.1:9/v1", api_key=SECRET)  # type: ignore[call-arg]


@pytest.mark.timeout(120)
def test_the_api_key_never_shows_in_errors_logs_judgments_or_the_cache(tmp_path, monkeypatch, caplog, capsys, tokenizer):
    monkeypatch.setenv("MR3_TEST_KEY", SECRET)
    # Requests 0-4 meet every kind of error that echoes the key (the 500 twice, past the backend's retry);
    # after that every fourth is a 500 that the retry gets past.
    plan = lambda n, body: ("401", "403", "400", "500", "500")[n] if n < 5 else ("500" if n % 4 == 0 else "ok")
    server = echoing_server(plan)
    try:
        backend = OpenAIBackend("judge", server.url, tokenizer=tokenizer, api_key_env="MR3_TEST_KEY",
                                max_retries=1, backoff_s=0.01, max_concurrency=1)
        judge = Judge("judge", backend=backend, cache=tmp_path / "judgments.sqlite", max_retries=0, max_tokens=32)
        with caplog.at_level(logging.DEBUG):
            failed = judge.judge(requests(2)) + judge.judge(requests(2))  # 401, 403; 400, 500 twice
            rewards = MR3Reward(judge=judge, mode="binary")
            notes = {}
            scores = rewards(["Is 7+7=14?", "Is 8+8=16?"], ["Yes.", "14."], log_extra=notes.__setitem__,
                             log_metric=notes.__setitem__)
            judged = judge.judge(requests(2))
            cached = judge.judge(requests(2))
    finally:
        server.close()
    assert len(server.auth) == 10 and all(a == f"Bearer {SECRET}" for a in server.auth)  # the key was sent each time
    assert [j.failure for j in failed] == [Failure.ENGINE_ERROR.value] * 4
    for j, status in zip(failed, ("HTTP 401", "HTTP 403", "HTTP 400", "HTTP 500")):
        assert status in j.meta["error"] and "***" in j.meta["error"]  # the echo was scrubbed, not dropped
    assert "put a valid API key in the MR3_TEST_KEY environment variable" in failed[0].meta["error"]
    assert all(s is not None for s in scores) and all(j.ok for j in judged)
    assert all(j.meta.get("cached") for j in cached)  # the records went to the SQLite file
    first, again = failed, judged + cached
    assert "right" in everything_written(tmp_path)  # the verdicts are in the cache file itself
    assert "openai" in {r.name.split(".")[0] for r in caplog.records}  # the HTTP client did log, at DEBUG
    shown = [repr(backend), str(vars(backend)), repr(judge.backend), json.dumps(judge.config_key()), caplog.text,
             *(repr(j) + json.dumps(j.to_dict()) for j in first + again), repr(notes), repr(rewards),
             *capsys.readouterr(), everything_written(tmp_path)]
    for text in shown:
        assert SECRET not in text and SECRET[3:20] not in text


@pytest.mark.timeout(120)
def test_the_api_key_never_shows_in_the_mr3_judge_output(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server = echoing_server(lambda n, body: "401" if "0+0" in body["prompt"] else "ok")
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": f"r{i}", "prompt": f"Is {i}+{i}={2 * i}?", "response": str(2 * i)}) + "\n"
                           for i in range(3)), encoding="utf-8")
    out = tmp_path / "judged.jsonl"
    try:
        code = mr3(["judge", "--input", str(src), "--output", str(out), "--backend", "openai", "--base-url", server.url,
                    "--model", "smollm2-135m", "--max-tokens", "16", "--max-retries", "0", "--cache", str(tmp_path / "c.sqlite")])
    finally:
        server.close()
    assert code == 0 and SECRET in server.auth[0]
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["judgment"]["failure"] for r in rows] == [Failure.ENGINE_ERROR.value, None, None]
    assert "HTTP 401" in rows[0]["judgment"]["error"] and "OPENAI_API_KEY" in rows[0]["judgment"]["error"]
    written, (stdout, stderr) = everything_written(tmp_path), capsys.readouterr()
    for text in (written, stdout, stderr):
        assert SECRET not in text


def test_the_stub_servers_of_these_tests_listen_on_loopback_only():
    server = echoing_server(lambda n, body: "ok")
    try:
        port = server.httpd.server_address[1]
        assert listening(port) == [LOOPBACK_HEX]
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        server.close()
