"""Call scripts: who says what, when, and how, for synthetic test calls.

A script is YAML loaded with ``yamlfile.load_model``, so a typo is reported as
``file:line: field: problem``. Times are placed relative to the speech before
(``gap``, negative = talk over it) or absolutely (``at``); the real turn lengths are
only known once espeak-ng has spoken them (render.py).
"""
from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from ...schema import Strict
from ...yamlfile import load_model

Speaker = Literal["agent", "customer"]
Style = Literal["normal", "fast", "agitated"]
Language = Literal["en", "zh"]

# Debian's espeak-ng 1.51 `cmn` voice turns hanzi into pinyin and then reads the
# pinyin as English ("nin two hao three"); `cmn-latn-pinyin` speaks it as Mandarin.
BASE_VOICE = {"en": "en-us", "zh": "cmn-latn-pinyin"}
# Agent and customer get different voices so a listener (and a pitch tracker) can tell them apart.
DEFAULT_VARIANT = {"agent": "", "customer": "+f3"}
DEFAULT_SPEED = {"en": 165, "zh": 185}
# Clearly fast (measured syllable rates: README of daemon/synth, or the synth report).
FAST_SPEED = {"en": 350, "zh": 370}
AGITATED_PITCH_RAISE = 35
AGITATED_AMPLITUDE = 180
AGITATED_SPEED_FACTOR = 1.1
# Agitation changes several cues at once, as it does in people: besides pitch, loudness
# and pace, a wider pitch range and more vocal effort (a flatter spectrum: more energy
# above 1 kHz). A calm voice that is merely loud, high or fast changes one of them.
AGITATED_RANGE = 80
AGITATED_EFFORT_DB = 6.0


class EspeakParams(Strict):
    """espeak-ng settings of one turn; unset fields fall back to the speaker's voice, then the style."""

    voice: str | None = Field(None, description="espeak-ng voice, e.g. en-us, en-us+f3, cmn-latn-pinyin+f3")
    speed: int | None = Field(None, ge=80, le=500, description="speaking rate in words per minute (-s)")
    pitch: int | None = Field(None, ge=0, le=99, description="base pitch 0-99 (-p); 50 is espeak's default")
    amplitude: int | None = Field(None, ge=0, le=200, description="amplitude 0-200 (-a); 100 is espeak's default")
    range: int | None = Field(None, ge=0, le=99, description="pitch range 0-99 (SSML prosody range); 50 is espeak's default")
    effort: float | None = Field(None, ge=0, le=12, description=(
        "vocal effort, dB: energy above 1 kHz raised this much (a flatter spectrum, as in raised or strained voices)"))


class ResolvedParams(Strict):
    """The exact espeak-ng settings a turn is spoken with (recorded in the labels)."""

    voice: str = Field(description="espeak-ng voice with optional +variant")
    speed: int = Field(ge=80, le=500, description="words per minute (-s)")
    pitch: int = Field(ge=0, le=99, description="base pitch 0-99 (-p)")
    amplitude: int = Field(ge=0, le=200, description="amplitude 0-200 (-a)")
    range: int = Field(50, ge=0, le=99, description="pitch range 0-99 (SSML prosody range)")
    effort: float = Field(0.0, ge=0, le=12, description="vocal effort: dB added above 1 kHz")


class TurnExpect(Strict):
    """What the assist engine should make of this turn (truth for scoring; ignored by rendering)."""

    knowledge: str | None = Field(None, description="knowledge topic this customer question should push")
    steps: list[str] = Field(default_factory=list, description="flow step ids this turn completes")
    branch: str | None = Field(None, description="flow branch this customer turn chooses")
    offer_fits: str | None = Field(None, description="offer id this customer turn makes fit")
    offer_made: str | None = Field(None, description="offer id the agent makes in this turn")
    sensitive: list[str] = Field(default_factory=list, description="rule-pack sensitive phrases said in this turn")


class CallExpect(Strict):
    """Call-level truth for the assist engine."""

    flow: str | None = Field(None, description="flow id the call should run")
    missing: list[str] = Field(default_factory=list, description="required phrase ids the agent skips (missing_phrase)")
    ivr: dict[str, str] | None = Field(None, description="ivr_context sent at call start, e.g. {intent: claim}")
    team: str | None = Field(None, description="team of the line the call is on")
    call_date: date | None = Field(None, description="date the call is on (after-call labels: relative dates are read from it)")
    call_type: str | None = Field(None, description="after call: the ticket template (call type) the call should get")
    ticket: dict[str, Any] | None = Field(None, description=(
        "after call: ticket field name -> the value the call states; a field not listed (or null) is not stated "
        "and must stay empty; follow_up as {say: [words the promise holds], due: date}"))


class Turn(Strict):
    """One utterance of one party."""

    speaker: Speaker = Field(description="agent (left channel) or customer (right channel)")
    text: str = Field(min_length=1, description="what is said, UTF-8 (Mandarin as hanzi)")
    gap: float | None = Field(None, ge=-30, le=120, description=(
        "start this many seconds after the previous speech ended (the latest end of all earlier turns); "
        "negative = start before it ended, i.e. talk over it. The first turn counts from 0 s. "
        "Default 0.6 when neither gap nor at is given"))
    at: float | None = Field(None, ge=0, le=3600, description="absolute start time in seconds (instead of gap)")
    style: Style = Field("normal", description=(
        "normal, fast (agent speaking too fast) or agitated (raised pitch, loudness, pace, pitch range and vocal effort)"))
    espeak: EspeakParams | None = Field(None, description="per-turn espeak-ng overrides; win over voice and style defaults")
    expect: TurnExpect | None = Field(None, description="assist-engine truth for this turn (scoring only)")

    @model_validator(mode="after")
    def _one_placement(self) -> "Turn":
        if self.gap is not None and self.at is not None:
            raise ValueError("give either gap or at, not both")
        return self


class VoiceSettings(Strict):
    """A party's normal voice for the whole call."""

    voice: str | None = Field(None, description="espeak-ng voice; default en-us / cmn-latn-pinyin, customer with +f3")
    speed: int | None = Field(None, ge=80, le=500, description="normal words per minute; default 165 (en) / 185 (zh)")
    pitch: int = Field(50, ge=0, le=99, description="normal base pitch 0-99")
    amplitude: int = Field(100, ge=0, le=200, description="normal amplitude 0-200")
    range: int = Field(50, ge=0, le=99, description="normal pitch range 0-99")
    effort: float = Field(0.0, ge=0, le=12, description="normal vocal effort, dB above 1 kHz")
    gain_db: float = Field(0.0, ge=-20, le=20, description=(
        "gain of this party's channel, dB (a line whose taps are set differently: the voice and the line noise "
        "of that channel both change)"))


class CallScript(Strict):
    """A whole call: language, the two voices, and the turns in order."""

    language: Language = Field(description="en (English) or zh (Mandarin)")
    title: str | None = Field(None, description="what the call is about (free text, for people)")
    voices: dict[Speaker, VoiceSettings] = Field(default_factory=dict, description="normal voice per party")
    sample_rate: Literal[8000, 16000] | None = Field(None, description=(
        "rate to render at when the command line gives none (8000 = telephone band); default 16000"))
    tail: float = Field(1.0, ge=0, le=30, description="silence after the last speech, seconds")
    turns: list[Turn] = Field(min_length=1, description="utterances in the order they are placed")
    expect: CallExpect | None = Field(None, description="assist-engine truth for the whole call (scoring only)")


DEFAULT_GAP = 0.6


def voice_of(script: CallScript, speaker: str) -> VoiceSettings:
    return script.voices.get(speaker) or VoiceSettings()  # type: ignore[arg-type]


def resolve_params(script: CallScript, turn: Turn) -> ResolvedParams:
    """Speaker's normal voice, then the style's change, then the turn's own overrides."""
    lang = script.language
    v = voice_of(script, turn.speaker)
    voice = v.voice or BASE_VOICE[lang] + DEFAULT_VARIANT[turn.speaker]
    speed = v.speed or DEFAULT_SPEED[lang]
    pitch, amplitude, prange, effort = v.pitch, v.amplitude, v.range, v.effort
    if turn.style == "fast":
        speed = FAST_SPEED[lang]
    elif turn.style == "agitated":
        pitch = min(99, pitch + AGITATED_PITCH_RAISE)
        amplitude = max(amplitude, AGITATED_AMPLITUDE)
        speed = min(500, round(speed * AGITATED_SPEED_FACTOR))
        prange = max(prange, AGITATED_RANGE)
        effort = max(effort, AGITATED_EFFORT_DB)
    o = turn.espeak or EspeakParams()
    return ResolvedParams(voice=o.voice or voice, speed=o.speed or speed,
                          pitch=pitch if o.pitch is None else o.pitch,
                          amplitude=amplitude if o.amplitude is None else o.amplitude,
                          range=prange if o.range is None else o.range,
                          effort=effort if o.effort is None else o.effort)


def load_script(path: str | Path) -> CallScript:
    """Load a call script YAML; raises ConfigError naming file:line: field."""
    return load_model(path, CallScript)
