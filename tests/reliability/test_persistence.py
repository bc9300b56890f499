"""Persistence (issue #9, item 4): the result cache and the labeling job against real files, real
processes and real kills.

* the SQLite cache under 4 concurrent writer processes (raw records, and whole `Judge`s) loses nothing;
* a truncated, garbage or foreign cache file is detected, moved aside (kept byte for byte) and rebuilt;
* a record written by a judge with another model, revision, template version, language mode or sampling
  is never read as a hit, by a `Judge` on the same file;
* `mr3 label` killed with SIGKILL at chosen and at random points resumes to byte-identical outputs.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import mr3_reward.cache.store as cache_mod
import mr3_reward.templates.renderer as renderer
from mr3_reward.backends.fake import FakeBackend
from mr3_reward.cache import JudgmentCache
from mr3_reward.judge import Judge
from mr3_reward.types import JudgeRequest
from test_labeling import SAMPLE, tree_bytes, write_jsonl


# ------------------------------------------------------------------------------------------------ concurrency
N_WRITERS = 4
N_OWN = 500
N_SHARED = 100
BATCH = 25


def _writer(path: str, writer: int, barrier) -> None:
    """Runs in a spawned process: 500 own keys in batches of 25, and 100 keys every writer also writes."""
    cache = JudgmentCache(path)
    barrier.wait()  # all four open and write a brand-new file at the same moment
    own = [(f"w{writer}-{i}", {"writer": writer, "i": i, "text": "x" * (i % 50)}) for i in range(N_OWN)]
    shared = [(f"shared-{i}", {"writer": writer, "i": i, "text": "shared"}) for i in range(N_SHARED)]
    items = own + shared
    for start in range(0, len(items), BATCH):
        cache.put_many(dict(items[start : start + BATCH]))
    cache.close()


def _run_together(target, path: str, timeout: float) -> list[int | None]:
    """``target(path, worker, barrier)`` in N_WRITERS spawned processes that start writing at one moment
    (the barrier); their exit codes."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(N_WRITERS)
    procs = [ctx.Process(target=target, args=(path, w, barrier)) for w in range(N_WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout)
    return [p.exitcode for p in procs]


def test_concurrent_writer_processes(tmp_path):
    path = tmp_path / "concurrent.sqlite"
    assert _run_together(_writer, str(path), timeout=60) == [0] * N_WRITERS

    with JudgmentCache(path, memory_items=0) as fresh:
        own_keys = [f"w{w}-{i}" for w in range(N_WRITERS) for i in range(N_OWN)]
        shared_keys = [f"shared-{i}" for i in range(N_SHARED)]
        found = fresh.get_many(own_keys + shared_keys)
        assert len(found) == N_WRITERS * N_OWN + N_SHARED == 2100
        for w in range(N_WRITERS):
            for i in range(N_OWN):
                assert found[f"w{w}-{i}"] == {"writer": w, "i": i, "text": "x" * (i % 50)}
        for i in range(N_SHARED):
            rec = found[f"shared-{i}"]
            assert rec["i"] == i and rec["text"] == "shared" and rec["writer"] in range(N_WRITERS)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _judge_writer(path: str, worker: int, barrier) -> None:
    """Runs in a spawned process: a whole Judge on the shared file, requests overlapping with the others'."""
    judge = Judge(backend=FakeBackend(), cache=path)
    barrier.wait()
    for start in range(0, 120, 10):
        judge.judge(_requests(range(worker * 40 + start, worker * 40 + start + 10)))
    judge.cache.close()


def _requests(ids) -> list[JudgeRequest]:
    return [JudgeRequest(task="pairwise", prompt=f"question {i}", responses=(f"a{i}", f"b{i}"), id=str(i)) for i in ids]


def test_four_judges_in_four_processes_share_one_cache_file(tmp_path):
    # Worker w judges items 40w .. 40w+119: each item is judged by one, two or three workers at once.
    path = tmp_path / "judgments.sqlite"
    assert _run_together(_judge_writer, str(path), timeout=120) == [0] * N_WRITERS
    backend = FakeBackend()
    judge = Judge(backend=backend, cache=path)
    everything = _requests(range(40 * (N_WRITERS - 1) + 120))  # 240 distinct items
    out = judge.judge(everything)
    assert backend.items == 0 and judge.last_stats["cache_hits"] == 240  # every one was persisted
    assert all(j.ok and j.meta["cached"] for j in out)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM judgments").fetchone()[0] == 240
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    judge.cache.close()


# ------------------------------------------------------------------------------------------------ corruption


def _make_real_cache(path: Path, n: int = 2000) -> None:
    with JudgmentCache(path) as c:
        c.put_many({f"k{i}": {"i": i, "pad": "p" * 200} for i in range(n)})
    assert not Path(f"{path}-wal").exists()  # last close checkpointed everything into the main file


def _truncate_half(path: Path) -> None:
    _make_real_cache(path)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)


def _garbage_head(path: Path) -> None:
    _make_real_cache(path)
    with open(path, "r+b") as f:
        f.write(b"\xde\xad\xbe\xef" * 25)


def _pure_garbage(path: Path) -> None:
    path.write_bytes(os.urandom(4096) + b"definitely not sqlite" * 100)


def _wrong_schema_version(path: Path) -> None:
    _make_real_cache(path, n=10)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")


def _foreign_database(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE judgments (id INTEGER, payload BLOB)")


@pytest.mark.parametrize(
    "damage", [_truncate_half, _garbage_head, _pure_garbage, _wrong_schema_version, _foreign_database]
)
def test_bad_file_is_moved_aside_and_replaced(tmp_path, damage):
    path = tmp_path / "judgments.sqlite"
    damage(path)
    bad_bytes = path.read_bytes()
    with pytest.warns(RuntimeWarning, match="moved it aside") as record:
        c = JudgmentCache(path)
        c.put("fresh", {"ok": True})  # the file is opened lazily, on first use
    aside = sorted(tmp_path.glob("judgments.sqlite.corrupt-*"))
    assert [p.name for p in aside if not p.name.endswith(("-wal", "-shm"))] == [aside[0].name]
    assert aside[0].read_bytes() == bad_bytes  # moved, not modified or deleted
    assert str(aside[0]) in str(record[0].message)
    assert c.get("fresh") == {"ok": True}
    assert c.get("k1") is None  # nothing of the old file leaks into the new one
    c.close()
    with JudgmentCache(path) as again:  # the new file is healthy: no warning, data persisted
        assert again.get("fresh") == {"ok": True}
    assert len(list(tmp_path.glob("judgments.sqlite.corrupt-*"))) == len(aside)


def test_corruption_found_during_use_is_recovered(tmp_path, monkeypatch):
    # Pretend the file is too big for the open-time quick_check: the damage is only met by a query.
    monkeypatch.setattr(cache_mod, "QUICK_CHECK_MAX_BYTES", 0)
    path = tmp_path / "judgments.sqlite"
    _truncate_half(path)
    c = JudgmentCache(path, memory_items=0)
    with pytest.warns(RuntimeWarning, match="moved it aside"):
        found = c.get_many([f"k{i}" for i in range(2000)])  # reaches the missing pages
    assert len(found) < 2000
    assert list(tmp_path.glob("judgments.sqlite.corrupt-*"))
    c.put("fresh", {"ok": True})
    assert c.get("fresh") == {"ok": True}
    c.close()


@pytest.mark.parametrize("damage", [_truncate_half, _pure_garbage])
def test_a_judge_on_a_damaged_cache_file_sets_it_aside_and_keeps_caching(tmp_path, damage):
    path = tmp_path / "judgments.sqlite"
    damage(path)
    bad = path.read_bytes()
    backend = FakeBackend()
    with pytest.warns(RuntimeWarning, match="moved it aside"):
        first = Judge(backend=backend, cache=path).judge(_requests(range(5)))
    assert [j.ok for j in first] == [True] * 5 and backend.items == 5
    [aside] = [p for p in tmp_path.glob("judgments.sqlite.corrupt-*") if not p.name.endswith(("-wal", "-shm"))]
    assert aside.read_bytes() == bad
    again = Judge(backend=backend, cache=path)  # the rebuilt file serves the next judge
    assert [j.score for j in again.judge(_requests(range(5)))] == [j.score for j in first]
    assert backend.items == 5 and again.last_stats["cache_hits"] == 5


# ------------------------------------------------------------------------------ another judge's records

def _variants(pack_dir):
    """Judges that must not share verdicts with the base one: each changes one thing that changes a verdict."""
    return {
        "model": dict(backend=FakeBackend(model_id="other-model")),
        "revision": dict(backend=_with_revision(FakeBackend(), "refs/pr/7")),
        "language mode": dict(backend=FakeBackend(), language_mode="tgt-prompt-en-thinking"),
        "temperature": dict(backend=FakeBackend(), temperature=0.0),
        "seed": dict(backend=FakeBackend(), seed=1),
        "max_tokens": dict(backend=FakeBackend(), max_tokens=512),
        "rubric pack": dict(backend=FakeBackend(), pack=pack_dir),
    }


def _with_revision(backend: FakeBackend, revision: str) -> FakeBackend:
    backend.revision = revision
    return backend


def test_records_of_another_model_template_or_sampling_are_never_hits(tmp_path, monkeypatch, pack_dir):
    path = tmp_path / "judgments.sqlite"
    requests = _requests(range(6))
    base = FakeBackend()
    Judge(backend=base, cache=path).judge(requests)
    control = Judge(backend=base, cache=path)
    control.judge(requests)
    assert control.last_stats["cache_hits"] == 6 and base.items == 6  # the same judge does hit

    for name, kwargs in _variants(pack_dir).items():
        judge = Judge(cache=path, **kwargs)
        judge.judge(requests)
        assert judge.last_stats["cache_hits"] == 0, name
        assert judge.backend.items == 6, name

    # A new template version (what a change to the rendered bytes bumps) invalidates every record.
    monkeypatch.setattr(renderer, "TEMPLATE_VERSION", renderer.TEMPLATE_VERSION + "-next")
    bumped = FakeBackend()
    judge = Judge(backend=bumped, cache=path)
    judge.judge(requests)
    assert judge.last_stats["cache_hits"] == 0 and bumped.items == 6
    with sqlite3.connect(path) as conn:  # every judge stored its own 6 records next to the others
        assert conn.execute("SELECT COUNT(*) FROM judgments").fetchone()[0] == 6 * (len(_variants(pack_dir)) + 2)


def test_a_cache_file_of_another_schema_version_is_set_aside_not_read(tmp_path, monkeypatch):
    path = tmp_path / "judgments.sqlite"
    Judge(backend=FakeBackend(), cache=path).judge(_requests(range(3)))
    monkeypatch.setattr(cache_mod, "SCHEMA_VERSION", cache_mod.SCHEMA_VERSION + 1)
    backend = FakeBackend()
    with pytest.warns(RuntimeWarning, match="schema version"):
        judge = Judge(backend=backend, cache=path)
        judge.judge(_requests(range(3)))
    assert judge.last_stats["cache_hits"] == 0 and backend.items == 3
    assert list(tmp_path.glob("judgments.sqlite.corrupt-*"))


# ------------------------------------------------------------------------------------------ SIGKILL and resume

# The job as a user runs it, in its own process: the CLI's main() with a scripted judge (DELAY slows it down so
# it can be killed from outside mid-shard). KILL makes the process SIGKILL itself at a chosen point:
# item:N at its N-th judgment; replace:N[:after] before (or after) its N-th os.replace, i.e. a shard, the
# manifest or a final output being put into place; dst:PATTERN[:after] at the os.replace onto a matching name.
DRIVER = textwrap.dedent('''
    import fnmatch, os, signal, sys, time
    from mr3_reward import labeling
    from mr3_reward.backends.fake import FakeBackend

    kind, _, rest = os.environ.get("KILL", "none:0").partition(":")
    at, _, when = rest.partition(":")
    items, replaces = [0], [0]

    def respond(prompt, sampling):
        items[0] += 1
        if kind == "item" and items[0] == int(at):
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(float(os.environ.get("DELAY", "0")))
        lines = prompt.user.split("\\n")
        a = lines[lines.index("    # Assistant A") + 1].strip()
        b = lines[lines.index("    # Assistant B") + 1].strip()
        return \'</think>{"score": "%s"}\' % ("Assistant A" if len(a) >= len(b) else "Assistant B")

    real_replace = os.replace

    def replace(src, dst):
        replaces[0] += 1
        hit = (kind == "replace" and replaces[0] == int(at)) or (kind == "dst" and fnmatch.fnmatch(os.path.basename(dst), at))
        print("replace", replaces[0], os.path.basename(dst), file=sys.stderr)
        if hit and when != "after":
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dst)
        if hit:
            os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace
    sys.exit(labeling.main(sys.argv[1:], backend=FakeBackend(respond)))
''')


@pytest.fixture
def cli_job(tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")
    more = [{**r, "id": r["id"] + "b", "prompt": r["prompt"] + "?"} for r in SAMPLE]
    src = write_jsonl(tmp_path / "in.jsonl", SAMPLE + more)  # 16 rows, 76 judgments, 6 shards of 3 rows

    def run(out, kill=None, delay=0.0, wait=True):
        command = [sys.executable, str(driver), str(src), str(out), "--strategy", "tournament", "--shard-size", "3",
                   "--chunk", "4", "--cache", f"{out}.cache.sqlite", "--quiet", "--jsonl", f"{out}.jsonl",
                   "--parquet", f"{out}.parquet", "--dropped", f"{out}.dropped.jsonl"]
        env = {**os.environ, "KILL": kill or "none:0", "DELAY": str(delay)}
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if not wait:
            return proc
        _, err = proc.communicate(timeout=120)
        return proc.returncode, err

    def outputs(out):
        return tree_bytes(out, f"{out}.jsonl", f"{out}.parquet", f"{out}.dropped.jsonl")

    return run, outputs


def test_sigkill_at_any_point_then_resume_gives_identical_bytes(tmp_path, cli_job):
    run, outputs = cli_job
    code, err = run(tmp_path / "ref")
    assert code == 0, err
    reference = outputs(tmp_path / "ref")
    out = tmp_path / "pairs"
    # Shards take 18, 8, 18, 12, 14 and 6 judgments. One kill per run, each run resuming the last one's work:
    kills = [
        "item:10",  # mid shard 1 (its first 8 judgments are in the cache)
        "replace:2:after",  # right after shard 2 is in place
        "item:30",  # at the last judgment of shard 4 (shard 3 done)
        "replace:1",  # shard 4 written to its temp file, not yet renamed
        "dst:pairs:after",  # assembly: the dataset folder is in place, the JSONL/Parquet copies are not
        "dst:pairs.parquet",  # assembly again: JSONL done, Parquet written, not renamed
        "dst:manifest.json:after",  # outputs final and marked complete; the work folder still there
    ]
    for kill in kills:
        code, err = run(out, kill)
        assert code == -signal.SIGKILL, (kill, err)
    # A second job: killed from outside at a moment nobody chose, then while deleting its work folder.
    out2 = tmp_path / "pairs2"
    proc = run(out2, delay=0.01, wait=False)
    deadline = time.time() + 60
    while not list((tmp_path / "pairs2.work").glob("shard-*.jsonl")) and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    code, err = run(out2, "dst:.pairs2.work.trash-*:after")
    assert code == -signal.SIGKILL, err
    # A third job, killed at random points (the seed is in every failure message), each run resuming the last.
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    out3 = tmp_path / "pairs3"
    for _ in range(4):
        kill = rng.choice([f"item:{rng.randint(1, 30)}", f"replace:{rng.randint(1, 9)}{rng.choice(['', ':after'])}"])
        code, err = run(out3, kill)
        assert code in (0, -signal.SIGKILL), (seed, kill, err)
    for target in (out, out2, out3):
        code, err = run(target)
        assert code == 0, err
        assert outputs(target) == {k.replace("ref", target.name): v for k, v in reference.items()}, seed
        assert not Path(f"{target}.work").exists()
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name or ".trash-" in p.name]
