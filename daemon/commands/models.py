"""`callcue models ...`: install, verify, convert and generate speech models (models/).

Each module in SUBCOMMAND_MODULES registers its own sub-commands with
`add_parsers(msub)`, and a module that builds a model also defines
`add_convert_parser(csub)`, which adds the model's name under `callcue models convert`
with the options of its own build (they stay with the build they steer).
"""
from __future__ import annotations

import importlib

# modules under callcue.models that add `callcue models <what>` sub-commands, in help order
SUBCOMMAND_MODULES: list[str] = [
    "command",            # list, install, verify, remove
    "transducer_build",
    "whisper_convert",
    "minilm_convert",
    "production_shapes",
]


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="speech model tooling: list, install, verify, remove, convert")
    msub = p.add_subparsers(dest="models_command", required=True, metavar="WHAT")
    conv = msub.add_parser("convert", help="build a model on this box from packaged weights "
                                           "(torch and the other build tools: build time only)")
    csub = conv.add_subparsers(dest="model", required=True, metavar="MODEL")
    for name in SUBCOMMAND_MODULES:
        mod = importlib.import_module(f"callcue.models.{name}")
        if hasattr(mod, "add_parsers"):
            mod.add_parsers(msub)
        if hasattr(mod, "add_convert_parser"):
            mod.add_convert_parser(csub)
