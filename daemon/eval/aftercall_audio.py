"""After-call extraction through AUDIO: the labelled calls (flows/insurance/eval/
aftercall*/, the same scripts aftercall_score.py scores on their text) rendered with
`callcue synth` (eval/synth: the Piper voice for English when installed, else espeak-ng)
at 16 and/or 8 kHz, replayed through the live pipeline exactly as `callcue replay` runs
(prosody, speech recognition, redaction, assist engine, the line's after-call work), and
the published ticket scored against the labels: each field the call states right, fields
it does not state left empty, call type right.

    callcue score-aftercall --audio [--rate 8000|16000|both] [--lang en] [--notes] [CALLS...]

Renders are cached next to each other in --cache (default .cache/aftercall_audio; a
script edited since is rendered again). The replay's call date and IVR context are the
script's `expect.call_date` and `expect.ivr`, as the CTI and the site clock would give
them; one recogniser is built and reused for every call (as `callcue qa` does).
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from .aftercall_score import TUNED, Score, same

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = ROOT / ".cache" / "aftercall_audio"


@dataclass
class AudioRun:
    """What one replayed call gave: its summary payload and the timings."""

    name: str
    rate: int
    summary: dict[str, Any] | None
    audio_s: float
    replay_s: float
    aftercall_ms: float | None = None      # the line's after-call work at call end (ticket, summary, scorecard)
    transcript: list[dict[str, Any]] = field(default_factory=list)


def render_cached(script_path: Path, rate: int, cache: Path, voices: str = "auto") -> Path:
    """The call rendered at `rate` (cached by the script's content and the voice choice)."""
    from .synth.render import render_call, write_call
    from .synth.script import load_script

    key = hashlib.sha1(script_path.read_bytes() + f"|{rate}|{voices}".encode()).hexdigest()[:12]
    wav = cache / f"{script_path.stem}-{rate // 1000}k-{key}.wav"
    if not wav.exists():
        cache.mkdir(parents=True, exist_ok=True)
        call = render_call(load_script(script_path), rate, voices=voices)
        write_call(call, wav)
    return wav


class Replayer:
    """The live pipeline for many calls: one recogniser, one assist engine."""

    def __init__(self, asr_model: str = "whisper-tiny.en", content: Path | None = None, record: bool = True):
        from ..assist.setup import build_assist
        from ..asr.setup import build_engine
        from ..config import AsrConfig, default_config

        cfg = default_config()
        cfg = cfg.model_copy(update={"asr": AsrConfig(model=asr_model, record=record)})
        if content is not None:
            cfg = cfg.model_copy(update={"assist": cfg.assist.model_copy(update={"content": content})})
        self.cfg = cfg
        self.results: list = []
        self.engine = build_engine(cfg.asr, self.results.append, cfg.asr.models_dir)
        self.assist = build_assist(cfg)

    def run(self, wav: Path, name: str, rate: int, ivr: dict | None, call_date: date | None) -> AudioRun:
        from ..config import LineConfig, SourceConfig
        from ..replay import run_replay

        line = LineConfig(id="eval", source=SourceConfig(wav=wav, pace="fast"))
        msgs: list = []
        t0 = time.perf_counter()
        got = run_replay(wav, self.cfg, line, msgs.append, f"eval-{name}-{rate}", None, ivr, self.assist,
                         self.engine, self.results, call_date=call_date)
        summary = next((m.payload for m in msgs if m.output == "summary"), None)
        said = [m.payload for m in msgs if m.output == "transcript" and m.payload.get("final")]
        ms = got.get("aftercall_ms") or []
        return AudioRun(name, rate, summary, got["audio_s"], time.perf_counter() - t0,
                        aftercall_ms=max(ms) if ms else None, transcript=said)


def tally(content, path: Path, script, summary: dict[str, Any] | None, score: Score, note_prefix: str = "") -> None:
    """Compare one call's published ticket with its labels (as aftercall_score.score_call)."""
    ex = script.expect
    tpl = content.pack.tickets.get(ex.call_type)
    if tpl is None:
        raise SystemExit(f"{path}: expect.call_type {ex.call_type!r} is not a ticket template")
    score.calls += 1
    got_type = (summary or {}).get("call_type")
    if got_type == ex.call_type:
        score.type_right += 1
    else:
        score.notes.append(f"{note_prefix}{path.stem}: call type {got_type} (want {ex.call_type})")
    got_fields = ((summary or {}).get("ticket") or {}).get("fields") or {}
    for f in tpl.fields:
        want = ex.ticket.get(f.name)
        got = got_fields.get(f.name) or {}
        t = score.tally(f.name)
        if want is None:
            t.not_stated += 1
            if got.get("value") is not None:
                t.false_fill += 1
                score.notes.append(f"{note_prefix}{path.stem}: {f.name} = {got['value']!r} but the call does not "
                                   f"state it ({got.get('evidence')!r})")
            continue
        t.stated += 1
        if same(f.type, want, got):
            t.right += 1
        else:
            if got.get("value") is not None:
                t.filled_wrong += 1
            extra = f", due {got.get('due')}" if f.type == "text" else ""
            score.notes.append(f"{note_prefix}{path.stem}: {f.name} = {got.get('value')!r}{extra} (want {want!r}) "
                               f"[{got.get('evidence')!r}]")


# the sets the audio figures cover by default: those already scored on text. A new held-out
# set is scored once, on purpose (`--set NAME`, or its files named here), before it joins.
AUDIO_SETS = ("aftercall", "aftercall_dev", "aftercall_heldout", "aftercall_heldout5")


def english_calls() -> list[Path]:
    """The labelled English calls of the AUDIO_SETS (the audio figures are for English)."""
    return [p for name in AUDIO_SETS for p in sorted((TUNED.parent / name).glob("en_*.yaml"))]


def score_audio(calls: list[Path], rates: list[int], cache: Path = DEFAULT_CACHE, voices: str = "auto",
                asr_model: str = "whisper-tiny.en", log=print, record: bool = True) -> dict[int, Score]:
    from .aftercall_score import build_content
    from .synth.script import load_script

    content = build_content()
    rep = Replayer(asr_model, record=record)
    out: dict[int, Score] = {}
    for rate in rates:
        score = Score()
        for path in calls:
            script = load_script(path)
            ex = script.expect
            if ex is None or ex.call_type is None or ex.ticket is None:
                raise SystemExit(f"{path}: no after-call labels (expect.call_type and expect.ticket)")
            wav = render_cached(path, rate, cache, voices)
            run = rep.run(wav, path.stem, rate, dict(ex.ivr) if ex.ivr else None, ex.call_date)
            if run.aftercall_ms is not None:
                score.seconds.append(run.aftercall_ms / 1000)
            tally(content, path, script, run.summary, score, f"{rate // 1000}k ")
            log(f"  {rate // 1000}k {path.stem}: {run.audio_s:.0f} s audio, replayed in {run.replay_s:.1f} s, "
                f"type {(run.summary or {}).get('call_type')}")
        out[rate] = score
    return out


def report(name: str, score: Score, notes: bool) -> dict[str, Any]:
    tot = score.totals()
    print(f"{name}: {tot['calls']} call(s)")
    print(f"  {'field':20s} {'stated':>6s} {'right':>6s} {'wrong':>6s} {'empty':>6s} {'unstated':>8s} {'filled':>6s}")
    for fname, t in sorted(score.fields.items()):
        empty = t.stated - t.right - t.filled_wrong
        print(f"  {fname:20s} {t.stated:6d} {t.right:6d} {t.filled_wrong:6d} {empty:6d} {t.not_stated:8d} {t.false_fill:6d}")
    print(f"  stated fields right: {tot['stated_right']} of {tot['stated_fields']}; "
          f"false fills: {tot['false_fill_rate']} of {tot['not_stated_fields']} unstated; "
          f"call type: {tot['call_type_accuracy']}; the line's after-call work p50 {tot['aftercall_ms_p50']} ms, "
          f"max {tot['aftercall_ms_max']} ms")
    if notes:
        for n in score.notes:
            print("  - " + n)
    return tot


def main_audio(calls: list[Path], rates: list[int], cache: Path, voices: str, notes: bool, as_json: bool,
               asr_model: str = "whisper-tiny.en", record: bool = True) -> int:
    calls = calls or english_calls()
    print(f"rendering and replaying {len(calls)} call(s) at {', '.join(f'{r // 1000} kHz' for r in rates)} "
          f"({asr_model}, {'live finals + the call record' if record else 'live finals only'})")
    scores = score_audio(calls, rates, cache, voices, asr_model, log=(lambda *_: None) if as_json else print,
                         record=record)
    figs = {}
    for rate, s in scores.items():
        figs[f"audio_{rate // 1000}k"] = report(f"audio {rate // 1000} kHz", s, notes) if not as_json \
            else s.totals()
    if as_json:
        print(json.dumps(figs, indent=1))
    return 0
