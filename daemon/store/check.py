"""`callcue store-check DIR [--repair]`: read every file of a call store.

The daemon only notices a damaged file when it opens it (calls.json at start, a
call's events when they are read). Site IT runs this with the daemon stopped (it
takes the store's lock) after a disk problem, or to repair a store that the daemon
refused to open.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from .atomic import CorruptStoreError, StoreError, move_aside, read_json_file, remove_stale_temps
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


def add_parser(sub) -> None:
    p = sub.add_parser("store-check", help="read every call store file; --repair moves corrupt ones aside")
    p.add_argument("data_dir", type=Path, help="call store directory (the daemon uses DATA_DIR/calls)")
    p.add_argument("--repair", action="store_true",
                   help="move corrupt files aside as <name>.corrupt-<time> so the daemon starts them empty")
    p.set_defaults(func=run)


def run(args) -> int:
    try:
        n, problems = check_store(args.data_dir, args.repair)
    except (StoreError, FileNotFoundError) as exc:
        print(f"callcue store-check: {exc}", file=sys.stderr)
        return 2
    for line in problems:
        print(line)
    if problems and not args.repair:
        print(f"{args.data_dir}: {len(problems)} of {n} file(s) corrupt; run again with --repair to move them aside")
        return 1
    print(f"{args.data_dir}: {n} file(s) read, {len(problems)} repaired" if args.repair
          else f"{args.data_dir}: OK, {n} file(s) read")
    return 0
