"""``mr3 serve`` end to end, as separate processes: a pool served in the foreground on a local Ray instance,
``status``, ``mr3 judge`` and ``mr3 label`` through ``--pool``, then ``stop``."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_ADDRESS": "auto"}


def mr3(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "mr3_reward.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def test_serve_status_judge_label_stop(tmp_path):
    server = subprocess.Popen(
        [sys.executable, "-m", "mr3_reward.cli", "serve", "--local", "--name", "cli-pool", "--model", "fake",
         "--engine", "fake", "--replicas", "2", "--gpus-per-replica", "0", "--timeout", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**ENV, "RAY_ADDRESS": ""},
    )
    try:
        lines = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            if not line and server.poll() is not None:
                break
            lines.append(line)
            if "status: mr3 serve status" in line:
                break
        text = "".join(lines)
        assert "judge pool 'cli-pool' ready: 2 replica(s) of fake:fake" in text, text[-3000:]
        assert "MR3Reward(pool='cli-pool'" in text
        # Exposure: the local Ray instance's dashboard process (Ray starts a headless one even with the UI off)
        # binds 127.0.0.1 only.
        import psutil

        tree = {server.pid, *(c.pid for c in psutil.Process(server.pid).children(recursive=True))}
        names = {psutil.Process(pid).name() for pid in tree if psutil.pid_exists(pid)}
        assert "raylet" in names and "gcs_server" in names  # the Ray instance really is this command's
        listening = [c for c in psutil.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN and c.pid in tree]
        assert listening and all(c.laddr.ip == "127.0.0.1" for c in listening if c.laddr.port == 8265)
        dashboards = [" ".join(psutil.Process(pid).cmdline()) for pid in tree if psutil.pid_exists(pid)]
        dashboards = [cmd for cmd in dashboards if "dashboard/dashboard.py" in cmd]
        assert all("--host=127.0.0.1" in cmd for cmd in dashboards)

        status = mr3("serve", "status", "--name", "cli-pool", "--json")
        assert status.returncode == 0, status.stderr[-2000:]
        replicas = json.loads(status.stdout)["replicas"]
        assert [r["state"] for r in replicas] == ["ready", "ready"]

        requests = tmp_path / "requests.jsonl"
        requests.write_text("".join(json.dumps({"prompt": f"q{i}", "responses": ["a"], "task": "binary"}) + "\n"
                                    for i in range(5)), encoding="utf-8")
        judged = mr3("judge", "--input", str(requests), "--output", str(tmp_path / "j.jsonl"), "--pool", "cli-pool",
                     "--quiet")
        assert judged.returncode == 0, judged.stderr[-2000:]
        verdicts = [json.loads(l)["judgment"]["score"] for l in (tmp_path / "j.jsonl").read_text().splitlines()]
        assert verdicts == ["true"] * 5

        rows = tmp_path / "rows.jsonl"
        rows.write_text("".join(json.dumps({"prompt": f"p{i}", "responses": ["short", "a longer answer"]}) + "\n"
                                for i in range(4)), encoding="utf-8")
        labeled = mr3("label", str(rows), str(tmp_path / "pairs"), "--pool", "cli-pool", "--cache", "none",
                      "--quiet")
        assert labeled.returncode == 0, labeled.stderr[-2000:]
        assert (tmp_path / "pairs").is_dir()

        # The cluster example's GRPO script, as one trainer rank of its own: a real TRL step, judged by the pool.
        example = Path(__file__).parents[1] / "examples" / "ray_cluster" / "grpo_with_pool.py"
        trained = subprocess.run([sys.executable, str(example), "--pool", "cli-pool", "--output-dir",
                                  str(tmp_path / "grpo")], capture_output=True, text=True, timeout=300,
                                 env={**ENV, "MR3_CACHE_DIR": str(tmp_path / "cache")})
        assert trained.returncode == 0, trained.stderr[-3000:]
        assert "rewards: [1.0, 1.0, 1.0, 1.0]" in trained.stdout  # the scripted judge says "true" to all

        status = json.loads(mr3("serve", "status", "--name", "cli-pool", "--json").stdout)
        assert status["clients"]["requests"] >= 5 + 8 + 4  # judge's 5 + label's 2 per row + GRPO's 4
        assert sum(r["served"] for r in status["replicas"]) >= 13

        stopped = mr3("serve", "stop", "--name", "cli-pool")
        assert stopped.returncode == 0 and "stopped" in stopped.stdout
        assert server.wait(60) == 0  # the foreground server notices and exits
        gone = mr3("serve", "status", "--name", "cli-pool")
        assert gone.returncode == 2
        assert "no judge pool named 'cli-pool'" in gone.stderr or "no Ray cluster" in gone.stderr
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(60)


def test_serve_without_a_model_names_the_fix():
    missing = mr3("serve", "--engine", "fake")
    assert missing.returncode == 2 and "mr3 serve needs --model" in missing.stderr


def test_no_cluster_message(monkeypatch, capsys):
    """No cluster to join: Ray's own ConnectionError becomes one line that says how to start one."""
    import ray

    from mr3_reward.serve import main

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: (_ for _ in ()).throw(ConnectionError("no instance")))
    assert main(["status", "--address", "auto"]) == 2
    err = capsys.readouterr().err
    assert "no Ray cluster at 'auto'" in err and "ray start --head --include-dashboard=false" in err
