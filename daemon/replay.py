"""Offline run of the live pipeline over a recorded call (`callcue replay`; its command
line is daemon/commands/replay.py).

Reads the WAV, cuts it into the same 100 ms blocks capture produces, and drives a
LineAnalyzer exactly as the daemon does. Every message it would publish goes to a
JSON Lines file (one payload per line plus its `topic`), and to a broker if one is
given. Without a config, a stereo file is agent-left / customer-right and the call
starts at the first sample, so event times are file times.
"""
from __future__ import annotations

import json
import logging
import sys
import time
import wave
from datetime import date
from pathlib import Path
from typing import Iterator

import numpy as np

from . import contract
from .audio import Block, SourceError, frame_len
from .capture.wav_source import WavReplay, open_wav
from .config import SUPPORTED_RATES, LineConfig, SiteConfig, SourceConfig
from .line import LineAnalyzer
from .prosody.session import Detectors

log = logging.getLogger(__name__)

BLOCK_FRAMES = 5   # capture delivers 100 ms blocks; replay uses the same so results match live


def wav_rate(path: Path) -> int:
    """Sample rate of a WAV file; SourceError (same wording as live WAV lines) if unusable."""
    try:
        with wave.open(str(path), "rb") as w:
            rate = w.getframerate()
    except (wave.Error, EOFError, OSError):
        open_wav(Path(path), 0)   # raises the precise SourceError
        raise
    if rate not in SUPPORTED_RATES:
        raise SourceError(f"{path}: sample rate {rate} Hz is not supported (8000 or 16000 Hz)")
    return rate


def load_call(path: Path, line: LineConfig | None = None) -> tuple[int, np.ndarray]:
    """Whole call as (rate, int16 array [samples, 2] = agent, customer) via the live WAV reader."""
    rate = wav_rate(path)
    line = line or LineConfig(id="replay", source=SourceConfig(wav=path))
    line = line.model_copy(update={"sample_rate": rate})
    src = WavReplay(line)
    try:
        parts = []
        while (got := src.read(rate * 10)) is not None:
            parts.append(np.stack(got, axis=1))
    finally:
        src.close()
    return rate, np.concatenate(parts) if parts else np.zeros((0, 2), np.int16)


def replay_line(cfg: SiteConfig, line: LineConfig, wav: Path) -> LineConfig:
    """The line a replay runs as: the configured one, reading `wav` with its channel map."""
    src = line.source
    return line.model_copy(update={"source": SourceConfig(
        wav=wav, pace="fast", agent=src.tap("agent").channel, customer=src.tap("customer").channel)})


def iter_blocks(line_id: str, audio: np.ndarray, sr: int, agent_ch: int, customer_ch: int,
                block_frames: int = BLOCK_FRAMES) -> Iterator[Block]:
    step = frame_len(sr) * block_frames
    n = (len(audio) // frame_len(sr)) * frame_len(sr)
    for i in range(0, n, step):
        j = min(i + step, n)
        yield Block(line_id, i / sr, sr, np.ascontiguousarray(audio[i:j, agent_ch]),
                    np.ascontiguousarray(audio[i:j, customer_ch]))


def run_replay(wav: Path, cfg: SiteConfig, line: LineConfig, sink, call_id: str | None = None,
               words: list | None = None, ivr: dict | None = None, assist=None,
               engine=None, results: list | None = None, call_date: date | None = None,
               store=None, agent: str | None = None) -> dict:
    """Replay one call; `sink(msg)` receives every message. Returns a summary dict.

    `call_date`: the date the call was on (relative dates said in it, "yesterday", are
    read from it; default today, as live). `store`: a CallStore the call is recorded in,
    as the daemon records a live call (then `callcue calls show` prints it).

    With speech recognition configured, the engine is stepped after every block in this
    thread, so the replay is deterministic and as fast as the machine decodes. A caller
    replaying many calls (`callcue qa`) builds the engine once and passes it with the list
    its results go to (`build_engine(cfg.asr, results.append, ...)`)."""
    sr, audio = load_call(wav, line)
    line = line.model_copy(update={"sample_rate": sr})
    if engine is None:
        results = []
        if cfg.asr is not None:
            from .asr.setup import build_engine
            engine = build_engine(cfg.asr, results.append, cfg.asr.models_dir)
    elif results is None:
        raise ValueError("run_replay: a prebuilt engine needs the results list it appends to")
    if assist is None:
        from .assist.setup import build_assist
        assist = build_assist(cfg, words)
    analyzer = LineAnalyzer(line, cfg.calls.model_copy(update={"auto": False}), Detectors(cfg.detectors, sr),
                            asr=engine, assist=assist.engine, redact=assist.redact, aftercall=cfg.aftercall,
                            mask_char=cfg.assist.redaction.mask,
                            today=(lambda: call_date) if call_date is not None else date.today, box=cfg.box)
    if store is not None:
        outer = sink

        def sink(m: contract.Message) -> None:
            outer(m)
            if contract.Route.STORE in m.route:
                store.add_event(m.payload["call_id"], m.output, m.payload)

    def pump(final: bool = False) -> None:
        if engine is None:
            return
        while engine.step() or (final and engine.channels):
            for res in results:
                for m in analyzer.on_asr_result(res):
                    sink(m)
            results.clear()
            if not final:
                break
        for res in results:
            for m in analyzer.on_asr_result(res):
                sink(m)
        results.clear()

    sink(analyzer.state_message())
    call_id = call_id or f"replay-{wav.stem}"
    if store is not None:
        store.start_call(line.id, call_id, agent or line.agent, contract.now_iso(), "cmd", ivr)
    for m in analyzer.start_call(0.0, "replay", call_id, agent=agent, ivr=ivr):
        sink(m)
    t = time.perf_counter()
    for block in iter_blocks(line.id, audio, sr, 0, 1):
        for m in analyzer.feed(block):
            sink(m)
        pump()
    ended = analyzer.end_call("end of recording")
    if store is not None:
        store.end_call(call_id, contract.now_iso(), round(len(audio) / sr, 2))
    pump(final=True)     # last utterances are decoded before the call's state goes idle
    for m in ended.messages + analyzer.flush():
        sink(m)
    elapsed = time.perf_counter() - t
    return {"audio_s": len(audio) / sr, "elapsed_s": elapsed, "alerts": dict(ended.call.kinds),
            "asr": engine.stats() if engine else None, "aftercall_ms": list(analyzer.aftercall_ms)}


def choose_asr(cfg: SiteConfig, args) -> SiteConfig:
    """Speech recognition for replay/demo: the config's, an explicit model, or the demo
    model when it is installed (said on stderr either way)."""
    from .config import AsrConfig

    if getattr(args, "no_asr", False):
        return cfg.model_copy(update={"asr": None})
    asr = cfg.asr
    if getattr(args, "asr_model", None):
        asr = (asr or AsrConfig()).model_copy(update={"model": args.asr_model})
    if getattr(args, "record_model", None):
        asr = (asr or AsrConfig()).model_copy(update={"record_model": args.record_model})
    if getattr(args, "no_record", False) and asr is not None:
        asr = asr.model_copy(update={"record": False})
    if asr is None:
        from callcue.models.installed import installed_names
        default = AsrConfig()
        if default.model in installed_names():
            asr = default
        else:
            print(f"callcue: speech recognition off: the demo model {default.model} is not installed "
                  f"(hardware/provision.sh builds it)", file=sys.stderr)
    return cfg.model_copy(update={"asr": asr})
