"""Plain helpers shared by several test files: synthetic speech and calls, WAV files, the
demo calls' folder and a small content pack. Test files import them from here
(`from helpers import call, speech`), never from one another; fixtures, waiting and
the model requirement live in conftest.py.
"""
from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

SR = 8000
REPO = Path(__file__).resolve().parent.parent
DEMO_CALLS = REPO / "flows" / "demo" / "calls"       # rendered by hardware/provision.sh


# ---------------------------------------------------------------- synthetic audio

def speech(dur: float, f0: float = 120.0, syl_rate: float = 4.0, level_db: float = -22.0,
           sr: int = SR, seed: int = 0) -> np.ndarray:
    """Voiced speech stand-in: harmonics of f0 under a syllable-rate envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(dur * sr)) / sr
    f = f0 * (1 + 0.03 * np.sin(2 * np.pi * 1.3 * t))           # a little intonation
    phase = 2 * np.pi * np.cumsum(f) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 8))
    env = np.clip(np.sin(np.pi * syl_rate * t + rng.uniform(0, 1)) ** 2, 0, 1) ** 1.5
    x = x * env
    x *= 10 ** (level_db / 20) * 32768 / (np.sqrt(np.mean(x ** 2)) + 1e-9)
    return x


def call(parts: list[tuple[str, float, np.ndarray]], dur: float, sr: int = SR) -> np.ndarray:
    """Stereo int16 call: parts are (speaker, start s, samples)."""
    out = np.random.default_rng(1).normal(0, 8, (int(dur * sr), 2))   # faint line noise
    for who, start, x in parts:
        ch = 0 if who == "agent" else 1
        i = int(start * sr)
        out[i:i + len(x), ch] += x[: len(out) - i]
    return np.clip(out, -32768, 32767).astype(np.int16)


def write_wav(path: Path, frames: np.ndarray, rate: int = SR, width: int = 2) -> Path:
    """A PCM WAV of frames (samples, or samples x channels); width 1 writes 8-bit."""
    frames = np.asarray(frames)
    if frames.ndim == 1:
        frames = frames[:, None]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(frames.shape[1])
        w.setsampwidth(width)
        w.setframerate(rate)
        if width == 2:
            w.writeframes(np.ascontiguousarray(frames, dtype="<i2").tobytes())
        else:
            w.writeframes((np.ascontiguousarray(frames) // 256 + 128).astype(np.uint8).tobytes())
    return path


# ---------------------------------------------------------------- a small content pack

RULES = """\
name: test-pack
sensitive_words:
  - {phrase: guaranteed returns, speaker: agent, severity: critical, reason: mis-selling}
  - {phrase: 投诉, speaker: customer}
required_phrases:
  - {id: greeting, title: Greeting, say_any: [thank you for calling, 感谢您的来电], within_s: 15}
  - id: identity
    title: Identity check
    say_any: [date of birth, 身份证后四位]
    before_any: [your balance is, account details]
  - {id: closing, title: Closing line, say_any: [anything else I can help, 还有其他], at_end: true}
teams:
  sales: {fast_speech_syl_s: 5.5}
"""

FLOW = """\
id: service-en
title: Service call
lang: en
default: true
steps:
  - {id: greet, title: Greet, script: "Thank you for calling.", keywords: [thank you for calling]}
  - {id: verify, title: Verify, script: "Can I have your date of birth?", keywords: [date of birth, verify your identity]}
branches:
  - id: claim
    title: Claim report
    intent: [car accident, file a claim]
    ivr: [claim]
    steps:
      - {id: claim_details, title: Details, script: "When did it happen?", keywords: [when did it happen],
         examples: ["tell me what happened and where the accident was"]}
  - id: billing
    title: Billing
    intent: [charged twice, my bill]
    ivr: [billing]
    steps:
      - {id: billing_check, title: Check payments, script: "Let me check the payments.", keywords: [check the payments]}
closing:
  - {id: close, title: Close, script: "Anything else I can help with?", keywords: [anything else I can help]}
"""

OFFER = """\
id: roadside
title: Roadside assistance
lang: en
when_any: [broke down, long drive]
script: "Roadside assistance covers towing for five dollars a month."
made_when_any: [roadside assistance]
"""


def write_pack(root: Path, rules: str = RULES, flow: str = FLOW, offer: str = OFFER) -> Path:
    """A content pack folder: rules.yaml, one English flow, one offer."""
    (root / "flows").mkdir(parents=True, exist_ok=True)
    (root / "offers").mkdir(exist_ok=True)
    (root / "rules.yaml").write_text(rules, encoding="utf-8")
    (root / "flows" / "service.en.yaml").write_text(flow, encoding="utf-8")
    (root / "offers" / "roadside.yaml").write_text(offer, encoding="utf-8")
    return root


# ---------------------------------------------------------------- after-call records

AFTERCALL_DAY = "2026-03-10"        # a Tuesday: relative dates said in a call are read from it


def call_record(turns, *, day=None, branch=None, branch_by="customer", branch_title=None, ivr=None, steps=(),
                lang=None, offers=(), knowledge=(), vectors=None):
    """A plain after-call CallRecord: the (speaker, text) turns one after the other at an easy
    pace (4 syllables a second, 0.6 s apart); ``steps`` as (id, title, done); the branch's
    title defaults to its id in words."""
    from datetime import date

    from callcue.daemon.aftercall.record import CallRecord, FlowRecord, Step, Utterance
    from callcue.daemon.text import syllables

    utts, t = [], 0.5
    for who, text in turns:
        d = 0.25 + syllables(text) / 4.0
        utts.append(Utterance(who, text, round(t, 2), round(t + d, 2)))
        t += d + 0.6
    flow = None
    if branch or steps:
        title = branch_title or (branch.replace("_", " ").capitalize() if branch else None)
        flow = FlowRecord("inbound-service-" + (lang or "en"), lang or "en",
                          tuple(Step(i, name, done, 1.0 if done else None) for i, name, done in steps),
                          branch, title, branch_by if branch else None)
    return CallRecord("c1", day or date.fromisoformat(AFTERCALL_DAY), utts, lang=lang, ivr=ivr, flow=flow,
                      offers=list(offers), knowledge=list(knowledge), duration_s=t + 1.0,
                      vectors=dict(vectors or {}))


def ticket_field(out: dict, name: str) -> dict:
    return out["ticket"]["fields"][name]


def ticket_value(out: dict, name: str):
    return ticket_field(out, name)["value"]
