"""Recognition quality on labelled calls: word error rate per channel, and recall /
precision of sensitive-word alerts for phrases the script really contains.

`callcue score-asr --labels DIR --events DIR [--words words.txt]`: labels are the
`callcue synth` X.labels.json files (turn texts and times), events the X.events.jsonl
that `callcue replay X.wav --rules words.txt --events ...` wrote.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .words import Phrase, WordSpotter, load_words, normalise

_NUMBER_WORDS = set("""zero oh one two three four five six seven eight nine ten eleven twelve thirteen
fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty
ninety hundred thousand million first second third fourth fifth sixth seventh eighth ninth tenth
eleventh twelfth thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth
twentieth thirtieth point""".split())
_NUMBERISH = re.compile(r"^\d+(st|nd|rd|th|s)?$")


_CONTRACTIONS = [(re.compile(p, re.I), r) for p, r in (
    (r"\bcan't\b", "can not"), (r"\bwon't\b", "will not"), (r"n't\b", " not"), (r"'re\b", " are"),
    (r"'m\b", " am"), (r"'ll\b", " will"), (r"'ve\b", " have"), (r"'d\b", " would"),
    (r"\b(it|that|there|what|he|she|here|who|where|how|let)'s\b", r"\1 is"), (r"\blet is\b", "let us"),
    (r"\bcannot\b", "can not"), (r"\bokay\b", "ok"), (r"\bo\.k\.", "ok"))]


def standardise(text: str) -> str:
    """The usual English ASR scoring normalisation (as in Whisper's evaluation): expand
    contractions, one spelling of ok; case and punctuation go in normalise()."""
    for pat, rep in _CONTRACTIONS:
        text = pat.sub(rep, text)
    return text


def wer_tokens(text: str) -> list[str]:
    """Normalised words with numbers set aside: spoken ('nineteen sixty eight') and written
    ('1968', '9th') numbers are dropped from both sides, since Whisper writes digits where
    a script has words and scoring that as errors measures formatting, not hearing."""
    return [w for w in normalise(standardise(text).replace("-", " ")).split()
            if w not in _NUMBER_WORDS and not _NUMBERISH.match(w)]


def edit_distance(a: list[str], b: list[str]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


@dataclass
class AsrScore:
    ref_words: int = 0
    errors: int = 0
    phrases_said: int = 0
    phrases_found: int = 0
    false_alerts: int = 0
    misses: list[str] = field(default_factory=list)

    @property
    def wer(self) -> float:
        return self.errors / self.ref_words if self.ref_words else 0.0

    @property
    def recall(self) -> float:
        return self.phrases_found / self.phrases_said if self.phrases_said else 1.0


def score_call(labels: dict, events: list[dict], phrases: list[Phrase], score: AsrScore, name: str = "") -> None:
    turns = labels["turns"]
    finals = [e for e in events if e["topic"].endswith("/transcript") and e["final"]]
    for who in ("agent", "customer"):
        ref = [w for t in turns if t["speaker"] == who for w in wer_tokens(t["text"])]
        hyp = [w for e in finals if e["speaker"] == who for w in wer_tokens(e["text"])]
        score.ref_words += len(ref)
        score.errors += edit_distance(ref, hyp)
    alerts = [e for e in events if e["topic"].endswith("/alert") and e["kind"] == "sensitive_word"]
    used: set[int] = set()
    for t in turns:
        spot = WordSpotter(phrases, t["speaker"])
        for hit in spot.find(t["text"], 0):
            score.phrases_said += 1
            match = next((i for i, a in enumerate(alerts) if i not in used and a["speaker"] == t["speaker"]
                          and a["evidence"]["phrase"] == hit.phrase.text
                          and a["t_start"] <= t["t_end"] + 1.0 and a["t_end"] >= t["t_start"] - 1.0), None)
            if match is None:
                score.misses.append(f"{name} {t['speaker']} {t['t_start']:.1f}s: {hit.phrase.text!r} in {t['text']!r}")
            else:
                used.add(match)
                score.phrases_found += 1
    score.false_alerts += len(alerts) - len(used)


def score_dirs(labels_dir: Path, events_dir: Path, words: Path) -> AsrScore:
    phrases = load_words(words)
    score = AsrScore()
    for lab in sorted(Path(labels_dir).glob("*.labels.json")):
        name = lab.name[: -len(".labels.json")]
        ev_path = Path(events_dir) / f"{name}.events.jsonl"
        if not ev_path.exists():
            raise FileNotFoundError(f"{ev_path}: no events for {lab}")
        events = [json.loads(l) for l in ev_path.read_text(encoding="utf-8").splitlines() if l.strip()]
        score_call(json.loads(lab.read_text(encoding="utf-8")), events, phrases, score, name)
    return score


def phrases_from_labels(labels_dir: Path, per_call: int = 3, seed: int = 0) -> list[str]:
    """A word list of 1-3 word phrases the calls really contain (for recall tests)."""
    import random
    rng = random.Random(seed)
    out: list[str] = []
    for lab in sorted(Path(labels_dir).glob("*.labels.json")):
        turns = json.loads(lab.read_text(encoding="utf-8"))["turns"]
        for _ in range(per_call):
            t = rng.choice(turns)
            words = [w for w in re.findall(r"[A-Za-z']+", t["text"]) if len(w) > 3]
            if not words:
                continue
            k = rng.randint(1, min(2, len(words)))
            i = rng.randrange(len(words) - k + 1)
            out.append(" ".join(words[i:i + k]).lower())
    return sorted(set(out))


def add_parser(sub) -> None:
    p = sub.add_parser("score-asr", help="word error rate and sensitive-word recall against synth labels")
    p.add_argument("--labels", type=Path, required=True, help="folder of X.labels.json")
    p.add_argument("--events", type=Path, required=True, help="folder of X.events.jsonl")
    p.add_argument("--words", type=Path, required=True, help="the word list the replays used")
    p.set_defaults(func=_run)


def _run(args) -> int:
    s = score_dirs(args.labels, args.events, args.words)
    print(f"words {s.ref_words}, errors {s.errors}, WER {100 * s.wer:.1f}%")
    print(f"sensitive phrases said {s.phrases_said}, alerted {s.phrases_found}, recall {100 * s.recall:.1f}%, "
          f"alerts without a phrase said {s.false_alerts}")
    for m in s.misses[:20]:
        print(f"  missed: {m}")
    return 0
