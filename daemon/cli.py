"""The `callcue` command. Each sub-command lives in its own module and exposes
`add_parser(subparsers)`, which registers itself and sets `func(args) -> int`."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .yamlfile import ConfigError

# module (under callcue.daemon, or a full callcue.* name) -> registers one or more sub-commands
COMMAND_MODULES = [
    "commands.check_config",
    "commands.check_pack",
    "assist.score",
    "assist.knowledge_score",
    "replay",
    "bench",
    "commands.run",
    "commands.demo",
    "callcue.models.command",
    "synth.command",
    "store.check",
    "asr.score",
    "callcue.tui.command",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callcue", description="On-prem agent assist for call centers.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = name if name.startswith("callcue.") else f"callcue.daemon.{name}"
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
