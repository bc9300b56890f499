"""`JudgmentCache`: judgment records by key, an in-memory LRU in front of a shared SQLite file (`store`).

>>> cache = JudgmentCache(":memory:")
>>> cache.put("k1", {"score": "Assistant A", "failure": None})
>>> cache.get("k1")
{'score': 'Assistant A', 'failure': None}
>>> cache.get_many(["k1", "k2"])
{'k1': {'score': 'Assistant A', 'failure': None}}
>>> cache.stats()["hits"], cache.stats()["misses"]
(2, 1)
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mr3_reward.cache.keys import cache_key, default_cache_path
from mr3_reward.cache.store import SQLiteStore

__all__ = ["JudgmentCache"]

_MEMORY = ":memory:"
_NAMESPACE_TAG = "mr3_reward.cache.namespace"

# One encoder for every record (``json.dumps`` with options builds a new one per call).
_RECORD_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

# Live caches, so a fork can give each one fresh locks (a lock held by another thread at fork time would
# otherwise stay locked forever in the child) and its own SQLite connection.
_LIVE: weakref.WeakSet[JudgmentCache] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for cache in list(_LIVE):
        cache._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _unique_keys(keys: Sequence[str]) -> list[str]:
    """``keys`` without repeats, in order; `TypeError` for anything but a sequence of strings."""
    if isinstance(keys, str):  # a lone key would otherwise be looked up character by character
        raise TypeError("get_many takes a sequence of keys; use get(key) for one key")
    if keys is None or isinstance(keys, Mapping) or not isinstance(keys, Iterable):
        raise TypeError(f"get_many takes a list of string keys, got {type(keys).__name__}")
    wanted = list(dict.fromkeys(keys))
    for key in wanted:
        if not isinstance(key, str):
            raise TypeError(f"cache keys must be strings, got {type(key).__name__}")
    return wanted


class JudgmentCache:
    """Judgment records (JSON dicts) by key: an in-memory LRU in front of a SQLite file shared by processes.

    Thread-safe; safe for several processes on one file (SQLite WAL); picklable (only the path and settings
    travel, the file is reopened lazily in the new process, so TRL/Ray can ship reward functions that hold one).
    Disk problems never raise: a corrupt file is moved aside to ``<name>.corrupt-<timestamp>`` with a
    `RuntimeWarning`, and failing reads/writes are logged once while the cache keeps working from memory.

    Args:
        path (`str | Path`, *optional*):
            The SQLite file; created with its parent folders if missing. `None` means `default_cache_path()`;
            ``":memory:"`` keeps everything in the LRU only (no file, nothing shared).
        memory_items (`int`, *optional*, defaults to 65536):
            How many records the in-process LRU holds (0 disables it; every lookup then goes to SQLite).
        namespace (`str`, *optional*, defaults to `""`):
            Mixed into every stored key, so logically different caches can share one file without ever seeing
            each other's records.
    """

    hits: int
    misses: int

    def __init__(self, path: str | Path | None = None, *, memory_items: int = 65536, namespace: str = "") -> None:
        self._setup(path, memory_items, namespace)

    def _setup(self, path: str | Path | None, memory_items: int, namespace: str) -> None:
        if not isinstance(memory_items, int) or isinstance(memory_items, bool) or memory_items < 0:
            raise ValueError(f"memory_items must be an int >= 0, got {memory_items!r}")
        if not isinstance(namespace, str):
            raise TypeError(f"namespace must be a string, got {type(namespace).__name__}")
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a file path (str or Path), ':memory:', or None for the default file; "
                            f"got {type(path).__name__}")
        if path is None:
            # Resolved now (not in each process) so a pickled copy uses the very same file.
            path = default_cache_path()
        # None for ":memory:": nothing is ever read from or written to disk.
        self._store = None if str(path) == _MEMORY else SQLiteStore(Path(path).expanduser().absolute())
        self._memory_items = memory_items
        self._namespace = namespace
        self._lru: OrderedDict[str, str] = OrderedDict()  # key -> JSON text (decoded per get: callers get copies)
        self.hits = 0
        self.misses = 0
        # Its own lock (not the store's) so LRU hits never wait behind a SQLite call in busy_timeout for seconds.
        self._mem_lock = threading.Lock()
        _LIVE.add(self)

    def _reset_after_fork(self) -> None:
        self._mem_lock = threading.Lock()
        if self._store is not None:
            self._store.reset_after_fork()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": _MEMORY if self._store is None else str(self._store.path),
                "memory_items": self._memory_items, "namespace": self._namespace}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self._setup(state["path"], state["memory_items"], state["namespace"])

    def __repr__(self) -> str:
        where = _MEMORY if self._store is None else str(self._store.path)
        ns = f", namespace={self._namespace!r}" if self._namespace else ""
        return f"JudgmentCache({where!r}, memory_items={self._memory_items}{ns})"

    @property
    def path(self) -> Path | None:
        """The SQLite file, or `None` for a ``":memory:"`` cache."""
        return None if self._store is None else self._store.path

    def get_many(self, keys: Sequence[str]) -> dict[str, dict]:
        """Look up several keys at once: the LRU first, then SQLite in one query per 500 keys.

        Args:
            keys (`Sequence[str]`): the keys (usually from `cache_key`); duplicates are looked up once.

        Returns:
            `dict[str, dict]`: the records found, by key (a fresh copy each call); missing keys are absent.
        """
        wanted = _unique_keys(keys)
        found: dict[str, dict] = {}
        missing: list[str] = []
        lru = self._lru
        with self._mem_lock:
            for key in wanted:
                text = lru.get(key)
                if text is None:
                    missing.append(key)
                else:
                    lru.move_to_end(key)
                    found[key] = json.loads(text)
        if missing and self._store is not None:
            by_storage = {self._storage_key(k): k for k in missing} if self._namespace else dict(zip(missing, missing))
            from_disk = self._store.read(list(by_storage))
            if from_disk:
                texts = {}
                for skey, (text, record) in from_disk.items():
                    key = by_storage[skey]
                    found[key] = record
                    texts[key] = text
                with self._mem_lock:
                    self._remember_all(texts)
        with self._mem_lock:
            self.hits += len(found)
            self.misses += len(wanted) - len(found)
        return found

    def put_many(self, records: Mapping[str, dict]) -> None:
        """Store several records: into the LRU, and into SQLite in one transaction.

        Args:
            records (`Mapping[str, dict]`): key -> JSON-safe record (e.g. `Judgment.to_dict()`).

        Raises:
            TypeError: a key is not a string or a record is not a JSON-serializable mapping (a programming
                error, raised before anything is stored). Disk failures never raise.
        """
        if not isinstance(records, Mapping):
            raise TypeError(f"put_many takes a dict of key -> record (e.g. {{key: judgment.to_dict()}}), "
                            f"got {type(records).__name__}")
        encoded: dict[str, str] = {}
        encode = _RECORD_ENCODER.encode
        for key, record in records.items():
            if not isinstance(key, str):
                raise TypeError(f"cache keys must be strings, got {type(key).__name__}")
            if type(record) is not dict:
                if not isinstance(record, Mapping):
                    raise TypeError(f"cache records must be dicts, got {type(record).__name__} for key {key!r}")
                record = dict(record)
            encoded[key] = encode(record)
        if not encoded:
            return
        with self._mem_lock:
            self._remember_all(encoded)
        if self._store is not None:
            now = time.time()
            if self._namespace:
                self._store.write([(self._storage_key(k), text, now) for k, text in encoded.items()])
            else:  # storage keys are the keys
                self._store.write([(k, text, now) for k, text in encoded.items()])

    def get(self, key: str) -> dict | None:
        """The record for ``key``, or `None`."""
        return self.get_many([key]).get(key)

    def put(self, key: str, record: dict) -> None:
        """Store one record (see `put_many`)."""
        self.put_many({key: record})

    def stats(self) -> dict[str, Any]:
        """Counters for logging: ``hits``, ``misses``, ``hit_rate`` (0.0 before any lookup), ``memory_items``
        (records in the LRU now), ``path`` (`None` for ``":memory:"``) and ``persistent`` (whether the file is
        in use right now, `False` while working from memory after a disk failure)."""
        with self._mem_lock:
            hits, misses, in_lru = self.hits, self.misses, len(self._lru)
        total = hits + misses
        return {
            "hits": hits,
            "misses": misses,
            "hit_rate": hits / total if total else 0.0,
            "memory_items": in_lru,
            "path": None if self._store is None else str(self._store.path),
            "persistent": self._store is not None and self._store.persistent,
        }

    def close(self) -> None:
        """Close the SQLite connection (the LRU is kept; a later call reopens the file lazily)."""
        if self._store is not None:
            self._store.close()

    def __enter__(self) -> JudgmentCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # The store's lock and connection, for tests that trace or cap the live connection (file caches only).
    _db_lock = property(lambda self: self._store.lock)

    def _connection(self) -> sqlite3.Connection | None:
        return self._store.connection()  # type: ignore[union-attr]

    def _remember_all(self, texts: Mapping[str, str]) -> None:
        """Insert key -> JSON text into the LRU, newest last (caller holds ``_mem_lock``)."""
        if self._memory_items == 0:
            return
        lru = self._lru
        for key, text in texts.items():
            lru[key] = text
            lru.move_to_end(key)
        while len(lru) > self._memory_items:
            lru.popitem(last=False)

    def _storage_key(self, key: str) -> str:
        # Hash rather than prefix: with a prefix, ("a:b", "c") and ("a", "b:c") would collide.
        return cache_key(_NAMESPACE_TAG, self._namespace, key) if self._namespace else key
