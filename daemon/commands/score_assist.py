"""`callcue score-assist`: the assist engine against labelled calls
(callcue.daemon.eval.score_assist)."""
from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("score-assist", help="assist engine vs labelled calls: knowledge P@1, flow steps, missing phrases, offers")
    p.add_argument("calls", nargs="*", type=Path,
                   help="labelled call scripts (default: the pack's eval/assist_calls/*.yaml, "
                        "flows/insurance/eval/assist_calls for the sample pack)")
    p.add_argument("--audio", action="store_true", help="through audio and speech recognition (English calls)")
    p.add_argument("--content", type=Path, help="content pack (default: flows/insurance)")
    p.add_argument("--lang", choices=["en", "zh"], help="only calls of this language")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--notes", action="store_true", help="print every miss")
    p.add_argument("--keep", type=Path, help="write each call's events (JSON Lines) into this folder")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..eval.score_assist import main
    return main(args.calls, args.audio, args.content, args.lang, args.json, args.notes, args.keep)
