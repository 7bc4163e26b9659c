"""Detector parameters packed into a float array (what the Numba kernels take).

Named indices are module constants so Numba folds them into the compiled code.
"""
from __future__ import annotations

import numpy as np

from ..audio import FRAME_MS
from ..config import DetectorConfig

FRAME_S = FRAME_MS / 1000.0
PITCH_RATE = 4000          # pitch is tracked on audio decimated to 4 kHz
YIN_WINDOW = 100           # 25 ms integration window at 4 kHz
YIN_TAU_MIN = 10           # 400 Hz
YIN_TAU_MAX = 57           # 70 Hz
PITCH_BUF = 160            # two frames at 4 kHz
MAX_UTT_FRAMES = 3000      # 60 s of pitch values kept per utterance
MAX_EVENTS = 64            # per processed block

# params vector
P_LONG_SILENCE = 0
P_TALK_OVER = 1
P_FAST_RATE = 2
P_FAST_MIN_S = 3
P_AG_PITCH_ST = 4
P_AG_LOUD_DB = 5
P_AG_MIN_S = 6
P_BASELINE_S = 7
P_VAD_MARGIN = 8
P_VAD_MIN = 9
P_HANGOVER = 10
P_UTT_GAP = 11         # a pause this long ends an utterance
P_MERGE_GAP = 12       # flagged utterances closer than this form one episode
P_OV_GAP = 13          # an overlap survives a break this short
P_OV_CAP = 14          # an overlap still running this long after the threshold is reported
P_PEAK_DB = 15         # syllable nucleus: rise and fall of the envelope, dB
P_PEAK_MIN_DIST = 16   # syllable nuclei at least this far apart, s
P_PITCH_MIN_DBFS = 17  # pitch is only tracked in frames louder than this
P_YIN_THRESH = 18
P_FLOOR_BUCKET = 19    # noise floor = minimum over two buckets of this many frames
P_BASE_MAX_W = 20      # baseline memory, seconds of speech
P_ONSET_FRAMES = 21
P_PEAK_VOICED = 22    # count only nuclei whose peak frame has a pitch
P_FAST_UTT_MIN = 23   # an utterance this long has a rate worth judging, s
# agitation against the speaker's own calm speech: pitch and (loudness or vocal effort) up,
# or loudness and effort up with at least a little pitch (a high voice near its ceiling)
P_AG_EFFORT_DB = 24   # vocal effort (energy above 1 kHz over below) over own calm speech, dB
P_AG_PITCH_MIN2 = 25  # pitch rise that, with loudness and effort both up, is enough, st
P_TEACH_FRAC = 26     # an unflagged utterance teaches the calm reference only if it is this calm
# before there is enough calm speech of this speaker: a prior for calm voices
P_PRIOR_EFFORT = 27   # calm voices' vocal effort on this line's band (8 or 16 kHz), dB
P_PRIOR_MIN = 28      # effort over the prior needed at the least, dB
P_PRIOR_LOUD_W = 29   # weight of loudness over the other party's calm speech, per dB
P_PRIOR_SCORE = 30    # effort over prior + weighted loudness over the other party -> agitated
P_PRIOR_CALM = 31     # effort over the prior below this: the utterance counts as calm speech, dB
P_PRIOR_LOUD_CAP = 32  # loudness over the other party counts up to this much (line gains differ), dB
P_PRIOR_SLOPE = 33    # spectral slope 0.5-1 -> 2-4 kHz needed at the least before own calm speech, dB/octave
P_PRIOR_CALM_SLOPE = 34  # ... and below this slope an utterance counts as calm speech too, dB/octave
# after an utterance flagged before there was calm speech, the next counts as calm only if
# it is also calmer than the flagged ones: this much lower in pitch, or in loudness
P_HOT_PITCH = 35      # st
P_HOT_LOUD = 36       # dB
N_PARAMS = 37

# event rows
EV_KIND, EV_SPEAKER, EV_T0, EV_T1 = 0, 1, 2, 3
EV_V0 = 4
N_EV_COLS = 16
K_LONG_SILENCE, K_TALK_OVER, K_FAST_SPEECH, K_AGITATION = 0, 1, 2, 3
KIND_NAMES = ("long_silence", "talk_over", "fast_speech", "agitation")
# what an agitation alert was judged against
REF_OWN, REF_PRIOR, REF_OTHER = 0, 1, 2
REF_NAMES = ("own", "prior", "other_party")

# per-frame features per channel. Where pitch is tracked (else NO_LOW): F_LOW = energy
# below 1 kHz, F_MID = 0.5-1 kHz, F_HIGH = 2-4 kHz (dBFS)
F_EDB, F_ENV0, F_ENV1, F_F0, F_LOW, F_MID, F_HIGH = 0, 1, 2, 3, 4, 5, 6
N_FEAT = 7
NO_LOW = -200.0

# Calm voices' vocal effort (10 log10 of energy above 1 kHz over energy below, in voiced
# frames), by line band: the telephone band drops the low harmonics a wideband line keeps.
PRIOR_EFFORT_DB = {8000: 0.2, 16000: -0.8}


def pack_params(cfg: DetectorConfig, sample_rate: int = 8000) -> np.ndarray:
    p = np.zeros(N_PARAMS, dtype=np.float64)
    p[P_LONG_SILENCE] = cfg.long_silence_s
    p[P_TALK_OVER] = cfg.talk_over_s
    p[P_FAST_RATE] = cfg.fast_speech_syl_s
    p[P_FAST_MIN_S] = cfg.fast_speech_min_s
    p[P_AG_PITCH_ST] = cfg.agitation_pitch_st
    p[P_AG_LOUD_DB] = cfg.agitation_loud_db
    p[P_AG_MIN_S] = cfg.agitation_min_s
    p[P_BASELINE_S] = cfg.baseline_s
    p[P_VAD_MARGIN] = cfg.vad_margin_db
    p[P_VAD_MIN] = cfg.vad_min_dbfs
    p[P_HANGOVER] = cfg.vad_hangover_s
    p[P_UTT_GAP] = 0.5
    p[P_MERGE_GAP] = 1.5
    p[P_OV_GAP] = 0.4
    p[P_OV_CAP] = 3.0
    p[P_PEAK_DB] = 4.0
    p[P_PEAK_MIN_DIST] = 0.07
    p[P_PITCH_MIN_DBFS] = cfg.vad_min_dbfs
    p[P_YIN_THRESH] = 0.2
    p[P_FLOOR_BUCKET] = 125
    p[P_BASE_MAX_W] = 30.0
    p[P_ONSET_FRAMES] = 2
    p[P_PEAK_VOICED] = 0.0
    p[P_FAST_UTT_MIN] = 1.0
    p[P_AG_EFFORT_DB] = 1.5
    p[P_AG_PITCH_MIN2] = 1.0
    p[P_TEACH_FRAC] = 0.75
    p[P_PRIOR_EFFORT] = PRIOR_EFFORT_DB[8000 if sample_rate <= 8000 else 16000]
    p[P_PRIOR_MIN] = 0.3
    p[P_PRIOR_LOUD_W] = 0.12
    p[P_PRIOR_SCORE] = 1.0
    p[P_PRIOR_CALM] = 0.6
    p[P_PRIOR_LOUD_CAP] = 6.0
    p[P_PRIOR_SLOPE] = -2.5
    p[P_PRIOR_CALM_SLOPE] = -4.0
    p[P_HOT_PITCH] = 1.5
    p[P_HOT_LOUD] = 3.0
    return p


def _sinc_taps(fc: float, n: int) -> np.ndarray:
    k = np.arange(n) - (n - 1) / 2
    h = 2 * fc * np.sinc(2 * fc * k) * np.hamming(n)
    return (h / h.sum()).astype(np.float64)


# Vocal-effort bands: one half-band low-pass, used three ways: at 8 kHz (0-2 kHz), at
# 16 kHz to halve the rate first (0-4 kHz), and on the 1 kHz pitch signal taken at 2 kHz
# (0-0.5 kHz). With the 1 kHz low-pass these give the energy at 0.5-1 kHz and 2-4 kHz, whose
# difference over two octaves is the spectral slope: a pure tilt, which a voice's formants
# shifted up or down change much less than a fixed 1 kHz split. Every other tap of a
# half-band filter is zero; the kernels skip them (HALFBAND_NZ: the others' indices).
HALFBAND_TAPS = _sinc_taps(0.25, 15)
HALFBAND_NZ = np.flatnonzero(np.abs(HALFBAND_TAPS) > 1e-12).astype(np.int64)


def lowpass_taps(sample_rate: int) -> np.ndarray:
    """Windowed-sinc low-pass at 1 kHz used before decimating to PITCH_RATE."""
    n = 15 if sample_rate == 8000 else 29
    k = np.arange(n) - (n - 1) / 2
    fc = 1000.0 / sample_rate
    h = 2 * fc * np.sinc(2 * fc * k) * np.hamming(n)
    return (h / h.sum()).astype(np.float64)
