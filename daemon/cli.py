"""The `callcue` command. Each sub-command lives in its own module of daemon/commands/
and exposes `add_parser(subparsers)`, which registers itself and sets `func(args) -> int`;
the work is done by the runtime, evaluation (daemon/eval) or benchmark (daemon/bench) code
it calls."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .yamlfile import ConfigError

# modules of callcue.daemon.commands, each registering one command (or a few related ones),
# in the order `callcue --help` lists them
COMMAND_MODULES = [
    "check_config",
    "check_pack",
    "score_assist",
    "score_knowledge",
    "replay",
    "bench",
    "run",
    "status",
    "acl",
    "demo",
    "models",
    "synth",
    "score",
    "store_check",
    "score_asr",
    "tui",
    "qa",
    "collect",
    "report",
    "calls",
    "score_aftercall",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callcue", description="On-prem agent assist for call centers.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"callcue.daemon.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .logfmt import install
    install()      # a control character from the wire never breaks a log line
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"callcue: configuration error:\n{exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from .asr.engine import AsrError
        if isinstance(exc, AsrError):
            print(f"callcue: speech recognition cannot start:\n{exc}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
