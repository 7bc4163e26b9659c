"""A TinyDB storage that never leaves a half-written file behind.

TinyDB's own JSONStorage rewrites the file in place (seek 0, write, truncate), so a
crash or power cut in the middle leaves truncated JSON and the whole table is lost.
Here every write goes to a temp file in the same directory, is flushed and fsynced,
then renamed over the old file (rename is atomic within one file system) and the
directory is fsynced so the rename itself survives a power cut. A reader therefore
sees either the previous complete file or the new complete file.

One process must own the files (CallStore takes a lock for that): two writers
would each rename their own snapshot over the other's.
"""
from __future__ import annotations

import glob
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from tinydb.middlewares import CachingMiddleware
from tinydb.storages import Storage

log = logging.getLogger(__name__)

TMP_SUFFIX = ".tmp"


class StoreError(Exception):
    """Base class of call store errors."""


class CorruptStoreError(StoreError):
    """A store file exists but is not a complete TinyDB JSON document."""

    def __init__(self, path: Path, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(
            f"{path}: corrupt call store file ({reason}). It was not written by an atomic "
            f"write, or was edited or damaged on disk. Run `callcue store-check --repair "
            f"DATA_DIR` (or open the store with repair=True) to move it aside as "
            f"{path.name}.corrupt-<time> and start that file empty, or restore it from a backup."
        )


def fsync_dir(path: Path) -> None:
    """Make renames and new entries in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(path: Path) -> None:
    """mkdir -p, fsyncing each parent that gained an entry (a new directory is
    itself a directory entry that a power cut can lose)."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)     # the call store holds transcripts: owner only
        except FileExistsError:
            continue
        fsync_dir(d.parent)


def dumps(data: Any) -> bytes:
    # allow_nan=False: NaN/Infinity are not JSON and other readers would reject the file
    return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def atomic_write_bytes(path: Path, blob: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        # the temp file is garbage now; the old file is untouched
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


def remove_stale_temps(path: Path) -> int:
    """Delete temp files a killed writer left next to `path`; returns how many."""
    n = 0
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*{TMP_SUFFIX}"):
        tmp.unlink(missing_ok=True)
        n += 1
    return n


def move_aside(path: Path) -> Path:
    """Rename a bad file to <name>.corrupt-<time> (never deleted: it may hold data
    someone wants to recover by hand)."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    os.replace(path, target)
    fsync_dir(path.parent)
    return target


def _check_tinydb_doc(data: Any) -> str | None:
    if not isinstance(data, dict):
        return f"top level is a JSON {type(data).__name__}, expected an object of tables"
    for name, table in data.items():
        if not isinstance(table, dict):
            return f"table {name!r} is a JSON {type(table).__name__}, expected an object of documents"
        for doc_id, doc in table.items():
            if not isinstance(doc, dict):
                return f"table {name!r} document {doc_id!r} is not an object"
    return None


def read_json_file(path: Path) -> dict[str, Any] | None:
    """The TinyDB document in `path`, None when the file does not exist.
    Raises CorruptStoreError for anything that is not a complete document."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    if not raw:
        # atomic writes never produce an empty file
        raise CorruptStoreError(path, "file is empty")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CorruptStoreError(path, f"not UTF-8 at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        what = "truncated" if exc.pos >= len(raw.rstrip()) else "invalid JSON"
        raise CorruptStoreError(path, f"{what}: {exc.msg} at line {exc.lineno} column {exc.colno}, "
                                      f"file is {len(raw)} bytes") from None
    problem = _check_tinydb_doc(data)
    if problem:
        raise CorruptStoreError(path, problem)
    return data


class AtomicJSONStorage(Storage):
    """TinyDB storage: atomic whole-file writes, strict reads.

    `repair=True`: a corrupt file is moved aside (see `move_aside`) and the store
    starts that file empty instead of raising CorruptStoreError.
    """

    def __init__(self, path: str | os.PathLike, repair: bool = False, create_dirs: bool = True):
        super().__init__()
        self.path = Path(path)
        self.repair = repair
        self.moved_aside: Path | None = None
        if create_dirs:
            ensure_dir(self.path.parent)
        remove_stale_temps(self.path)

    def read(self) -> dict[str, dict[str, Any]] | None:
        try:
            return read_json_file(self.path)
        except CorruptStoreError as exc:
            if not self.repair:
                raise
            self.moved_aside = move_aside(self.path)
            log.error("%s; moved aside to %s, starting it empty", exc, self.moved_aside)
            return None

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        atomic_write_bytes(self.path, dumps(data))


class WriteBehind(CachingMiddleware):
    """TinyDB's caching middleware, but flushed only when the owner says so (the
    call store's writer thread batches writes on a timer)."""

    WRITE_CACHE_SIZE = 1 << 62

    @property
    def dirty(self) -> bool:
        return self._cache_modified_count > 0
