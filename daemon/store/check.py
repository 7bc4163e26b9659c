"""Read every file of a call store (`callcue store-check DIR [--repair]`, daemon/commands/store_check.py).

The daemon only notices a damaged file when it opens it (calls.json at start, a
call's events when they are read). Site IT runs this with the daemon stopped (it
takes the store's lock) after a disk problem, or to repair a store that the daemon
refused to open.
"""
from __future__ import annotations

import logging
from pathlib import Path

from .atomic import CorruptStoreError, move_aside, read_json_file, remove_stale_temps
from .calls import release_lock, take_lock

log = logging.getLogger(__name__)


def store_files(data_dir: Path) -> list[Path]:
    files = [data_dir / "calls.json"] if (data_dir / "calls.json").exists() else []
    files += sorted((data_dir / "archive").glob("*.json"))
    files += sorted((data_dir / "events").glob("*/*.json"))
    return files


def check_store(data_dir: Path, repair: bool = False) -> tuple[int, list[str]]:
    """(files read, problems); with repair, corrupt files are moved aside."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: no such call store directory")
    lock = take_lock(data_dir)
    try:
        problems: list[str] = []
        files = store_files(data_dir)
        for path in files:
            stale = remove_stale_temps(path)
            if stale:
                log.info("%s: removed %d temp file(s) left by an interrupted write", path, stale)
            try:
                read_json_file(path)
            except CorruptStoreError as exc:
                if repair:
                    aside = move_aside(path)
                    problems.append(f"{exc.path}: {exc.reason}; moved aside to {aside.name}")
                else:
                    problems.append(f"{exc.path}: {exc.reason}")
        return len(files), problems
    finally:
        release_lock(lock)
