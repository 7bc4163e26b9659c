"""`callcue score-aftercall`: ticket extraction and call type against labelled calls, on
their script text (callcue.daemon.eval.aftercall_score) or through audio rendered and
replayed with speech recognition (callcue.daemon.eval.aftercall_audio)."""
from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "score-aftercall", help="after-call tickets and call type vs labelled calls (script text or --audio)",
        description="Score the ticket each labelled call gets (flows/insurance/eval/aftercall*/): each field the "
                    "call states right, fields it does not state left empty, call type right. Default: on the "
                    "scripts' text, both sets, both languages. --audio: English calls rendered with `callcue "
                    "synth` and replayed through the live pipeline with speech recognition.")
    p.add_argument("calls", nargs="*", type=Path, help="labelled call scripts (default: the pack's sets)")
    p.add_argument("--audio", action="store_true", help="through audio: render, replay with Whisper, score")
    p.add_argument("--rate", choices=("8000", "16000", "both"), default="both", help="--audio: sample rate(s)")
    p.add_argument("--voices", choices=("auto", "natural", "espeak"), default="auto",
                   help="--audio: English voices (auto: Piper when installed, else espeak-ng)")
    p.add_argument("--cache", type=Path, default=None, help="--audio: where renders are kept (default .cache/aftercall_audio)")
    p.add_argument("--asr-model", default="whisper-tiny.en", help="--audio: speech model (default %(default)s)")
    p.add_argument("--live-only", action="store_true",
                   help="--audio: the live finals only (the call record's second pass off), to score both ways")
    p.add_argument("--notes", action="store_true", help="list every miss and false fill")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    if not args.audio:
        from ..eval.aftercall_score import main
        argv = [str(c) for c in args.calls] + (["--notes"] if args.notes else []) + (["--json"] if args.json else [])
        return main(argv)
    from ..eval.aftercall_audio import DEFAULT_CACHE, main_audio
    rates = [8000, 16000] if args.rate == "both" else [int(args.rate)]
    return main_audio(list(args.calls), rates, args.cache or DEFAULT_CACHE, args.voices, args.notes, args.json,
                      args.asr_model, record=not args.live_only)
