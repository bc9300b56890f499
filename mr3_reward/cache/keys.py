"""Cache keys: content hashes of everything that changes a verdict, and where the cache file lives by default.

Keys are content hashes so a stale entry can never be served for a changed model, template, sampling setting or
prompt: the caller passes all of those, and any change is a different key.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["cache_key", "default_cache_path", "digest_bytes", "digest_parts"]


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
    """sha256 hex over strings, each length-prefixed (so part boundaries cannot shift): the key of a judgment,
    whose parts are already strings (a config digest and the rendered prompt; see `mr3_reward.judge.Judge.key`).

    Args:
        *parts (`str`): the strings that identify one judgment.

    Returns:
        `str`: 64 lowercase hex characters.

    Example:

    >>> digest_parts("ab", "c") == digest_parts("a", "bc")
    False
    """
    return hashlib.sha256(digest_bytes(*parts)).hexdigest()


def digest_bytes(*parts: str) -> bytes:
    """What `digest_parts` hashes for ``parts``: each part's UTF-8 size (8 bytes, big-endian), then the part."""
    out = []
    for part in parts:
        data = part.encode("utf-8", "surrogatepass")
        out += (len(data).to_bytes(8, "big"), data)
    return b"".join(out)


def default_cache_path() -> Path:
    """``$MR3_CACHE_DIR/judgments.sqlite`` if the variable is set, else ``~/.cache/mr3_reward/judgments.sqlite``.

    The same root as the model cache (`mr3_reward.models.cache_dir`), so one variable moves everything.

    Returns:
        `Path`: the file; neither it nor its folder need exist yet.
    """
    root = os.environ.get("MR3_CACHE_DIR")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "mr3_reward"
    return base / "judgments.sqlite"
