"""The persistent judgment cache, against real SQLite files and real processes (no mocks of sqlite3)."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import pickle
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mr3_reward.cache import JudgmentCache, cache_key, default_cache_path
from mr3_reward.types import Judgment, Sampling, TaskKind

REPO = Path(__file__).resolve().parents[1]


def _judgment(i: int = 0) -> Judgment:
    return Judgment(
        score="Assistant B",
        explanation=f"B is more accurate ({i}); ünïcödé ✓ 日本語",
        reasoning="<thinking about it>\nline two",
        raw='<think>...</think>{"score": "Assistant B"}',
        attempts=2,
        prompt_tokens=321,
        completion_tokens=45,
        neutralized_lines=1,
        meta={"model": "mr3-tiny", "template_version": 3, "lang": "de"},
    )


def _sqlite_rows(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT key, value FROM judgments"))


# ------------------------------------------------------------------------------------------------------ keys

# Parts shaped like what the judge passes: strings, nested dicts, floats, unicode, bytes, enums, dataclasses,
# a set (whose iteration order depends on PYTHONHASHSEED: the key must not).
_KEY_SCRIPT = r"""
import json, sys
from mr3_reward.cache import cache_key
from mr3_reward.types import Sampling, TaskKind
parts = [
    ("mr3/Qwen3-4B", "rev-abc", 3, "target", {"temperature": 0.6, "top_p": 0.95, "seed": 0}, "prompt ✓ 日本語"),
    (b"\x00\xffrendered", TaskKind.PAIRWISE, Sampling(seed=7)),
    ({"labels": ["Assistant A", "Assistant B"], "set": {"alpha", "beta", "gamma", "delta", "epsilon"}},),
]
print(json.dumps([cache_key(*p) for p in parts]))
"""


def test_cache_key_is_stable_across_processes_and_hash_seeds():
    keys = []
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
        out = subprocess.run(
            [sys.executable, "-c", _KEY_SCRIPT], env=env, cwd=REPO, capture_output=True, text=True, check=True
        ).stdout
        keys.append(json.loads(out))
    assert keys[0] == keys[1]
    here = [
        cache_key(
            "mr3/Qwen3-4B", "rev-abc", 3, "target", {"temperature": 0.6, "top_p": 0.95, "seed": 0}, "prompt ✓ 日本語"
        ),
        cache_key(b"\x00\xffrendered", TaskKind.PAIRWISE, Sampling(seed=7)),
        cache_key({"labels": ["Assistant A", "Assistant B"], "set": {"alpha", "beta", "gamma", "delta", "epsilon"}}),
    ]
    assert here == keys[0]
    assert all(len(k) == 64 and int(k, 16) >= 0 for k in here)


def test_cache_key_changes_with_every_part_and_ignores_dict_order():
    base = dict(model="mr3-4b", revision="r1", template=3, mode="english", seed=0, prompt="Which is better?\nA: x")
    k = cache_key(*base.values(), {"temperature": 0.6, "seed": 0})

    # Same content, dict built in another order -> same key.
    assert cache_key(*base.values(), {"seed": 0, "temperature": 0.6}) == k
    # Any single change -> a different key.
    changed = [
        {**base, "seed": 1},
        {**base, "model": "mr3-8b"},
        {**base, "revision": "r2"},
        {**base, "template": 4},
        {**base, "mode": "target"},
        {**base, "prompt": base["prompt"][:-1] + "y"},  # one byte of the prompt
        {**base, "prompt": base["prompt"] + " "},
    ]
    others = {cache_key(*c.values(), {"temperature": 0.6, "seed": 0}) for c in changed}
    assert len(others) == len(changed) and k not in others
    assert cache_key(*base.values(), {"temperature": 0.7, "seed": 0}) != k
    # Part boundaries matter ("ab","c" is not "a","bc").
    assert cache_key("ab", "c") != cache_key("a", "bc")
    assert cache_key(b"\x00") != cache_key(b"\x01") != cache_key("01")
    assert cache_key(Sampling(seed=0)) != cache_key(Sampling(seed=1))
    with pytest.raises(TypeError, match="cannot encode"):
        cache_key(object())


def test_default_cache_path(monkeypatch, tmp_path):
    monkeypatch.setenv("MR3_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_path() == tmp_path / "c" / "judgments.sqlite"
    monkeypatch.delenv("MR3_CACHE_DIR")
    assert default_cache_path() == Path.home() / ".cache" / "mr3_reward" / "judgments.sqlite"
    monkeypatch.setenv("MR3_CACHE_DIR", str(tmp_path / "d" / "e"))
    with JudgmentCache() as c:  # path None -> default path; the parent folders are created
        c.put("k", {"v": 1})
    assert (tmp_path / "d" / "e" / "judgments.sqlite").is_file()


# ------------------------------------------------------------------------------------------------ round trip


def test_round_trip_and_persistence(tmp_path):
    path = tmp_path / "sub" / "dir" / "judgments.sqlite"  # parent folders do not exist yet
    j = _judgment()
    key = cache_key("model", "prompt", 0)
    with JudgmentCache(path) as c:
        assert c.get(key) is None
        c.put(key, j.to_dict())
        got = c.get(key)
        assert got == j.to_dict()
        back = Judgment.from_dict(got)
        assert back == j and back.meta == j.meta
        # Callers get copies: mutating a returned record does not change the cache.
        got["score"] = "Assistant A"
        got["meta"]["lang"] = "xx"
        assert c.get(key) == j.to_dict()
    assert path.is_file()

    # A fresh instance (and a fresh process would be the same) reads it back from the file.
    with JudgmentCache(path) as fresh:
        assert Judgment.from_dict(fresh.get(key)).to_dict() == j.to_dict()
        # INSERT OR REPLACE: a newer record for the same key wins.
        fresh.put(key, _judgment(1).to_dict())
    with JudgmentCache(path) as again:
        assert again.get(key) == _judgment(1).to_dict()


def test_compact_records_leave_out_defaults_and_read_back_equal(tmp_path):
    # What the judge stores: fields at their defaults are left out, and reading fills them back in.
    plain = Judgment(score="Assistant A", raw="r</think>{}", prompt_tokens=3, completion_tokens=2,
                     meta={"parsed_with": "json"})
    assert set(plain.to_record()) == {"score", "raw", "prompt_tokens", "completion_tokens", "meta"}
    full = Judgment(score=None, failure="bad_json", explanation="e", reasoning="why", raw="x", attempts=3,
                    neutralized_lines=2, truncated_input=True, label_probs={"true": 0.25, "false": 0.75})
    assert set(full.to_record()) == set(full.to_dict()) - {"meta"}  # an empty meta is left out too
    zero = Judgment(score="1", attempts=0)  # 0 is not the default 1, and False-like values are not 0
    assert zero.to_record()["attempts"] == 0
    with JudgmentCache(tmp_path / "c.sqlite") as c:
        for i, j in enumerate((plain, full, zero)):
            c.put(f"k{i}", j.to_record())
    with JudgmentCache(tmp_path / "c.sqlite") as fresh:  # from the file, not the LRU
        for i, j in enumerate((plain, full, zero)):
            back = Judgment.from_dict(fresh.get(f"k{i}"))
            assert back.to_dict() == j.to_dict()
    record = plain.to_record()
    record["meta"]["x"] = 1  # a record never aliases the judgment
    assert "x" not in plain.meta
    # Records written in full (before compact records) still read back.
    assert Judgment.from_dict(json.loads(json.dumps(full.to_dict()))).to_dict() == full.to_dict()


def test_compact_records_keep_the_reasoning_once(tmp_path):
    # The reasoning is most of a judge's output and raw holds it as generated: a record keeps its place in
    # raw instead of a second copy, and reads back the same judgment. A reasoning that raw does not hold as
    # written (a forcing sentence from the prompt starts it) is kept as text.
    thought = "Both answers are polite; A answers the question. " * 40
    generated = Judgment(score="Assistant A", reasoning=thought.strip(), raw=f"\n{thought}</think>\n{{}}")
    forced = Judgment(score="true", reasoning="Okay, I have to think. Fine.", raw=" Fine.</think>{}")
    record = generated.to_record()
    assert "reasoning" not in record and record["reasoning_at"][1] - record["reasoning_at"][0] == len(thought.strip())
    assert len(json.dumps(record)) < len(json.dumps(generated.to_dict())) * 0.6
    assert forced.to_record()["reasoning"] == forced.reasoning and "reasoning_at" not in forced.to_record()
    with JudgmentCache(tmp_path / "c.sqlite") as c:
        c.put_many({"a": generated.to_record(), "b": forced.to_record()})
    with JudgmentCache(tmp_path / "c.sqlite", memory_items=0) as fresh:
        assert Judgment.from_dict(fresh.get("a")).to_dict() == generated.to_dict()
        assert Judgment.from_dict(fresh.get("b")).to_dict() == forced.to_dict()
    # A place that does not fit raw (a damaged record) reads as no reasoning, never as an error.
    for bad in ([5, 2], [0, 10**6], ["0", 3], [0], None, "0:3"):
        assert Judgment.from_dict({**record, "reasoning_at": bad}).reasoning == ""


def test_lru_serves_repeats_without_touching_sqlite(tmp_path):
    path = tmp_path / "c.sqlite"
    c = JudgmentCache(path)
    records = {cache_key(i): _judgment(i).to_dict() for i in range(5)}
    c.put_many(records)

    statements: list[str] = []
    with c._db_lock:
        c._connection().set_trace_callback(statements.append)
    assert c.get_many(list(records)) == records
    assert not [s for s in statements if "SELECT" in s.upper()], statements

    # Remove the rows behind the cache's back: the LRU still answers.
    with sqlite3.connect(path) as other:
        other.execute("DELETE FROM judgments")
    assert _sqlite_rows(path) == {}
    assert c.get_many(list(records)) == records
    c.close()

    # Without an LRU every lookup goes to SQLite, one query per 500 keys.
    with JudgmentCache(path, memory_items=0) as disk_only:
        disk_only.put_many({f"k{i}": {"i": i} for i in range(1200)})
        statements.clear()
        with disk_only._db_lock:
            disk_only._connection().set_trace_callback(statements.append)
        found = disk_only.get_many([f"k{i}" for i in range(1300)])
        assert len(found) == 1200 and found["k1199"] == {"i": 1199}
        selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        assert len(selects) == 3  # 500 + 500 + 300 keys
        assert disk_only.stats()["memory_items"] == 0


def test_lru_is_bounded(tmp_path):
    c = JudgmentCache(":memory:", memory_items=3)
    for i in range(5):
        c.put(f"k{i}", {"i": i})
    c.get("k2")  # touch: k2 becomes most recent
    c.put("k5", {"i": 5})  # evicts k3 (oldest after the touch)
    assert c.stats()["memory_items"] == 3
    assert set(c.get_many([f"k{i}" for i in range(6)])) == {"k2", "k4", "k5"}


def test_hit_miss_counting():
    c = JudgmentCache(":memory:")
    assert c.stats()["hit_rate"] == 0.0
    c.put_many({"a": {"v": 1}, "b": {"v": 2}})
    assert c.get("a") == {"v": 1}
    assert c.get("zzz") is None
    assert c.get_many(["a", "b", "c", "d"]) == {"a": {"v": 1}, "b": {"v": 2}}
    assert c.get_many(["a", "a"]) == {"a": {"v": 1}}  # duplicates are looked up (and counted) once
    assert (c.hits, c.misses) == (4, 3)
    s = c.stats()
    assert s["hits"] == 4 and s["misses"] == 3 and s["hit_rate"] == pytest.approx(4 / 7)
    assert s["memory_items"] == 2 and s["path"] is None


def test_namespaces_share_a_file_without_mixing(tmp_path):
    path = tmp_path / "shared.sqlite"
    with JudgmentCache(path, namespace="judge-a") as a, JudgmentCache(path, namespace="judge-b") as b:
        a.put("same-key", {"who": "a"})
        b.put("same-key", {"who": "b"})
        assert a.get("same-key") == {"who": "a"} and b.get("same-key") == {"who": "b"}
    with JudgmentCache(path, namespace="judge-a") as a2, JudgmentCache(path) as plain:
        assert a2.get("same-key") == {"who": "a"}
        assert plain.get("same-key") is None
    assert len(_sqlite_rows(path)) == 2


def test_bad_arguments_raise_before_storing():
    c = JudgmentCache(":memory:")
    with pytest.raises(TypeError):
        c.put("k", {"x": object()})  # not JSON
    with pytest.raises(TypeError):
        c.put_many({1: {"x": 1}})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        c.put("k", ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        JudgmentCache(":memory:", memory_items=-1)
    assert c.get("k") is None


# ------------------------------------------------------------------------------------------------ concurrency

# 4 writer processes on one file: tests/reliability/test_persistence.py


def test_threads_share_one_cache(tmp_path):
    c = JudgmentCache(tmp_path / "t.sqlite", memory_items=50)  # small LRU: most lookups go to SQLite
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(100):
                c.put(f"t{t}-{i}", {"t": t, "i": i})
                assert c.get(f"t{t}-{i // 2}") == {"t": t, "i": i // 2}
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert len(_sqlite_rows(tmp_path / "t.sqlite")) == 800
    c.close()


def _forked_child(cache: JudgmentCache) -> None:
    cache.put("from-child", {"pid": os.getpid()})
    assert cache.get("from-parent") == {"v": 1}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_reopens_the_connection(tmp_path):
    c = JudgmentCache(tmp_path / "f.sqlite")
    c.put("from-parent", {"v": 1})  # parent connection is open before the fork
    p = multiprocessing.get_context("fork").Process(target=_forked_child, args=(c,))
    p.start()
    p.join(30)
    assert p.exitcode == 0
    assert c.get("from-child") is not None  # written by the child through its own connection
    c.close()


# ------------------------------------------------------------------------------------------------ corruption

# Truncated, garbage and foreign files: tests/reliability/test_persistence.py


def test_non_json_value_is_a_miss_and_is_deleted(tmp_path, caplog):
    path = tmp_path / "c.sqlite"
    with JudgmentCache(path) as c:
        c.put_many({"good": {"v": 1}, "bad": {"v": 2}, "list": {"v": 3}})
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE judgments SET value = '{not json' WHERE key = 'bad'")
        conn.execute("UPDATE judgments SET value = '[1, 2]' WHERE key = 'list'")  # JSON but not a record
    with caplog.at_level(logging.WARNING, logger="mr3_reward.cache"), JudgmentCache(path) as c:
        assert c.get_many(["good", "bad", "list"]) == {"good": {"v": 1}}
        assert c.get("bad") is None
        assert (c.hits, c.misses) == (1, 3)
    assert "not valid JSON" in caplog.text
    assert set(_sqlite_rows(path)) == {"good"}


# --------------------------------------------------------------------------------------------- pickle, memory


def test_pickle_round_trip_reopens_the_same_file(tmp_path):
    path = tmp_path / "p.sqlite"
    c = JudgmentCache(path, memory_items=10, namespace="ns")
    c.put("before", {"v": 1})
    blob = pickle.dumps(c)
    assert b"before" not in blob  # only path and settings travel, not records or connections
    clone = pickle.loads(blob)
    assert clone.path == c.path and clone.stats()["memory_items"] == 0
    assert clone.get("before") == {"v": 1}  # read through its own, lazily opened connection
    clone.put("after", {"v": 2})
    assert c.get("after") == {"v": 2}
    c.close()
    clone.close()
    mem = pickle.loads(pickle.dumps(JudgmentCache(":memory:")))
    mem.put("k", {"v": 1})
    assert mem.get("k") == {"v": 1} and mem.path is None


def test_memory_mode_touches_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MR3_CACHE_DIR", str(tmp_path / "default"))
    c = JudgmentCache(":memory:")
    c.put_many({"a": {"v": 1}})
    assert c.get("a") == {"v": 1} and c.get("b") is None
    assert c.stats()["path"] is None and c.stats()["persistent"] is False
    c.close()
    assert c.get("a") == {"v": 1}  # close() keeps the memory
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------ disk trouble


def test_unwritable_location_works_from_memory(tmp_path, caplog):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a regular file where a folder should be")
    with caplog.at_level(logging.WARNING, logger="mr3_reward.cache"):
        c = JudgmentCache(blocker / "cache" / "judgments.sqlite")
        for i in range(3):
            c.put(f"k{i}", {"i": i})
        assert c.get_many(["k0", "k1", "k2", "k3"]) == {"k0": {"i": 0}, "k1": {"i": 1}, "k2": {"i": 2}}
    warnings_logged = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings_logged) == 1 and "continuing from memory" in warnings_logged[0].getMessage()
    assert c.stats()["persistent"] is False
    c.close()


def test_failing_writes_keep_working_from_memory(tmp_path, caplog):
    # A real "database or disk is full": cap the file at its current page count.
    c = JudgmentCache(tmp_path / "full.sqlite")
    c.put("small", {"v": 0})
    with c._db_lock:
        conn = c._connection()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
    with caplog.at_level(logging.WARNING, logger="mr3_reward.cache"):
        for i in range(3):
            c.put_many({f"big{i}-{j}": {"pad": "z" * 2000} for j in range(20)})
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    assert "full" in caplog.text
    assert c.get("big2-19") == {"pad": "z" * 2000}  # served from memory
    assert set(_sqlite_rows(tmp_path / "full.sqlite")) == {"small"}  # failed batches were rolled back whole
    c.close()


def test_file_deleted_behind_its_back_is_recreated(tmp_path):
    path = tmp_path / "gone.sqlite"
    c = JudgmentCache(path, memory_items=0)
    c.put("a", {"v": 1})
    for p in tmp_path.iterdir():  # e.g. a user clearing the cache folder while training runs
        p.unlink()
    c.put("b", {"v": 2})  # follows the path to a new file instead of writing into the unlinked one
    assert c.get("b") == {"v": 2} and c.get("a") is None
    assert set(_sqlite_rows(path)) == {"b"}
    c.close()
