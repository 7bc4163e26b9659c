"""`callcue store-check DIR [--repair]`: read every file of a call store
(callcue.daemon.store.check); site IT runs it with the daemon stopped."""
from __future__ import annotations

import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("store-check", help="read every call store file; --repair moves corrupt ones aside")
    p.add_argument("data_dir", type=Path, help="call store directory (the daemon uses DATA_DIR/calls)")
    p.add_argument("--repair", action="store_true",
                   help="move corrupt files aside as <name>.corrupt-<time> so the daemon starts them empty")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..store.atomic import StoreError
    from ..store.check import check_store

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
