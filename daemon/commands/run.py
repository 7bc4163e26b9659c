"""`callcue run --config FILE`: the live daemon."""
from __future__ import annotations

from pathlib import Path

from ..config import load_config


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="run the live daemon on the lines of a site config")
    p.add_argument("--config", type=Path, required=True, help="site YAML file (see README, Configuration)")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from ..app import Daemon, StartupError   # heavy imports only when the daemon really starts

    from .check_config import check_capture

    cfg = load_config(args.config)
    check_capture(args.config, cfg)
    try:
        return Daemon(cfg).run_forever()
    except StartupError as exc:
        print(f"callcue: cannot start: {exc}", file=sys.stderr)
        return 2
