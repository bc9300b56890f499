"""The SQLite side of the judgment cache: one file shared by any number of processes, that never breaks training.

* **WAL + busy_timeout.** WAL lets readers run while one process writes, and a 30 s busy timeout makes the
  occasional writer collision wait instead of fail. ``synchronous=NORMAL`` is durable against process crashes
  (only an OS crash can lose the last commits), which is fine for a cache.
* **Disk trouble is logged, not raised.** A full disk, a read-only directory or a path that cannot be created is
  logged once; the caller carries on from memory and the disk is retried every `DISK_RETRY_AFTER_S`.
* **A damaged file is set aside, not deleted** (so it can be inspected), and replaced by an empty cache.

Keys here are storage keys (namespacing is the caller's job); values are JSON text.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = [
    "BUSY_TIMEOUT_S", "DISK_RETRY_AFTER_S", "MAX_SQL_PARAMS", "QUICK_CHECK_MAX_BYTES", "SCHEMA_VERSION",
    "SQLiteStore",
]

# The name the cache has always logged under, which users' logging configs and tests select.
logger = logging.getLogger("mr3_reward.cache")

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

_SQLITE_CORRUPT = 11  # "database disk image is malformed"
_SQLITE_NOTADB = 26  # "file is not a database"

# Connections inherited over fork. SQLite forbids using them in the child, and closing them there could disturb
# the parent's locks, so the child just keeps them referenced (never finalized) and opens its own.
_ABANDONED: list[sqlite3.Connection] = []


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


def _file_id(path: Path) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the file at ``path`` now, or `None` if there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


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


def _configure(conn: sqlite3.Connection, path: Path) -> None:
    """Pragmas, integrity check and schema; raises on a bad file."""
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    size = os.path.getsize(path) if path.exists() else 0
    if size <= QUICK_CHECK_MAX_BYTES:
        rows = conn.execute("PRAGMA quick_check(1)").fetchall()
        if rows != [("ok",)]:
            raise sqlite3.DatabaseError(f"database disk image is malformed (quick_check: {rows[0][0]!s})")
    # Validate before changing anything: a database that is not ours is moved aside byte-for-byte untouched
    # (switching it to WAL first would rewrite its header).
    tables = _tables(conn)
    if tables:
        _check_schema(conn, tables)
    try:
        # Persistent per file: the first opener switches it; later ones see 'wal' already. On filesystems
        # without shared memory (some network mounts) SQLite keeps the rollback journal, which still works.
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            logger.info("result cache %s: journal_mode is %s (WAL unavailable)", path, mode)
    except sqlite3.OperationalError as exc:  # e.g. briefly locked by a concurrent opener; harmless
        if _is_corruption(exc):
            raise
        logger.debug("result cache %s: could not switch to WAL: %s", path, exc)
    conn.execute("PRAGMA synchronous = NORMAL")
    if not tables:
        # New (or empty) file: create the schema in a write transaction, re-checking inside it because
        # another process may have created it between our read and our lock.
        conn.execute("BEGIN IMMEDIATE")
        try:
            if not _tables(conn):
                conn.execute("CREATE TABLE judgments (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL)")
                conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        _check_schema(conn, _tables(conn))
    # Probe read: on files too big for quick_check this at least touches the table's root page.
    conn.execute("SELECT key FROM judgments LIMIT 1").fetchall()


def _drop_bad_rows(conn: sqlite3.Connection, path: Path, bad: list[tuple[str, str]]) -> None:
    logger.warning("result cache %s: %d record(s) are not valid JSON; treating as misses", path, len(bad))
    try:
        # Delete only if unchanged, so a concurrent writer's fresh value is not thrown away.
        conn.executemany("DELETE FROM judgments WHERE key = ? AND value = ?", bad)
    except sqlite3.Error as exc:
        logger.debug("result cache %s: could not delete bad rows: %s", path, exc)


def _move_aside(path: Path) -> Path:
    """Rename ``path`` and its -wal/-shm to ``<name>.corrupt-<timestamp>``; returns the new name of the main file.

    Raises `FileNotFoundError` if the main file is already gone, `OSError` if it cannot be moved.
    """
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{now % 1:.6f}"[1:] + f"Z-{os.getpid()}"
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    # Main file first: from this moment no process opens the bad file again. The side files follow; the -wal of
    # a corrupt file is meaningless without it (and must not be replayed into a new file).
    os.replace(path, target)
    for suffix in ("-wal", "-shm"):
        try:
            os.replace(path.with_name(path.name + suffix), target.with_name(target.name + suffix))
        except FileNotFoundError:
            pass
    return target


class SQLiteStore:
    """JSON text by storage key in one SQLite file, opened lazily once per process. Never raises for disk trouble.

    Thread-safe through `lock`. After a fork the owner calls `reset_after_fork` in the child, which gets its own
    connection (SQLite connections must not cross a fork).

    Args:
        path (`Path`): the SQLite file; created with its parent folders on first use.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._init_process_state()

    def _init_process_state(self) -> None:
        """Everything that must not cross a process boundary: the lock and the SQLite connection."""
        self.lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._conn_pid = os.getpid()
        self._file_id: tuple[int, int] | None = None  # (st_dev, st_ino) of the file the connection has open
        self._open_retry_at = 0.0
        self._write_retry_at = 0.0
        self._warned: set[str] = set()

    def reset_after_fork(self) -> None:
        """In a forked child: abandon the parent's connection and locks; the next call opens a fresh one."""
        if self._conn is not None:
            _ABANDONED.append(self._conn)
        self._init_process_state()

    @property
    def persistent(self) -> bool:
        """Whether this process has the file open right now (`False` while working from memory after a failure)."""
        return self._conn is not None and self._conn_pid == os.getpid()

    def close(self) -> None:
        """Close the connection; a later call reopens the file lazily."""
        with self.lock:
            if self._conn is not None and self._conn_pid == os.getpid():
                try:
                    self._conn.close()
                except sqlite3.Error:  # closing must never raise out of a cleanup path
                    pass
            self._conn = None
            self._file_id = None

    def _warn_once(self, what: str, exc: BaseException) -> None:
        if what in self._warned:
            logger.debug("result cache %s %s failed again: %s", self.path, what, exc)
            return
        self._warned.add(what)
        logger.warning(
            "result cache %s: %s failed (%s: %s); continuing from memory (judgments are still correct, just not "
            "persisted/shared); retrying the disk every %.0f s",
            self.path, what, type(exc).__name__, exc, DISK_RETRY_AFTER_S,
        )

    def connection(self) -> sqlite3.Connection | None:
        """The open connection for this process, opening (or reopening) it if needed. Caller holds `lock`."""
        if self._conn is not None and self._conn_pid != os.getpid():
            # Forked without our at-fork hook having run (should not happen, but a shared connection across
            # processes corrupts files, so check cheaply anyway).
            _ABANDONED.append(self._conn)
            self._conn = None
        if self._conn is not None and _file_id(self.path) != self._file_id:
            # Another process moved a corrupt file aside (or someone deleted the cache): follow the path to the
            # new file instead of writing forever into an orphaned one. One stat() per batch is cheap.
            logger.info("result cache %s was replaced on disk; reopening", self.path)
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
        for _attempt in range(3):  # set aside at most twice (e.g. another process races us with a bad file)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, check_same_thread=False,
                                       isolation_level=None)
            except (OSError, sqlite3.Error) as exc:
                self._warn_once("open", exc)
                return None
            # Identify the file now, so a later set-aside only ever moves the file we actually judged bad.
            file_id = _file_id(self.path)
            try:
                _configure(conn, self.path)
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

    def _set_aside(self, reason: BaseException, file_id: tuple[int, int] | None) -> None:
        """Move a bad cache file (and its -wal/-shm) to ``<name>.corrupt-<timestamp>`` and warn."""
        if file_id is not None and _file_id(self.path) != file_id:
            return  # another process already moved it aside; the path now holds a fresh file
        try:
            target = _move_aside(self.path)
        except FileNotFoundError:
            return  # someone else moved it first
        except OSError as exc:
            # Cannot move it (read-only folder): nothing else we can do; stay memory-only.
            self._warn_once("moving the corrupt file aside", exc)
            raise sqlite3.OperationalError(f"cannot move corrupt cache file {self.path} aside: {exc}") from exc
        # stacklevel 4: past _set_aside, _open/_recover and connection, to the read or write that met the file.
        warnings.warn(f"mr3_reward result cache {self.path} is unusable ({reason}); moved it aside to {target} "
                      "and started an empty cache", RuntimeWarning, stacklevel=4)

    def _recover(self, exc: BaseException) -> sqlite3.Connection | None:
        """Corruption found during use: drop the connection, set the file aside, open a fresh one."""
        file_id = self._file_id
        self.close()
        try:
            self._set_aside(exc, file_id)
        except sqlite3.OperationalError:
            self._open_retry_at = time.monotonic() + DISK_RETRY_AFTER_S
            return None
        return self.connection()

    def read(self, keys: Sequence[str]) -> dict[str, tuple[str, dict]]:
        """Storage keys -> (JSON text, record) found in the file; rows that are not a JSON object count as misses
        and are deleted. Never raises for disk trouble."""
        out: dict[str, tuple[str, dict]] = {}
        bad: list[tuple[str, str]] = []
        with self.lock:
            conn = self.connection()
            if conn is None:
                return out
            try:
                for chunk in _chunks(keys, MAX_SQL_PARAMS):
                    marks = ",".join("?" * len(chunk))
                    rows = conn.execute(f"SELECT key, value FROM judgments WHERE key IN ({marks})", chunk).fetchall()
                    for key, text in rows:
                        try:
                            record = json.loads(text)
                        except (TypeError, ValueError):
                            record = None
                        if not isinstance(record, dict):
                            bad.append((key, text))
                            continue
                        out[key] = (text, record)
            except sqlite3.DatabaseError as exc:
                if _is_corruption(exc):
                    self._recover(exc)  # the fresh file is empty: the rest are misses
                else:
                    self._warn_once("read", exc)
                return out
            if bad:
                _drop_bad_rows(conn, self.path, bad)
        return out

    def write(self, rows: list[tuple[str, str, float]]) -> None:
        """Store (storage key, JSON text, created) rows in one transaction, replacing older values; all or none.
        Never raises for disk trouble."""
        with self.lock:
            if time.monotonic() < self._write_retry_at:
                return
            conn = self.connection()
            for attempt in range(2):
                if conn is None:
                    return
                try:
                    # IMMEDIATE takes the write lock up front, so waiting (busy_timeout) happens here and not
                    # as a deadlock-prone lock upgrade halfway through the batch.
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        conn.executemany("INSERT OR REPLACE INTO judgments (key, value, created) VALUES (?, ?, ?)",
                                         rows)
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
