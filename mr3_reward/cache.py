"""A persistent, process-safe result cache for judgments.

Judging is slow (seconds per item) and RLHF judges the same (prompt, completion) pair again and again, often
from several trainer processes at once. `JudgmentCache` keeps finished judgments as JSON records in a small
in-memory LRU in front of one SQLite file that any number of processes may share.

Design notes (the *why*):

* **JSON, never pickle.** A cache file is often shared (a team disk, a copied artifact); unpickling it could run
  arbitrary code. Records are `Judgment.to_dict()` dicts stored as JSON text.
* **WAL + busy_timeout.** WAL lets readers run while one process writes, and a 30 s busy timeout makes the
  occasional writer collision wait instead of fail. ``synchronous=NORMAL`` is durable against process crashes
  (only an OS crash can lose the last commits), which is fine for a cache.
* **Never break training.** Disk trouble (full disk, read-only directory, a path that cannot be created) is logged
  once and the cache carries on in memory. A corrupt file is moved aside (not deleted, so it can be inspected)
  and replaced by an empty cache.
* **Keys are content hashes** (`cache_key`): the caller passes everything that changes a verdict, so a stale
  entry can never be served for a changed model, template, sampling setting or prompt.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["JudgmentCache", "SCHEMA_VERSION", "cache_key", "default_cache_path"]

logger = logging.getLogger(__name__)

# Bump when the table layout or the meaning of stored records changes; files with another version are set aside.
SCHEMA_VERSION = 1

# SQLite's historical default limit on bound parameters is 999; 500 keeps us far below it on any build.
MAX_SQL_PARAMS = 500

# How long a writer waits for another process's write lock before giving up (and logging a warning).
BUSY_TIMEOUT_S = 30.0

# `PRAGMA quick_check` reads every page (O(file size)). Below this size it costs well under a second, so every
# open verifies the file. Above it we skip the scan and rely on the cheap checks (header, schema, a probe read)
# plus the corruption handling that runs on every query; a full scan of a multi-GB cache in every trainer
# process at start-up would cost more than the corruption it could catch early.
QUICK_CHECK_MAX_BYTES = 64 * 1024 * 1024

# After a failed open or write we stay memory-only for this long before touching the disk again, so a full disk
# or a lock held for minutes costs one failure per minute, not one (possibly 30 s) wait per batch.
DISK_RETRY_AFTER_S = 60.0

_MEMORY = ":memory:"
_SQLITE_CORRUPT = 11  # "database disk image is malformed"
_SQLITE_NOTADB = 26  # "file is not a database"
_NAMESPACE_TAG = "mr3_reward.cache.namespace"


# ----------------------------------------------------------------------------------------------------------- keys


def _canonical_default(obj: Any) -> Any:
    """JSON encoding for the few non-JSON types callers naturally pass into `cache_key`.

    Each is tagged so it cannot collide with a plain string or list of the same content.
    """
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return {"$bytes": bytes(obj).hex()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"$dataclass": type(obj).__qualname__, "fields": dataclasses.asdict(obj)}
    if isinstance(obj, (set, frozenset)):
        # Sets have no order; sort their canonical encodings so the key does not depend on hash seeds.
        return {"$set": sorted(_canonical_json(x) for x in obj)}
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(
        f"cache_key cannot encode {type(obj).__name__!r}; pass JSON types (str, int, float, bool, None, list, dict), "
        "bytes, enums, dataclasses or sets"
    )


# One encoder for every record (``json.dumps`` with options builds a new one per call).
_RECORD_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_canonical_default)


def cache_key(*parts: object) -> str:
    """A stable cache key: the sha256 hex digest of the canonical JSON of ``parts``.

    Canonical JSON is ``json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` encoded
    as UTF-8, so the key is the same in every process and Python version (no ``hash()``, no hash seed) and dict
    order does not matter. Tuples and lists encode alike. Besides JSON types, bytes, enums (by value),
    dataclasses (by field values) and sets (order-free) are accepted.

    Callers pass everything that changes a verdict: model id and revision, template version, language mode,
    sampling (seed included), the rendered prompt, the labels. Note that ``1`` and ``1.0`` encode differently;
    at worst that causes a miss, never a wrong hit.

    Args:
        *parts (`object`): the values that identify one judgment.

    Returns:
        `str`: 64 lowercase hex characters.

    Example:

    >>> cache_key("model", {"seed": 0, "temperature": 0.6}) == cache_key("model", {"temperature": 0.6, "seed": 0})
    True
    >>> cache_key("model", {"seed": 0}) == cache_key("model", {"seed": 1})
    False
    >>> len(cache_key("x"))
    64
    """
    return hashlib.sha256(_canonical_json(list(parts)).encode("utf-8")).hexdigest()


def digest_parts(*parts: str) -> str:
    """sha256 hex over strings, each length-prefixed (so part boundaries cannot shift): the fast key for
    the hot path, where the parts are already strings (a config digest and the rendered prompt)."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def default_cache_path() -> Path:
    """``$MR3_CACHE_DIR/judgments.sqlite`` if the variable is set, else ``~/.cache/mr3_reward/judgments.sqlite``.

    The same root as the model cache (`mr3_reward.models.cache_dir`), so one variable moves everything.
    """
    root = os.environ.get("MR3_CACHE_DIR")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "mr3_reward"
    return base / "judgments.sqlite"


# ---------------------------------------------------------------------------------------------- fork bookkeeping

# Live caches, so a fork can give each one fresh locks (a lock held by another thread at fork time would
# otherwise stay locked forever in the child).
_LIVE: weakref.WeakSet[JudgmentCache] = weakref.WeakSet()
# Connections inherited over fork. SQLite forbids using them in the child, and closing them there could disturb
# the parent's locks, so the child just keeps them referenced (never finalized) and opens its own.
_ABANDONED: list[sqlite3.Connection] = []


def _after_fork_in_child() -> None:
    for cache in list(_LIVE):
        cache._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# --------------------------------------------------------------------------------------------------- the cache


class _WrongSchema(Exception):
    """The file is a valid SQLite database but not a judgment cache of this schema version."""


def _is_corruption(exc: BaseException) -> bool:
    if isinstance(exc, _WrongSchema):
        return True
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    msg = str(exc).lower()
    return "malformed" in msg or "not a database" in msg


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


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

    Example:

    >>> cache = JudgmentCache(":memory:")
    >>> cache.put("k1", {"score": "Assistant A", "failure": None})
    >>> cache.get("k1")
    {'score': 'Assistant A', 'failure': None}
    >>> cache.get_many(["k1", "k2"])
    {'k1': {'score': 'Assistant A', 'failure': None}}
    >>> cache.stats()["hits"], cache.stats()["misses"]
    (2, 1)
    """

    hits: int
    misses: int

    def __init__(self, path: str | Path | None = None, *, memory_items: int = 65536, namespace: str = "") -> None:
        self._setup(path, memory_items, namespace)

    # ------------------------------------------------------------------------------------------ construction

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
        self._in_memory = str(path) == _MEMORY
        self._path: Path | None = None if self._in_memory else Path(path).expanduser().absolute()
        self._memory_items = memory_items
        self._namespace = namespace
        self._lru: OrderedDict[str, str] = OrderedDict()  # key -> JSON text (decoded per get: callers get copies)
        self.hits = 0
        self.misses = 0
        self._init_process_state()
        _LIVE.add(self)

    def _init_process_state(self) -> None:
        """Everything that must not cross a process boundary: locks and the SQLite connection."""
        # Two locks so LRU hits never wait behind a SQLite call (which may sit in busy_timeout for seconds).
        self._mem_lock = threading.Lock()
        self._db_lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._conn_pid = os.getpid()
        self._file_id: tuple[int, int] | None = None  # (st_dev, st_ino) of the file the connection has open
        self._open_retry_at = 0.0
        self._write_retry_at = 0.0
        self._warned: set[str] = set()

    def _reset_after_fork(self) -> None:
        if self._conn is not None:
            _ABANDONED.append(self._conn)
        self._init_process_state()

    def __getstate__(self) -> dict[str, Any]:
        return {
            "path": _MEMORY if self._in_memory else str(self._path),
            "memory_items": self._memory_items,
            "namespace": self._namespace,
        }

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self._setup(state["path"], state["memory_items"], state["namespace"])

    def __repr__(self) -> str:
        where = _MEMORY if self._in_memory else str(self._path)
        ns = f", namespace={self._namespace!r}" if self._namespace else ""
        return f"JudgmentCache({where!r}, memory_items={self._memory_items}{ns})"

    @property
    def path(self) -> Path | None:
        """The SQLite file, or `None` for a ``":memory:"`` cache."""
        return self._path

    # ------------------------------------------------------------------------------------------------ public

    def get_many(self, keys: Sequence[str]) -> dict[str, dict]:
        """Look up several keys at once: the LRU first, then SQLite in one query per 500 keys.

        Args:
            keys (`Sequence[str]`): the keys (usually from `cache_key`); duplicates are looked up once.

        Returns:
            `dict[str, dict]`: the records found, by key (a fresh copy each call); missing keys are absent.
        """
        if isinstance(keys, str):  # a lone key would otherwise be looked up character by character
            raise TypeError("get_many takes a sequence of keys; use get(key) for one key")
        if keys is None or isinstance(keys, Mapping) or not isinstance(keys, Iterable):
            raise TypeError(f"get_many takes a list of string keys, got {type(keys).__name__}")
        wanted = list(dict.fromkeys(keys))
        for key in wanted:
            if not isinstance(key, str):
                raise TypeError(f"cache keys must be strings, got {type(key).__name__}")
        found: dict[str, dict] = {}
        missing: list[str] = []
        with self._mem_lock:
            for key in wanted:
                text = self._lru.get(key)
                if text is None:
                    missing.append(key)
                else:
                    self._lru.move_to_end(key)
                    found[key] = json.loads(text)
        if missing and not self._in_memory:
            from_disk = self._read(missing)
            if from_disk:
                with self._mem_lock:
                    for key, (text, record) in from_disk.items():
                        found[key] = record
                        self._remember(key, text)
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
        for key, record in records.items():
            if not isinstance(key, str):
                raise TypeError(f"cache keys must be strings, got {type(key).__name__}")
            if not isinstance(record, Mapping):
                raise TypeError(f"cache records must be dicts, got {type(record).__name__} for key {key!r}")
            encoded[key] = _RECORD_ENCODER.encode(record if isinstance(record, dict) else dict(record))
        if not encoded:
            return
        with self._mem_lock:
            for key, text in encoded.items():
                self._remember(key, text)
        if not self._in_memory:
            now = time.time()
            self._write([(self._storage_key(k), text, now) for k, text in encoded.items()])

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
            "path": None if self._in_memory else str(self._path),
            "persistent": (not self._in_memory) and self._conn is not None and self._conn_pid == os.getpid(),
        }

    def close(self) -> None:
        """Close the SQLite connection (the LRU is kept; a later call reopens the file lazily)."""
        with self._db_lock:
            if self._conn is not None and self._conn_pid == os.getpid():
                try:
                    self._conn.close()
                except sqlite3.Error:  # closing must never raise out of a cleanup path
                    pass
            self._conn = None
            self._file_id = None

    def __enter__(self) -> JudgmentCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------------ memory

    def _remember(self, key: str, text: str) -> None:
        """Insert into the LRU (caller holds ``_mem_lock``)."""
        if self._memory_items == 0:
            return
        self._lru[key] = text
        self._lru.move_to_end(key)
        while len(self._lru) > self._memory_items:
            self._lru.popitem(last=False)

    def _storage_key(self, key: str) -> str:
        # Hash rather than prefix: with a prefix, ("a:b", "c") and ("a", "b:c") would collide.
        return cache_key(_NAMESPACE_TAG, self._namespace, key) if self._namespace else key

    # ------------------------------------------------------------------------------------------------ SQLite

    def _warn_once(self, what: str, exc: BaseException) -> None:
        if what in self._warned:
            logger.debug("result cache %s %s failed again: %s", self._path, what, exc)
            return
        self._warned.add(what)
        logger.warning(
            "result cache %s: %s failed (%s: %s); continuing from memory (judgments are still correct, just not "
            "persisted/shared); retrying the disk every %.0f s",
            self._path, what, type(exc).__name__, exc, DISK_RETRY_AFTER_S,
        )

    def _current_file_id(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self._path)  # type: ignore[arg-type]
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def _connection(self) -> sqlite3.Connection | None:
        """The open connection for this process, opening (or reopening) it if needed. Caller holds ``_db_lock``."""
        if self._conn is not None and self._conn_pid != os.getpid():
            # Forked without our at-fork hook having run (should not happen, but a shared connection across
            # processes corrupts files, so check cheaply anyway).
            _ABANDONED.append(self._conn)
            self._conn = None
        if self._conn is not None and self._current_file_id() != self._file_id:
            # Another process moved a corrupt file aside (or someone deleted the cache): follow the path to the
            # new file instead of writing forever into an orphaned one. One stat() per batch is cheap.
            logger.info("result cache %s was replaced on disk; reopening", self._path)
            self.close()
        if self._conn is None:
            if time.monotonic() < self._open_retry_at:
                return None
            self._conn = self._open()
            self._conn_pid = os.getpid()
            if self._conn is None:
                self._open_retry_at = time.monotonic() + DISK_RETRY_AFTER_S
        return self._conn

    def _open(self) -> sqlite3.Connection | None:
        assert self._path is not None
        for _attempt in range(3):  # set aside at most twice (e.g. another process races us with a bad file)
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(
                    str(self._path), timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None
                )
            except (OSError, sqlite3.Error) as exc:
                self._warn_once("open", exc)
                return None
            # Identify the file now, so a later set-aside only ever moves the file we actually judged bad.
            file_id = self._current_file_id()
            try:
                self._configure(conn)
            except (sqlite3.Error, _WrongSchema) as exc:
                conn.close()
                if _is_corruption(exc):
                    try:
                        self._set_aside(exc, file_id)
                    except sqlite3.OperationalError:
                        return None  # could not move it (already logged): memory-only for a while
                    continue
                self._warn_once("open", exc)
                return None
            self._file_id = file_id
            self._warned.discard("open")
            return conn
        return None

    def _configure(self, conn: sqlite3.Connection) -> None:
        """Pragmas, integrity check and schema; raises on a bad file."""
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        size = os.path.getsize(self._path) if self._path and self._path.exists() else 0
        if size <= QUICK_CHECK_MAX_BYTES:
            rows = conn.execute("PRAGMA quick_check(1)").fetchall()
            if rows != [("ok",)]:
                raise sqlite3.DatabaseError(f"database disk image is malformed (quick_check: {rows[0][0]!s})")
        # Validate before changing anything: a database that is not ours is moved aside byte-for-byte untouched
        # (switching it to WAL first would rewrite its header).
        tables = self._tables(conn)
        if tables:
            self._check_schema(conn, tables)
        try:
            # Persistent per file: the first opener switches it; later ones see 'wal' already. On filesystems
            # without shared memory (some network mounts) SQLite keeps the rollback journal, which still works.
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                logger.info("result cache %s: journal_mode is %s (WAL unavailable)", self._path, mode)
        except sqlite3.OperationalError as exc:  # e.g. briefly locked by a concurrent opener; harmless
            if _is_corruption(exc):
                raise
            logger.debug("result cache %s: could not switch to WAL: %s", self._path, exc)
        conn.execute("PRAGMA synchronous = NORMAL")
        if not tables:
            # New (or empty) file: create the schema in a write transaction, re-checking inside it because
            # another process may have created it between our read and our lock.
            conn.execute("BEGIN IMMEDIATE")
            try:
                if not self._tables(conn):
                    conn.execute("CREATE TABLE judgments (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL)")
                    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                    conn.execute(
                        "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                    )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            self._check_schema(conn, self._tables(conn))
        # Probe read: on files too big for quick_check this at least touches the table's root page.
        conn.execute("SELECT key FROM judgments LIMIT 1").fetchall()

    @staticmethod
    def _check_schema(conn: sqlite3.Connection, tables: set[str]) -> None:
        if not {"judgments", "meta"} <= tables:
            raise _WrongSchema(f"not a judgment cache (tables: {', '.join(sorted(tables))})")
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None or row[0] != str(SCHEMA_VERSION):
            found = row[0] if row else "none"
            raise _WrongSchema(f"schema version {found}, expected {SCHEMA_VERSION}")
        columns = [r[1] for r in conn.execute("PRAGMA table_info(judgments)")]
        if columns != ["key", "value", "created"]:
            raise _WrongSchema(f"unexpected judgments columns {columns}")

    @staticmethod
    def _tables(conn: sqlite3.Connection) -> set[str]:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def _set_aside(self, reason: BaseException, file_id: tuple[int, int] | None) -> None:
        """Move a bad cache file (and its -wal/-shm) to ``<name>.corrupt-<timestamp>`` and warn."""
        assert self._path is not None
        if file_id is not None and self._current_file_id() != file_id:
            return  # another process already moved it aside; the path now holds a fresh file
        now = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{now % 1:.6f}"[1:] + f"Z-{os.getpid()}"
        target = self._path.with_name(f"{self._path.name}.corrupt-{stamp}")
        try:
            # Main file first: from this moment no process opens the bad file again. The side files follow;
            # the -wal of a corrupt file is meaningless without it (and must not be replayed into a new file).
            os.replace(self._path, target)
            for suffix in ("-wal", "-shm"):
                side = self._path.with_name(self._path.name + suffix)
                try:
                    os.replace(side, target.with_name(target.name + suffix))
                except FileNotFoundError:
                    pass
        except FileNotFoundError:
            return  # someone else moved it first
        except OSError as exc:
            # Cannot move it (read-only folder): nothing else we can do; stay memory-only.
            self._warn_once("moving the corrupt file aside", exc)
            raise sqlite3.OperationalError(f"cannot move corrupt cache file {self._path} aside: {exc}") from exc
        warnings.warn(
            f"mr3_reward result cache {self._path} is unusable ({reason}); moved it aside to {target} "
            "and started an empty cache",
            RuntimeWarning,
            stacklevel=4,
        )

    def _recover(self, exc: BaseException) -> sqlite3.Connection | None:
        """Corruption found during use: drop the connection, set the file aside, open a fresh one."""
        file_id = self._file_id
        self.close()
        try:
            self._set_aside(exc, file_id)
        except sqlite3.OperationalError:
            self._open_retry_at = time.monotonic() + DISK_RETRY_AFTER_S
            return None
        return self._connection()

    def _read(self, keys: list[str]) -> dict[str, tuple[str, dict]]:
        """Caller keys -> (JSON text, record) found in SQLite. Never raises for disk trouble."""
        by_storage = {self._storage_key(k): k for k in keys}
        storage_keys = list(by_storage)
        out: dict[str, tuple[str, dict]] = {}
        bad: list[tuple[str, str]] = []
        with self._db_lock:
            conn = self._connection()
            if conn is None:
                return out
            try:
                for chunk in _chunks(storage_keys, MAX_SQL_PARAMS):
                    marks = ",".join("?" * len(chunk))
                    rows = conn.execute(f"SELECT key, value FROM judgments WHERE key IN ({marks})", chunk).fetchall()
                    for skey, text in rows:
                        try:
                            record = json.loads(text)
                        except (TypeError, ValueError):
                            record = None
                        if not isinstance(record, dict):
                            bad.append((skey, text))
                            continue
                        out[by_storage[skey]] = (text, record)
            except sqlite3.DatabaseError as exc:
                if _is_corruption(exc):
                    self._recover(exc)  # the fresh file is empty: the rest are misses
                else:
                    self._warn_once("read", exc)
                return out
            if bad:
                self._drop_bad_rows(conn, bad)
        return out

    def _drop_bad_rows(self, conn: sqlite3.Connection, bad: list[tuple[str, str]]) -> None:
        logger.warning("result cache %s: %d record(s) are not valid JSON; treating as misses", self._path, len(bad))
        try:
            # Delete only if unchanged, so a concurrent writer's fresh value is not thrown away.
            conn.executemany("DELETE FROM judgments WHERE key = ? AND value = ?", bad)
        except sqlite3.Error as exc:
            logger.debug("result cache %s: could not delete bad rows: %s", self._path, exc)

    def _write(self, rows: list[tuple[str, str, float]]) -> None:
        with self._db_lock:
            if time.monotonic() < self._write_retry_at:
                return
            conn = self._connection()
            for attempt in range(2):
                if conn is None:
                    return
                try:
                    # IMMEDIATE takes the write lock up front, so waiting (busy_timeout) happens here and not
                    # as a deadlock-prone lock upgrade halfway through the batch.
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        conn.executemany(
                            "INSERT OR REPLACE INTO judgments (key, value, created) VALUES (?, ?, ?)", rows
                        )
                        conn.execute("COMMIT")
                    except BaseException:
                        if conn.in_transaction:
                            try:
                                conn.execute("ROLLBACK")
                            except sqlite3.Error:
                                pass
                        raise
                except sqlite3.DatabaseError as exc:
                    if attempt == 0 and _is_corruption(exc):
                        conn = self._recover(exc)
                        continue
                    self._warn_once("write", exc)
                    self._write_retry_at = time.monotonic() + DISK_RETRY_AFTER_S
                    return
                self._warned.discard("write")
                return
