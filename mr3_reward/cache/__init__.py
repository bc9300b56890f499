"""A persistent, process-safe result cache for judgments.

Judging is slow (seconds per item) and RLHF judges the same (prompt, completion) pair again and again, often
from several trainer processes at once. `JudgmentCache` keeps finished judgments as JSON records in a small
in-memory LRU in front of one SQLite file that any number of processes may share.

Design notes (the *why*):

* **JSON, never pickle.** A cache file is often shared (a team disk, a copied artifact); unpickling it could run
  arbitrary code. Records are `Judgment.to_record()` dicts (fields at their defaults left out, the reasoning as its
  place in `raw`) stored as JSON text.
* **WAL + busy_timeout** let processes share the file (readers never wait for the writer); see `store`.
* **Never break training.** Disk trouble (full disk, read-only directory, a path that cannot be created) is logged
  once and the cache carries on in memory. A corrupt file is moved aside (not deleted, so it can be inspected)
  and replaced by an empty cache.
* **Keys are content hashes** (`cache_key`): the caller passes everything that changes a verdict, so a stale
  entry can never be served for a changed model, template, sampling setting or prompt.

The pieces follow the data: `keys` (what identifies a judgment), `judgment_cache` (the LRU and the public
API) and `store` (the SQLite file). The store reads its settings from `mr3_reward.cache.store` at call time, so
that is the module to patch; the constants here are copies for reading.
"""

# digest_bytes, digest_parts and the constants are not in __all__ but are importable here.
from mr3_reward.cache.judgment_cache import JudgmentCache
from mr3_reward.cache.keys import cache_key, default_cache_path, digest_bytes, digest_parts
from mr3_reward.cache.store import (
    BUSY_TIMEOUT_S,
    DISK_RETRY_AFTER_S,
    MAX_SQL_PARAMS,
    QUICK_CHECK_MAX_BYTES,
    SCHEMA_VERSION,
)

__all__ = ["JudgmentCache", "SCHEMA_VERSION", "cache_key", "default_cache_path"]
