"""Reading rows from any dataset source, and writing files that are either whole or absent.

Readers: `iter_jsonl` (a JSONL file, line by line, with the line in every error) and `iter_rows` (a JSONL,
JSON, NDJSON, Parquet or CSV file, a ``save_to_disk`` folder or a hub dataset id; everything but JSON lines
is read through ``datasets``). Writers: every file goes to a temporary name next to its target and is
renamed into place (`replacing`), so a reader, or a job resumed after a kill, sees the old file or the
whole new one. The temporary names (``.NAME.tmp-PID-XXXXXXXX``, ``.NAME.trash-PID-XXXXXXXX``) are ones
`clear_leftovers` knows how to find again.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> write_jsonl(folder / "rows.jsonl", [{"prompt": "2+2?"}, {"prompt": "3+3?"}])
>>> [(where.rsplit("/", 1)[1], row) for where, row in iter_rows(folder / "rows.jsonl")]
[('rows.jsonl:1', {'prompt': '2+2?'}), ('rows.jsonl:2', {'prompt': '3+3?'})]
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from mr3_reward.errors import InputError

__all__ = ["clear_leftovers", "iter_jsonl", "iter_rows", "json_text", "jsonl_text", "put_in_place", "read_jsonl",
           "remove_tree", "replacing", "shard_path", "temp_path", "write_atomic", "write_json", "write_jsonl"]

JSON_LINES_SUFFIXES = (".jsonl", ".json", ".ndjson")
# The file types `datasets` reads, by the name of its loader.
_LOADERS = {".json": "json", ".parquet": "parquet", ".csv": "csv"}


# --------------------------------------------------------------------------------------------------- reading
def iter_jsonl(path: str | Path, problems: list[str] | None = None) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line. Bad JSON is raised as InputError, or, when a
    ``problems`` list is given, noted there (``path:n: ...``) and skipped, so a reader can report every bad
    line of a file at once."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"input {str(path)!r} is a folder; pass a JSONL file (one request per line)")
    if not path.is_file():
        raise InputError(f"input file {str(path)!r} does not exist")
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as e:
                message = f"{path}:{n}: not valid JSON ({e.msg} at column {e.colno}); each line must be one JSON object"
                if problems is None:
                    raise InputError(message) from None
                problems.append(message)
                continue
            yield n, value


def _is_json_array(path: Path) -> bool:
    # A .json file is JSON lines unless it opens a top-level array (then `datasets` reads the whole array).
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                return line.lstrip().startswith("[")
    return False


def iter_rows(source: str | Path, split: str = "train", *, name: str | None = None) -> Iterator[tuple[str, Any]]:
    """(where, row) for each row of a data file, a saved HF dataset folder or a hub dataset id.

    source (`str | Path`): a ``.jsonl`` / ``.ndjson`` / ``.json`` file (JSON lines, or one JSON array), a
        ``.parquet`` or ``.csv`` file, a folder written by ``save_to_disk`` (or of data files), or a hub
        dataset id (read with ``datasets.load_dataset``; offline, only from the local cache).
    split (`str`): the split of a saved dataset dict or of a hub dataset.
    name (`str`, *optional*): how ``where`` names the source (default: the source itself), e.g. the path as
        the user wrote it when ``source`` is that path resolved.

    ``where`` is ``NAME:LINE`` (1-based) for JSON lines and ``NAME row I`` (0-based) otherwise.
    """
    path = Path(source)
    if path.is_file():
        label = str(path) if name is None else name
        if path.suffix in JSON_LINES_SUFFIXES and not (path.suffix == ".json" and _is_json_array(path)):
            for n, row in iter_jsonl(path):
                yield f"{label}:{n}", row
            return
        if path.suffix not in _LOADERS:
            raise InputError(f"input {str(path)!r}: unknown file type {path.suffix!r}; use .jsonl, .json, .parquet "
                             "or .csv, a saved HF dataset folder or a hub dataset id")
        rows = _datasets().load_dataset(_LOADERS[path.suffix], data_files=str(path), split="train")
    elif not path.exists() and path.suffix in (*JSON_LINES_SUFFIXES, *_LOADERS):
        raise InputError(f"input file {str(path)!r} does not exist")
    else:
        label = str(source) if name is None else name
        rows = _load_dataset(source, path, split)
    for i, row in enumerate(rows):
        yield f"{label} row {i}", row


def _datasets() -> Any:
    try:
        import datasets
    except ImportError as e:
        raise ImportError("reading an HF dataset needs the datasets package: pip install 'mr3-reward[train]'") from e
    return datasets


def _load_dataset(source: str | Path, path: Path, split: str) -> Any:
    datasets = _datasets()
    if path.is_dir() and any((path / f).is_file() for f in ("state.json", "dataset_dict.json")):
        loaded = datasets.load_from_disk(str(path))
    else:
        try:
            loaded = datasets.load_dataset(str(source), split=split)
        except Exception as e:  # the hub, an offline machine or a bad folder: say which input and why
            raise InputError(f"could not load the dataset {str(source)!r} (split {split!r}): {type(e).__name__}: {e}. "
                             "Give a .jsonl/.parquet file, a folder written by save_to_disk, or a hub id that is in "
                             "the local cache (HF_HUB_OFFLINE=1 forbids downloads)") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise InputError(f"dataset {str(source)!r} has no split {split!r}; pass --split with one of: "
                             f"{', '.join(loaded)}")
        loaded = loaded[split]
    return loaded


def read_jsonl(path: str | Path) -> list[Any]:
    """Every value of a JSONL file we wrote (blank lines skipped; no per-line error reporting, see `iter_jsonl`)."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# --------------------------------------------------------------------------------------------------- writing
def temp_path(path: str | Path, kind: str = "tmp") -> Path:
    """A name next to ``path`` that no other process or call uses: ``.NAME.KIND-PID-XXXXXXXX``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def put_in_place(src: Path, dst: Path) -> None:
    """Rename ``src`` (a file or a folder) to ``dst``, replacing what is there.

    A file replaces a file in one atomic rename. A folder cannot be renamed onto an existing one, so the old
    one is first renamed aside (a trash name `clear_leftovers` finds) and deleted once the new one is in place.
    """
    if not dst.exists() or not (src.is_dir() or dst.is_dir()):
        os.replace(src, dst)
        return
    trash = temp_path(dst, "trash")
    os.replace(dst, trash)
    os.replace(src, dst)
    # The new content is in place: an old copy that will not go is garbage for the next clear_leftovers.
    shutil.rmtree(trash, ignore_errors=True) if trash.is_dir() else trash.unlink(missing_ok=True)


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary path to write a file or a folder at; it is put in place of ``path`` when the block ends.

    An exception leaves the temporary path behind (and ``path`` untouched) for `clear_leftovers`.
    """
    path = Path(path)
    tmp = temp_path(path)
    yield tmp
    put_in_place(tmp, path)


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) so that readers see the old file or the whole new one, even after a crash."""
    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())  # renamed only once it is on disk: a checkpoint is never regenerated


def json_text(value: Any) -> str:
    """A JSON file's text: indented, keys sorted, non-ASCII kept, one final newline."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def jsonl_text(rows: Iterable[Any], *, allow_nan: bool = True) -> str:
    """One compact JSON value per line, non-ASCII kept; ``allow_nan=False`` refuses NaN and infinities
    (strict JSON) instead of writing them."""
    return "".join(json.dumps(row, ensure_ascii=False, allow_nan=allow_nan) + "\n" for row in rows)


def write_json(path: str | Path, value: Any) -> None:
    """Write JSON atomically (`json_text`, `write_atomic`)."""
    write_atomic(path, json_text(value))


def write_jsonl(path: str | Path, rows: Iterable[Mapping[str, Any]], *, allow_nan: bool = True) -> None:
    """Write rows as JSONL atomically (`jsonl_text`, `write_atomic`)."""
    write_atomic(path, jsonl_text(rows, allow_nan=allow_nan))


def remove_tree(path: Path) -> None:
    """Rename first, then delete: a kill mid-delete leaves a trash folder, never a half-deleted folder in place."""
    if not path.exists():
        return
    trash = temp_path(path, "trash")
    os.replace(path, trash)
    shutil.rmtree(trash) if trash.is_dir() else trash.unlink()


def clear_leftovers(*targets: Path) -> None:
    """Delete the temp files and trash folders a killed run left next to ``targets`` (only names we make)."""
    for target in targets:
        if not target.parent.is_dir():
            continue
        ours = re.compile(rf"\.{re.escape(target.name)}\.(tmp|trash)-\d+(-[0-9a-f]{{8}})?")
        for p in list(target.parent.iterdir()):
            if ours.fullmatch(p.name):
                shutil.rmtree(p) if p.is_dir() else p.unlink()


def shard_path(folder: Path, number: int) -> Path:
    """The file of shard ``number`` in a folder of JSONL checkpoints: ``shard-NNNNN.jsonl``."""
    return folder / f"shard-{number:05d}.jsonl"
