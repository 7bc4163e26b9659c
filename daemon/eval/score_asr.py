"""Recognition quality on labelled calls: word error rate per channel, and recall /
precision of sensitive-word alerts for phrases the script really contains.

`callcue score-asr --labels DIR --events DIR [--words words.txt]`: labels are the
`callcue synth` X.labels.json files (turn texts and times), events the X.events.jsonl
that `callcue replay X.wav --rules words.txt --events ...` wrote.

`--by-turn` adds word error rates per kind of turn (speaking style x voice), each error
charged to the labelled turn of the reference word it falls on; `--reference` also transcribes every labelled
turn, cut from its channel, with the CTranslate2 original of the demo model (greedy as
sherpa-onnx decodes, and beam 5, its best decoding): what the model itself can do on the
same audio, so a gap can be told apart from a limit of the weights.

`--fw` adds the side-by-side table of issue 13: faster-whisper on each whole channel with
its own VAD (the CTranslate2 original of the same weights, or of --ct2), callcue's live
finals, and the call record (the second pass, `line/{line}/record` events), each with its
word error rate and the share of the sensitive phrases said that its text contains.

Words are counted as in wer.py (the definition the Whisper converter's check uses too).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..asr.words import Phrase, WordSpotter, load_words
from .wer import edit_distance, wer_tokens


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


def turn_kind(turn: dict) -> str:
    """'normal, male', 'fast, female', ...: the speaking style and voice type of a labelled
    turn ('natural' when the Piper voice spoke it)."""
    voice = (turn.get("espeak") or {}).get("voice", "")
    natural = "natural " if "piper" in turn else ""
    return f"{turn.get('style', 'normal')}, {natural}{'female' if '+f' in voice else 'male'}"


RECORD_SUFFIX = "/record"


def texts_of(events: list[dict], which: str) -> list[dict]:
    """The texts a column is made of: "live" = final transcripts, "record" = the call record's turns."""
    if which == "record":
        return [e for e in events if e["topic"].endswith(RECORD_SUFFIX)]
    return [e for e in events if e["topic"].endswith("/transcript") and e["final"]]


@dataclass
class TextScore:
    """One column of the side-by-side table: WER and the sensitive phrases its text holds."""
    words: int = 0
    errors: int = 0
    said: int = 0
    found: int = 0

    @property
    def wer(self) -> float:
        return self.errors / self.words if self.words else 0.0

    @property
    def recall(self) -> float:
        return self.found / self.said if self.said else 1.0


def score_texts(labels: dict, hyp: dict[str, list[str]], phrases: list[Phrase], score: TextScore) -> None:
    """Per speaker: WER of the whole channel's texts (in order), and how many of the phrase
    occurrences said in the labelled turns occur in them (each occurrence found at most once)."""
    for who in ("agent", "customer"):
        turns = [t for t in labels["turns"] if t["speaker"] == who]
        texts = hyp.get(who, [])
        ref = [w for t in turns for w in wer_tokens(t["text"])]
        score.words += len(ref)
        score.errors += edit_distance(ref, [w for x in texts for w in wer_tokens(x)])
        said, heard = _phrase_counts(phrases, who, [t["text"] for t in turns]), _phrase_counts(phrases, who, texts)
        score.said += sum(said.values())
        score.found += sum(min(n, heard.get(p, 0)) for p, n in said.items())


def _phrase_counts(phrases: list[Phrase], who: str, texts: list[str]) -> dict[str, int]:
    """Phrase -> in how many sentences of the texts it occurs (the spotter counts once per
    text; a faster-whisper segment holds several sentences, a final one or two)."""
    out: dict[str, int] = {}
    for text in (x for t in texts for x in re.split(r"(?<=[.?!])\s+", t) if x.strip()):
        for hit in WordSpotter(phrases, who).find(text, 0):
            out[hit.phrase.text] = out.get(hit.phrase.text, 0) + 1
    return out


def whole_channels(labels_dir: Path, ct2_dir: Path, threads: int = 2, beam_size: int = 1) -> dict[str, dict[str, list[str]]]:
    """call name -> speaker -> faster-whisper's text of that whole channel (its VAD filter,
    as a user runs it; 8 kHz upsampled as the engine does)."""
    import logging

    from faster_whisper import WhisperModel

    from ..asr.offline import upsample2
    from ..replay import load_call

    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    model = WhisperModel(str(ct2_dir), device="cpu", compute_type="int8", cpu_threads=threads)
    out: dict[str, dict[str, str]] = {}
    for name, lab, labels, _ in _calls(labels_dir, None):
        sr, audio = load_call(lab.parent / labels["audio"])
        out[name] = {}
        for ch, who in enumerate(("agent", "customer")):
            x = audio[:, ch].astype(np.float32) / 32768.0
            segs, _ = model.transcribe(upsample2(x) if sr == 8000 else x, language="en", beam_size=beam_size,
                                       vad_filter=True, condition_on_previous_text=False, without_timestamps=True)
            out[name][who] = [s.text.strip() for s in segs]
    return out


def side_by_side(labels_dir: Path, events_dir: Path, words: Path, ct2_dir: Path | None) -> dict[str, TextScore]:
    """faster-whisper (whole channel) / live finals / call record: one TextScore each."""
    phrases = load_words(words)
    cols = {"faster-whisper": TextScore(), "live finals": TextScore(), "record": TextScore()}
    fw = whole_channels(labels_dir, ct2_dir) if ct2_dir is not None else None
    if fw is None:
        del cols["faster-whisper"]
    for name, _, labels, events in _calls(labels_dir, events_dir):
        if fw is not None:
            score_texts(labels, fw[name], phrases, cols["faster-whisper"])
        for col, which in (("live finals", "live"), ("record", "record")):
            hyp = {who: [e["text"] for e in sorted(texts_of(events, which), key=lambda e: e["t_start"])
                         if e["speaker"] == who] for who in ("agent", "customer")}
            score_texts(labels, hyp, phrases, cols[col])
    return cols


@dataclass
class TurnTally:
    """Word errors per kind of turn."""
    words: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, ref: list[str], hyp: list[str]) -> None:
        self.count(kind, len(ref), edit_distance(ref, hyp))

    def count(self, kind: str, words: int, errors: int) -> None:
        self.words[kind] = self.words.get(kind, 0) + words
        self.errors[kind] = self.errors.get(kind, 0) + errors

    def wer(self, kind: str | None = None) -> float:
        w = sum(self.words.values()) if kind is None else self.words.get(kind, 0)
        e = sum(self.errors.values()) if kind is None else self.errors.get(kind, 0)
        return e / w if w else 0.0


def errors_per_ref_word(ref: list[str], hyp: list[str]) -> list[int]:
    """A minimal alignment of hyp to ref, its errors charged to reference words: a
    substitution or deletion to its word, an insertion to the word before it (the first
    word for insertions at the start). Sums to edit_distance(ref, hyp); ref must not be empty."""
    n, m = len(ref), len(hyp)
    d = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        d[i][0] = i
    for j in range(m + 1):
        d[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]))
    out = [0] * n
    i, j = n, m
    while i or j:
        if i and j and d[i][j] == d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            out[i - 1] += ref[i - 1] != hyp[j - 1]
            i, j = i - 1, j - 1
        elif i and d[i][j] == d[i - 1][j] + 1:
            out[i - 1] += 1
            i -= 1
        else:
            out[max(i - 1, 0)] += 1
            j -= 1
    return out


def score_turns(labels: dict, events: list[dict], tally: TurnTally) -> None:
    """Per speaker, the whole call's finals aligned to its labelled turns (as the headline
    WER is counted), each error charged to the turn of the reference word it falls on, so
    one final that spans two turns of a speaker is not counted as an error."""
    turns = labels["turns"]
    for who in ("agent", "customer"):
        ref, kinds = [], []
        for t in turns:
            if t["speaker"] == who:
                words = wer_tokens(t["text"])
                ref += words
                kinds += [turn_kind(t)] * len(words)
        hyp = [w for e in events if e["topic"].endswith("/transcript") and e["final"] and e["speaker"] == who
               for w in wer_tokens(e["text"])]
        if not ref:             # words heard where this speaker said nothing
            tally.errors["(no turn)"] = tally.errors.get("(no turn)", 0) + len(hyp)
            continue
        for kind, errors in zip(kinds, errors_per_ref_word(ref, hyp)):
            tally.count(kind, 1, errors)


def _calls(labels_dir: Path, events_dir: Path | None):
    for lab in sorted(Path(labels_dir).glob("*.labels.json")):
        name = lab.name[: -len(".labels.json")]
        labels = json.loads(lab.read_text(encoding="utf-8"))
        if events_dir is None:
            yield name, lab, labels, []
            continue
        ev_path = Path(events_dir) / f"{name}.events.jsonl"
        if not ev_path.exists():
            raise FileNotFoundError(f"{ev_path}: no events for {lab}")
        yield name, lab, labels, [json.loads(l) for l in ev_path.read_text(encoding="utf-8").splitlines() if l.strip()]


def score_dirs(labels_dir: Path, events_dir: Path, words: Path, turns: TurnTally | None = None) -> AsrScore:
    phrases = load_words(words)
    score = AsrScore()
    for name, _, labels, events in _calls(labels_dir, events_dir):
        score_call(labels, events, phrases, score, name)
        if turns is not None:
            score_turns(labels, events, turns)
    return score


TURN_PAD_S = 0.3     # audio kept around a labelled turn when it is cut out for the reference


def reference_turns(labels_dir: Path, ct2_dir: Path, beam_size: int, threads: int = 2) -> TurnTally:
    """Every labelled turn cut from its channel (16 kHz; 8 kHz calls upsampled as the
    engine does) and transcribed by the CTranslate2 original through faster-whisper."""
    from ..asr.offline import upsample2
    from ..replay import load_call
    from .ct2_reference import Ct2Transcriber

    ct2 = Ct2Transcriber(ct2_dir, compute_type="int8", num_threads=threads, beam_size=beam_size)
    tally = TurnTally()
    for _, lab, labels, _ in _calls(labels_dir, None):
        sr, audio = load_call(lab.parent / labels["audio"])
        for t in labels["turns"]:
            ch = 0 if t["speaker"] == "agent" else 1
            a, b = max(0, int((t["t_start"] - TURN_PAD_S) * sr)), int((t["t_end"] + TURN_PAD_S) * sr)
            x = audio[a:b, ch].astype(np.float32) / 32768.0
            tally.add(turn_kind(t), wer_tokens(t["text"]), wer_tokens(ct2.transcribe(upsample2(x) if sr == 8000 else x)))
    return tally


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


def main(labels: Path, events: Path, words: Path, by_turn: bool = False, reference: bool = False,
         ct2: Path | None = None, fw: bool = False) -> int:
    """`callcue score-asr`: print the scores (and the per-turn table with by_turn or reference)."""
    if fw:
        from ...models.whisper_ct2 import packaged_model_dir
        cols = side_by_side(labels, events, words, ct2 or packaged_model_dir())
        print("side by side (WER numbers aside; phrases: sensitive phrases said that the text holds):")
        print(f"  {'':<16} {'words':>6} {'WER':>7} {'phrases':>9}")
        for col, s in cols.items():
            print(f"  {col:<16} {s.words:6d} {100 * s.wer:6.1f}% {100 * s.recall:8.1f}%  ({s.found}/{s.said})")
    turns = TurnTally() if by_turn or reference else None
    s = score_dirs(labels, events, words, turns)
    print(f"words {s.ref_words}, errors {s.errors}, WER {100 * s.wer:.1f}%")
    print(f"sensitive phrases said {s.phrases_said}, alerted {s.phrases_found}, recall {100 * s.recall:.1f}%, "
          f"alerts without a phrase said {s.false_alerts}")
    for m in s.misses[:20]:
        print(f"  missed: {m}")
    if turns is None:
        return 0
    columns = {"callcue": turns}
    if reference:
        from ...models.whisper_ct2 import packaged_model_dir
        ct2 = ct2 or packaged_model_dir()
        columns["CT2 greedy"] = reference_turns(labels, ct2, beam_size=1)
        columns["CT2 beam 5"] = reference_turns(labels, ct2, beam_size=5)
    print("WER by kind of turn (each error charged to the turn of the word it falls on"
          + ("; CT2 = the CTranslate2 original on each turn cut from its channel" if reference else "") + "):")
    print(f"  {'turns':<18} {'words':>6} " + " ".join(f"{c:>11}" for c in columns))
    for kind in sorted(turns.words) + [None]:
        print(f"  {kind or 'all':<18} {turns.words.get(kind, 0) if kind else sum(turns.words.values()):6d} "
              + " ".join(f"{100 * t.wer(kind):10.1f}%" for t in columns.values()))
    return 0
