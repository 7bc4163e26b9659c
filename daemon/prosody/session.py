"""Per-call prosody session: owns the detector state of one call on one line.

The kernels are compiled once per process (and cached on disk); a session is a few
small arrays, so a box runs one per live call at no cost beyond its audio.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..audio import SPEAKERS, frame_len
from ..config import DetectorConfig
from . import kernels
from .params import (
    EV_KIND, EV_SPEAKER, EV_T0, EV_T1, EV_V0, K_AGITATION, K_FAST_SPEECH, K_LONG_SILENCE,
    K_TALK_OVER, KIND_NAMES, MAX_EVENTS, N_EV_COLS, N_FEAT, REF_NAMES, REF_OWN, REF_OTHER,
    lowpass_taps, pack_params, P_PITCH_MIN_DBFS, P_YIN_THRESH,
)


@dataclass(frozen=True, slots=True)
class ProsodyAlert:
    kind: str
    speaker: str | None
    t_start: float
    t_end: float
    severity: str
    message: str
    evidence: dict[str, Any]


class Detectors:
    """The compiled detector stack for one sample rate and threshold set (shared)."""

    def __init__(self, cfg: DetectorConfig, sample_rate: int,
                 features: Callable | None = None, decide: Callable | None = None,
                 finish: Callable | None = None):
        self.cfg = cfg
        self.sample_rate = sample_rate
        self.fl = frame_len(sample_rate)
        self.hist = 2 * self.fl
        self.params = pack_params(cfg, sample_rate)
        self.taps = lowpass_taps(sample_rate)
        self.features = features or kernels.frame_features
        self.decide = decide or kernels.decide
        self.finish = finish or kernels.finish

    def session(self) -> "ProsodySession":
        return ProsodySession(self)


class ProsodySession:
    """Feed blocks of aligned agent/customer int16 audio; get alerts (times = call seconds)."""

    def __init__(self, det: Detectors):
        self.det = det
        self.cs, self.gs, self.pbuf = kernels.new_state()
        self.tail = np.zeros((2, det.hist), dtype=np.float64)
        self.events = np.zeros((MAX_EVENTS, N_EV_COLS), dtype=np.float64)
        self.speaking = np.zeros(2, dtype=bool)   # speech state after the last frame
        self.frames = 0
        self._feat = np.zeros((2, 0, N_FEAT))
        self._vad = np.zeros((2, 0))
        self.last_features = self._feat
        self.last_vad = self._vad

    @property
    def t(self) -> float:
        return float(self.gs[kernels.G_T])

    def process(self, agent: np.ndarray, customer: np.ndarray) -> list[ProsodyAlert]:
        det = self.det
        n = len(agent) // det.fl
        if n == 0:
            return []
        if self._feat.shape[1] < n:
            self._feat = np.zeros((2, n, N_FEAT))
            self._vad = np.zeros((2, n))
        p = det.params
        for ch, x in enumerate((agent, customer)):
            buf = np.concatenate((self.tail[ch], x[: n * det.fl].astype(np.float64)))
            det.features(buf, det.hist, det.fl, det.taps, p[P_PITCH_MIN_DBFS], p[P_YIN_THRESH],
                         self._feat[ch])
            self.tail[ch] = buf[-det.hist:]
        k = det.decide(self._feat, n, self.cs, self.gs, self.pbuf, p, self.events, self._vad)
        self.frames += n
        self.speaking[:] = self._vad[:, n - 1] > 0
        self.last_features = self._feat[:, :n]
        self.last_vad = self._vad[:, :n]
        return self._alerts(k)

    def close(self) -> list[ProsodyAlert]:
        k = self.det.finish(self.cs, self.gs, self.pbuf, self.det.params, self.events)
        return self._alerts(k)

    # -- turning event rows into contract alerts with evidence --
    def _alerts(self, k: int) -> list[ProsodyAlert]:
        out = []
        for row in self.events[:k]:
            out.append(describe(row, self.det.cfg))
        return out


def describe(row: np.ndarray, cfg: DetectorConfig) -> ProsodyAlert:
    kind = int(row[EV_KIND])
    who = int(row[EV_SPEAKER])
    speaker = SPEAKERS[who] if who >= 0 else None
    t0, t1 = float(row[EV_T0]), float(row[EV_T1])
    v = [float(x) for x in row[EV_V0:N_EV_COLS]]
    name = KIND_NAMES[kind]
    if kind == K_LONG_SILENCE:
        ev = {"silence_s": round(v[0], 2), "threshold_s": cfg.long_silence_s, "ongoing": True}
        return ProsodyAlert(name, None, t0, t1, "warning",
                            f"Dead air: no one has spoken for {v[0]:.1f} s", ev)
    if kind == K_TALK_OVER:
        other = SPEAKERS[1 - who]
        ev = {"overlap_s": round(v[0], 2), "threshold_s": cfg.talk_over_s, "interrupter": speaker,
              "interrupted": other, "ongoing": bool(v[1])}
        sev = "warning" if speaker == "agent" else "info"
        return ProsodyAlert(name, speaker, t0, t1, sev,
                            f"{speaker.capitalize()} talked over the {other} for {v[0]:.1f} s", ev)
    if kind == K_FAST_SPEECH:
        ev = {"rate_syl_s": round(v[0], 2), "threshold_syl_s": round(v[1], 2),
              "speech_s": round(v[2], 2), "syllables": int(v[3])}
        return ProsodyAlert(name, speaker, t0, t1, "info",
                            f"Agent speaking fast: {v[0]:.1f} syllables/s (limit {v[1]:.1f})", ev)
    if kind == K_AGITATION:
        return _agitation(name, speaker, t0, t1, v)
    raise ValueError(f"unknown event kind {kind}")


def _agitation(name: str, speaker: str, t0: float, t1: float, v: list[float]) -> ProsodyAlert:
    """Agitation evidence names the reference it was judged against: the speaker's own calm
    speech ("own"), or, before there was enough of it, a prior for calm voices, with the
    other party's calm loudness when they had spoken enough ("other_party") or alone
    ("prior"). Values the reference has nothing to compare with are null."""
    ref = REF_NAMES[int(v[9])]
    own, other = int(v[9]) == REF_OWN, int(v[9]) == REF_OTHER
    ev = {"reference": ref,
          "pitch_up_st": round(v[0], 2) if own else None,
          "loudness_up_db": round(v[1], 2) if own or other else None,
          "effort_up_db": round(v[6], 2),
          "pitch_hz": round(v[2], 1), "baseline_pitch_hz": round(v[3], 1) if own else None,
          "loudness_dbfs": round(v[4], 1), "baseline_loudness_dbfs": round(v[5], 1) if own or other else None,
          "effort_db": round(v[7], 2), "baseline_effort_db": round(v[8], 2),
          "slope_db_oct": round(v[10], 2)}
    sev = "critical" if speaker == "customer" else "warning"
    who = speaker.capitalize()
    if own:
        msg = (f"{who} sounds agitated: pitch {v[0]:+.1f} st, loudness {v[1]:+.1f} dB, "
               f"vocal effort {v[6]:+.1f} dB over their own calm speech")
    else:
        msg = f"{who} sounds agitated from the start: vocal effort {v[6]:+.1f} dB over a calm voice"
        if other:
            msg += f", loudness {v[1]:+.1f} dB over the {SPEAKERS[1 - SPEAKERS.index(speaker)]}"
    return ProsodyAlert(name, speaker, t0, t1, sev, msg, ev)
