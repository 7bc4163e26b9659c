"""Numba kernels of the prosody detectors.

Two stages per block of 20 ms frames:

* `frame_features` (per channel): energy (dBFS), a 10 ms-hop loudness envelope
  (for syllable nuclei), pitch (YIN on audio low-passed and decimated to 4 kHz, only in
  frames loud enough to be speech) and, in those frames, the energy below 1 kHz (the
  same decimated audio), at 0.5-1 kHz and at 2-4 kHz, which give vocal effort.
* `decide` (both channels of a line): noise floor, voice activity with onset and
  hang-over, utterances, syllable nuclei, per-speaker calm references, and the alert
  state machines (long_silence, talk_over, fast_speech, agitation).

Agitation is judged per utterance on three cues: median pitch, loudness, and vocal
effort (10 log10 of the energy above 1 kHz over the energy below, in pitched frames: a
raised or strained voice has a flatter spectrum, and unlike loudness this does not
change with the line's gain). Once a speaker has `baseline_s` of calm speech, the
reference is that calm speech ("own"). Until then it is a prior for calm voices on this
line's band, plus the other party's calm loudness when they have spoken enough
("other_party"; "prior" otherwise); the prior also wants a flat spectral slope (0.5-1 to
2-4 kHz, dB per octave), which a voice whose formants sit high (a high or small voice)
does not fake the way it does the 1 kHz split. Only utterances judged calm teach a
reference, so a speaker who starts agitated is not learnt as their own normal.

Both are streaming: all memory lives in the state arrays a ProsodySession owns, so
feeding a call in 20 ms blocks or in one piece gives the same events.
`decide` is plain scalar Python that Numba compiles; the NumPy reference
(reference.py) runs the same function interpreted, which is what one would write
without Numba.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .params import (
    EV_KIND, EV_SPEAKER, EV_T0, EV_T1, EV_V0, F_EDB, F_ENV0, F_ENV1, F_F0, F_HIGH, F_LOW, F_MID, FRAME_S,
    HALFBAND_NZ, HALFBAND_TAPS, P_HOT_LOUD, P_HOT_PITCH, P_PRIOR_CALM_SLOPE, P_PRIOR_SLOPE,
    K_AGITATION, K_FAST_SPEECH, K_LONG_SILENCE, K_TALK_OVER, MAX_UTT_FRAMES, NO_LOW,
    P_AG_EFFORT_DB, P_AG_LOUD_DB, P_AG_MIN_S, P_AG_PITCH_MIN2, P_AG_PITCH_ST, P_BASE_MAX_W,
    P_BASELINE_S, P_FAST_MIN_S, P_PRIOR_CALM, P_PRIOR_EFFORT, P_PRIOR_LOUD_CAP, P_PRIOR_LOUD_W, P_PRIOR_MIN,
    P_PRIOR_SCORE, P_TEACH_FRAC, REF_OTHER, REF_OWN, REF_PRIOR,
    P_FAST_RATE, P_FAST_UTT_MIN, P_FLOOR_BUCKET, P_HANGOVER, P_LONG_SILENCE, P_MERGE_GAP, P_ONSET_FRAMES,
    P_OV_CAP, P_OV_GAP, P_PEAK_DB, P_PEAK_VOICED, P_PEAK_MIN_DIST, P_PITCH_MIN_DBFS, P_TALK_OVER,
    P_UTT_GAP, P_VAD_MARGIN, P_VAD_MIN, P_YIN_THRESH, PITCH_BUF, PITCH_RATE, YIN_TAU_MAX,
    YIN_TAU_MIN, YIN_WINDOW,
)

DB_FS = 20.0 * math.log10(32768.0)

# ---- per-channel decision state (cs[ch, ...]) ----
C_FLOOR_CUR, C_FLOOR_PREV, C_FLOOR_N = 0, 1, 2
C_RUN, C_SPEECH, C_SPEECH_START, C_LAST_VOICED = 3, 4, 5, 6
C_UTT_ACTIVE, C_UTT_START, C_UTT_NVOICED, C_UTT_NUCLEI, C_UTT_NPITCH, C_UTT_ESUM = 7, 8, 9, 10, 11, 12
C_PK_MODE, C_PK_VAL, C_PK_T, C_PK_LAST = 13, 14, 15, 16
C_BASE_LOGP, C_BASE_E, C_BASE_W = 17, 18, 19
C_FP_ON, C_FP_START, C_FP_END, C_FP_RATE, C_FP_SPEECH, C_FP_NUC = 20, 21, 22, 23, 24, 25
C_AG_ON, C_AG_START, C_AG_END, C_AG_DP, C_AG_DL, C_AG_PITCH, C_AG_E, C_AG_SPEECH = 26, 27, 28, 29, 30, 31, 32, 33
C_EVER_SPOKE = 34
C_PK_VOICED = 35
C_UTT_PALL, C_UTT_PLO = 36, 37          # energy (linear) of the utterance's pitched frames: all, below 1 kHz
C_BASE_EFF = 38                         # calm reference: vocal effort, dB
C_AG_DE, C_AG_EFF, C_AG_REF = 39, 40, 41
C_AG_BP, C_AG_BE, C_AG_BEFF = 42, 43, 44  # the reference the episode was judged against
C_UTT_PMID, C_UTT_PHIGH = 45, 46         # energy (linear) of the pitched frames at 0.5-1 kHz and 2-4 kHz
C_AG_SLOPE = 47
C_HOT_LOGP, C_HOT_E, C_HOT_W = 48, 49, 50  # the speaker's utterances flagged before any calm speech
N_CS = 51

# ---- line-level decision state (gs[...]) ----
G_T = 0                 # end time of the last processed frame, s (call time)
G_OV_ON, G_OV_START, G_OV_WHO, G_OV_LAST_BOTH, G_OV_END, G_OV_DONE = 1, 2, 3, 4, 5, 6
G_SIL_DONE, G_LAST_SPEECH = 7, 8
N_GS = 9


def new_state():
    cs = np.zeros((2, N_CS), dtype=np.float64)
    cs[:, C_FLOOR_CUR] = 1e9
    cs[:, C_FLOOR_PREV] = 1e9
    cs[:, C_PK_LAST] = -1e9
    gs = np.zeros(N_GS, dtype=np.float64)
    pbuf = np.zeros((2, MAX_UTT_FRAMES), dtype=np.float64)
    return cs, gs, pbuf


# ----------------------------------------------------------------------------
# features
# ----------------------------------------------------------------------------

@njit(cache=True, nogil=True, fastmath=True)
def _energy_db(x, a, b):
    n = b - a
    m = 0.0
    for i in range(a, b):
        m += x[i]
    m /= n
    e = 0.0
    for i in range(a, b):
        d = x[i] - m
        e += d * d
    return 10.0 * math.log10(e / n + 1e-4) - DB_FS


@njit(cache=True, nogil=True, fastmath=True)
def _power(x, a, b):
    """Mean-removed mean square of x[a:b] (linear)."""
    n = b - a
    m = 0.0
    for i in range(a, b):
        m += x[i]
    m /= n
    e = 0.0
    for i in range(a, b):
        d = x[i] - m
        e += d * d
    return e / n


@njit(cache=True, nogil=True, fastmath=True)
def _halfband_power(x, start, n, step, y):
    """Power of the half-band low-pass of x taken every `step` samples:
    y[k] = sum_j HALFBAND_TAPS[j] * x[start + step * (k - j)], k < n (needs 14 steps of history)."""
    for k in range(n):
        acc = 0.0
        for j in HALFBAND_NZ:
            acc += HALFBAND_TAPS[j] * x[start + step * (k - j)]
        y[k] = acc
    return _power(y, 0, n)


@njit(cache=True, nogil=True, fastmath=True)
def _band_db(p):
    return 10.0 * math.log10(max(p, 0.0) + 1e-4) - DB_FS


@njit(cache=True, nogil=True, fastmath=True)
def _yin_d(w, tau):
    s = 0.0
    for j in range(YIN_WINDOW):
        diff = w[j] - w[j + tau]
        s += diff * diff
    return s


@njit(cache=True, nogil=True, fastmath=True)
def _yin(w, thresh, d):
    """Pitch of a 4 kHz window (len >= YIN_WINDOW + YIN_TAU_MAX), Hz, or 0 if unvoiced.

    The cumulative-mean-normalised difference is computed lag by lag and stops at the
    first dip below `thresh` once its local minimum is passed: same answer as the full
    curve (see reference.yin_rows), about half the work for ordinary voices.
    """
    d[0] = 1.0
    run = 0.0
    found = -1
    tau = 1
    while tau <= YIN_TAU_MAX:
        s = _yin_d(w, tau)
        run += s
        d[tau] = s * tau / run if run > 0.0 else 1.0
        if found < 0:
            if tau >= YIN_TAU_MIN and d[tau] < thresh:
                found = tau
        elif d[tau] < d[found]:
            found = tau
        else:
            break  # d[found + 1] is known: the walk down has ended
        tau += 1
    if found < 0:
        return 0.0
    best = float(found)
    if YIN_TAU_MIN < found < YIN_TAU_MAX:
        a, b, c = d[found - 1], d[found], d[found + 1]
        den = a - 2.0 * b + c
        if den > 0.0:
            best = found + 0.5 * (a - c) / den
    return PITCH_RATE / best


@njit(cache=True, nogil=True, fastmath=True)
def _decimate(buf, start, fl, dec, taps, out, o):
    """Low-pass and decimate the frame at buf[start:start+fl] into out[o:o+fl//dec]."""
    nt = len(taps)
    for m in range(fl // dec):
        k = start + dec * m + dec - 1
        acc = 0.0
        for j in range(nt):
            acc += taps[j] * buf[k - j]
        out[o + m] = acc


@njit(cache=True, nogil=True, fastmath=True)
def frame_features(buf, hist, fl, taps, pitch_min_dbfs, yin_thresh, out):
    """Features of the frames in buf[hist:]; buf[:hist] is earlier audio (>= 2 frames).

    out[i] = (energy dBFS, envelope at frame start, envelope at frame centre, f0 Hz, and
    in voiced frames (else NO_LOW) the energy below 1 kHz, at 0.5-1 kHz, at 2-4 kHz, dBFS).
    """
    n_frames = (len(buf) - hist) // fl
    half = fl // 2
    dec = fl * 2 // PITCH_BUF          # decimation factor: 2 at 8 kHz, 4 at 16 kHz
    hb = PITCH_BUF // 2
    # decimated frames, slot i+1 = frame i, slot 0 = the frame before the block;
    # consecutive loud frames share the half they have in common
    dcache = np.empty((n_frames + 1) * hb)
    have = np.zeros(n_frames + 1, dtype=np.bool_)
    d = np.empty(YIN_TAU_MAX + 1)
    nh = len(HALFBAND_TAPS) - 1
    x8 = np.empty(fl // 2 + nh)         # 16 kHz: the frame at 8 kHz, with the filter's history
    y = np.empty(fl)
    for i in range(n_frames):
        s = hist + i * fl
        e = _energy_db(buf, s, s + fl)
        out[i, F_EDB] = e
        out[i, F_ENV0] = _energy_db(buf, s - half, s + half)
        out[i, F_ENV1] = e
        f0 = 0.0
        if e > pitch_min_dbfs:
            for slot in (i, i + 1):
                if not have[slot]:
                    _decimate(buf, s + (slot - i - 1) * fl, fl, dec, taps, dcache, slot * hb)
                    have[slot] = True
            f0 = _yin(dcache[i * hb:(i + 2) * hb], yin_thresh, d)
            out[i, F_LOW] = NO_LOW
            out[i, F_MID] = NO_LOW
            out[i, F_HIGH] = NO_LOW
            if f0 > 0.0:
                # vocal-effort bands of voiced frames: 0-1 kHz and 0-0.5 kHz from the 4 kHz signal,
                # 0-4 and 0-2 kHz from the frame (at 16 kHz first halved to 8 kHz)
                p1 = _power(dcache, (i + 1) * hb, (i + 2) * hb)
                p05 = _halfband_power(dcache, (i + 1) * hb + 1, hb // 2, 2, y)
                if dec == 2:
                    p4 = _power(buf, s, s + fl)
                    p2 = _halfband_power(buf, s, fl, 1, y)
                else:
                    m8 = fl // 2
                    for m in range(-nh, m8):
                        acc = 0.0
                        for j in HALFBAND_NZ:
                            acc += HALFBAND_TAPS[j] * buf[s + 2 * m + 1 - j]
                        x8[m + nh] = acc
                    p4 = _power(x8, nh, nh + m8)
                    p2 = _halfband_power(x8, nh, m8, 1, y)
                out[i, F_LOW] = _band_db(p1)
                out[i, F_MID] = _band_db(p1 - p05)
                out[i, F_HIGH] = _band_db(p4 - p2)
        else:
            out[i, F_LOW] = NO_LOW
            out[i, F_MID] = NO_LOW
            out[i, F_HIGH] = NO_LOW
        out[i, F_F0] = f0


# ----------------------------------------------------------------------------
# decisions
# ----------------------------------------------------------------------------

@njit(cache=True)
def _emit(ev, n, kind, speaker, t0, t1, v0, v1, v2, v3, v4, v5):
    if n >= ev.shape[0]:
        return n
    ev[n, EV_KIND] = kind
    ev[n, EV_SPEAKER] = speaker
    ev[n, EV_T0] = t0
    ev[n, EV_T1] = t1
    ev[n, EV_V0] = v0
    ev[n, EV_V0 + 1] = v1
    ev[n, EV_V0 + 2] = v2
    ev[n, EV_V0 + 3] = v3
    ev[n, EV_V0 + 4] = v4
    ev[n, EV_V0 + 5] = v5
    return n + 1


@njit(cache=True)
def _flush_fast(cs, ch, ev, n, p):
    if cs[ch, C_FP_ON] > 0 and cs[ch, C_FP_SPEECH] >= p[P_FAST_MIN_S]:
        n = _emit(ev, n, K_FAST_SPEECH, ch, cs[ch, C_FP_START], cs[ch, C_FP_END],
                  cs[ch, C_FP_RATE], p[P_FAST_RATE], cs[ch, C_FP_SPEECH], cs[ch, C_FP_NUC], 0.0, 0.0)
    cs[ch, C_FP_ON] = 0.0
    return n


@njit(cache=True)
def _flush_agitation(cs, ch, ev, n):
    """Report a pending agitation episode: values v0..v9 = pitch up (st), loudness up (dB),
    pitch (Hz), reference pitch (Hz), loudness (dBFS), reference loudness (dBFS), effort up
    (dB), effort (dB), reference effort (dB), reference kind (REF_*), spectral slope (dB/octave)."""
    if cs[ch, C_AG_ON] > 0:
        k = n
        n = _emit(ev, n, K_AGITATION, ch, cs[ch, C_AG_START], cs[ch, C_AG_END],
                  cs[ch, C_AG_DP], cs[ch, C_AG_DL], cs[ch, C_AG_PITCH],
                  cs[ch, C_AG_BP], cs[ch, C_AG_E], cs[ch, C_AG_BE])
        if n > k:
            ev[k, EV_V0 + 6] = cs[ch, C_AG_DE]
            ev[k, EV_V0 + 7] = cs[ch, C_AG_EFF]
            ev[k, EV_V0 + 8] = cs[ch, C_AG_BEFF]
            ev[k, EV_V0 + 9] = cs[ch, C_AG_REF]
            ev[k, EV_V0 + 10] = cs[ch, C_AG_SLOPE]
        cs[ch, C_AG_ON] = 0.0
    return n


@njit(cache=True)
def _end_utterance(cs, pbuf, ch, ev, n, p):
    """Judge a finished utterance for speaking rate and agitation."""
    cs[ch, C_UTT_ACTIVE] = 0.0
    start = cs[ch, C_UTT_START]
    span = cs[ch, C_LAST_VOICED] - start
    speech_s = cs[ch, C_UTT_NVOICED] * FRAME_S
    if span < FRAME_S:
        return n
    rate = cs[ch, C_UTT_NUCLEI] / span
    if ch == 0 and span >= p[P_FAST_UTT_MIN] and rate > p[P_FAST_RATE]:
        if cs[ch, C_FP_ON] > 0 and start - cs[ch, C_FP_END] <= p[P_MERGE_GAP]:
            tot = cs[ch, C_FP_SPEECH] + span
            cs[ch, C_FP_RATE] = (cs[ch, C_FP_RATE] * cs[ch, C_FP_SPEECH] + rate * span) / tot
            cs[ch, C_FP_SPEECH] = tot
            cs[ch, C_FP_NUC] += cs[ch, C_UTT_NUCLEI]
            cs[ch, C_FP_END] = cs[ch, C_LAST_VOICED]
        else:
            n = _flush_fast(cs, ch, ev, n, p)
            cs[ch, C_FP_ON] = 1.0
            cs[ch, C_FP_START] = start
            cs[ch, C_FP_END] = cs[ch, C_LAST_VOICED]
            cs[ch, C_FP_RATE] = rate
            cs[ch, C_FP_SPEECH] = span
            cs[ch, C_FP_NUC] = cs[ch, C_UTT_NUCLEI]
    else:
        n = _flush_fast(cs, ch, ev, n, p)

    npitch = int(cs[ch, C_UTT_NPITCH])
    if npitch < 10 or speech_s <= 0:
        return n
    logp = math.log2(np.median(pbuf[ch, :npitch]))
    loud = cs[ch, C_UTT_ESUM] / cs[ch, C_UTT_NVOICED]
    plo = cs[ch, C_UTT_PLO]
    eff = 10.0 * math.log10(max(cs[ch, C_UTT_PALL] - plo, 1e-3 * plo) / plo) if plo > 0.0 else p[P_PRIOR_EFFORT]
    pmid = cs[ch, C_UTT_PMID]
    slope = 5.0 * math.log10(max(cs[ch, C_UTT_PHIGH], 1e-3 * pmid) / pmid) if pmid > 0.0 else p[P_PRIOR_SLOPE] - 1.0
    o = 1 - ch
    agitated = False
    teach = False
    if cs[ch, C_BASE_W] >= p[P_BASELINE_S]:
        # against the speaker's own calm speech
        ref = REF_OWN
        bp, be, beff = 2.0 ** cs[ch, C_BASE_LOGP], cs[ch, C_BASE_E], cs[ch, C_BASE_EFF]
        dp = 12.0 * (logp - cs[ch, C_BASE_LOGP])
        dl = loud - be
        de = eff - beff
        up_p, up_l, up_e = dp >= p[P_AG_PITCH_ST], dl >= p[P_AG_LOUD_DB], de >= p[P_AG_EFFORT_DB]
        if speech_s >= p[P_AG_MIN_S] and ((up_p and (up_l or up_e))
                                          or (up_l and up_e and dp >= p[P_AG_PITCH_MIN2])):
            agitated = True
        f = p[P_TEACH_FRAC]
        teach = dp < f * p[P_AG_PITCH_ST] or (dl < f * p[P_AG_LOUD_DB] and de < f * p[P_AG_EFFORT_DB])
    else:
        # no calm speech of this speaker yet: a prior for calm voices' effort, and the other
        # party's calm loudness as a loudness reference when they have spoken enough
        ref = REF_PRIOR
        bp, be, beff = 0.0, 0.0, p[P_PRIOR_EFFORT]
        dp = 0.0
        dl = 0.0
        de = eff - beff
        if cs[o, C_BASE_W] >= p[P_BASELINE_S]:
            ref = REF_OTHER
            be = cs[o, C_BASE_E]
            dl = loud - be
        cap = p[P_PRIOR_LOUD_CAP]
        score = de + p[P_PRIOR_LOUD_W] * max(-cap, min(cap, dl))
        if (speech_s >= p[P_AG_MIN_S] and score >= p[P_PRIOR_SCORE] and de >= p[P_PRIOR_MIN]
                and slope >= p[P_PRIOR_SLOPE]):
            agitated = True
        # loudness against another channel depends on the line's gains: only effort decides calm;
        # and after agitated speech, only speech calmer than it (lower, or quieter) is calm
        teach = de < p[P_PRIOR_CALM] or slope < p[P_PRIOR_CALM_SLOPE]
        if teach and cs[ch, C_HOT_W] > 0.0:
            teach = (12.0 * (cs[ch, C_HOT_LOGP] - logp) >= p[P_HOT_PITCH]
                     or cs[ch, C_HOT_E] - loud >= p[P_HOT_LOUD])
        if agitated:
            w0 = cs[ch, C_HOT_W]
            tot = w0 + speech_s
            cs[ch, C_HOT_LOGP] = (cs[ch, C_HOT_LOGP] * w0 + logp * speech_s) / tot
            cs[ch, C_HOT_E] = (cs[ch, C_HOT_E] * w0 + loud * speech_s) / tot
            cs[ch, C_HOT_W] = tot
    if agitated:
        if cs[ch, C_AG_ON] > 0 and start - cs[ch, C_AG_END] <= p[P_MERGE_GAP]:
            w0 = cs[ch, C_AG_SPEECH]
            tot = w0 + speech_s
            cs[ch, C_AG_DP] = (cs[ch, C_AG_DP] * w0 + dp * speech_s) / tot
            cs[ch, C_AG_DL] = (cs[ch, C_AG_DL] * w0 + dl * speech_s) / tot
            cs[ch, C_AG_DE] = (cs[ch, C_AG_DE] * w0 + de * speech_s) / tot
            cs[ch, C_AG_PITCH] = (cs[ch, C_AG_PITCH] * w0 + 2.0 ** logp * speech_s) / tot
            cs[ch, C_AG_E] = (cs[ch, C_AG_E] * w0 + loud * speech_s) / tot
            cs[ch, C_AG_EFF] = (cs[ch, C_AG_EFF] * w0 + eff * speech_s) / tot
            cs[ch, C_AG_SLOPE] = (cs[ch, C_AG_SLOPE] * w0 + slope * speech_s) / tot
            cs[ch, C_AG_SPEECH] = tot
            cs[ch, C_AG_END] = cs[ch, C_LAST_VOICED]
        else:
            n = _flush_agitation(cs, ch, ev, n)
            cs[ch, C_AG_ON] = 1.0
            cs[ch, C_AG_START] = start
            cs[ch, C_AG_END] = cs[ch, C_LAST_VOICED]
            cs[ch, C_AG_DP] = dp
            cs[ch, C_AG_DL] = dl
            cs[ch, C_AG_DE] = de
            cs[ch, C_AG_PITCH] = 2.0 ** logp
            cs[ch, C_AG_E] = loud
            cs[ch, C_AG_EFF] = eff
            cs[ch, C_AG_SLOPE] = slope
            cs[ch, C_AG_SPEECH] = speech_s
            cs[ch, C_AG_REF] = ref
            cs[ch, C_AG_BP] = bp
            cs[ch, C_AG_BE] = be
            cs[ch, C_AG_BEFF] = beff
    else:
        n = _flush_agitation(cs, ch, ev, n)
        if teach:
            # calm speech teaches the reference; memory is capped so it follows the speaker slowly
            w0 = min(cs[ch, C_BASE_W], p[P_BASE_MAX_W])
            tot = w0 + speech_s
            cs[ch, C_BASE_LOGP] = (cs[ch, C_BASE_LOGP] * w0 + logp * speech_s) / tot
            cs[ch, C_BASE_E] = (cs[ch, C_BASE_E] * w0 + loud * speech_s) / tot
            cs[ch, C_BASE_EFF] = (cs[ch, C_BASE_EFF] * w0 + eff * speech_s) / tot
            cs[ch, C_BASE_W] = cs[ch, C_BASE_W] + speech_s
    return n


@njit(cache=True)
def _nucleus(cs, ch, v, tt, thr, voiced, p):
    """Hysteresis peak picking on the envelope; counts a syllable nucleus per voiced peak
    (a vowel is voiced: loud unvoiced bursts and fricatives do not count)."""
    if cs[ch, C_PK_MODE] > 0:  # rising: follow the maximum
        if v > cs[ch, C_PK_VAL]:
            cs[ch, C_PK_VAL] = v
            cs[ch, C_PK_T] = tt
            cs[ch, C_PK_VOICED] = voiced
        elif v < cs[ch, C_PK_VAL] - p[P_PEAK_DB]:
            if (cs[ch, C_PK_VAL] > thr and cs[ch, C_PK_T] - cs[ch, C_PK_LAST] >= p[P_PEAK_MIN_DIST]
                    and cs[ch, C_UTT_ACTIVE] > 0 and (p[P_PEAK_VOICED] == 0.0 or cs[ch, C_PK_VOICED] > 0)):
                cs[ch, C_UTT_NUCLEI] += 1.0
                cs[ch, C_PK_LAST] = cs[ch, C_PK_T]
            cs[ch, C_PK_MODE] = 0.0
            cs[ch, C_PK_VAL] = v
    else:  # falling: follow the minimum
        if v < cs[ch, C_PK_VAL]:
            cs[ch, C_PK_VAL] = v
        elif v > cs[ch, C_PK_VAL] + p[P_PEAK_DB]:
            cs[ch, C_PK_MODE] = 1.0
            cs[ch, C_PK_VAL] = v
            cs[ch, C_PK_T] = tt
            cs[ch, C_PK_VOICED] = voiced


@njit(cache=True)
def decide(feat, n_frames, cs, gs, pbuf, p, ev, vad_out):
    """Run the state machines over n_frames of features feat[ch, i, :]; returns #events.

    vad_out[ch, i] gets the speech state (after onset/hang-over) of every frame.
    """
    n = 0
    bucket = p[P_FLOOR_BUCKET]
    for i in range(n_frames):
        t = gs[G_T] + FRAME_S
        gs[G_T] = t
        for ch in range(2):
            e = feat[ch, i, F_EDB]
            # noise floor: minimum energy over the last one to two buckets of frames
            if e < cs[ch, C_FLOOR_CUR]:
                cs[ch, C_FLOOR_CUR] = e
            cs[ch, C_FLOOR_N] += 1.0
            if cs[ch, C_FLOOR_N] >= bucket:
                cs[ch, C_FLOOR_PREV] = cs[ch, C_FLOOR_CUR]
                cs[ch, C_FLOOR_CUR] = 1e9
                cs[ch, C_FLOOR_N] = 0.0
            floor = min(cs[ch, C_FLOOR_CUR], cs[ch, C_FLOOR_PREV])
            thr = max(floor + p[P_VAD_MARGIN], p[P_VAD_MIN])
            voiced = e > thr
            if voiced:
                cs[ch, C_RUN] += 1.0
                if cs[ch, C_SPEECH] == 0.0 and cs[ch, C_RUN] >= p[P_ONSET_FRAMES]:
                    cs[ch, C_SPEECH] = 1.0
                    cs[ch, C_SPEECH_START] = t - cs[ch, C_RUN] * FRAME_S
                    cs[ch, C_EVER_SPOKE] = 1.0
                    gs[G_SIL_DONE] = 0.0
                if cs[ch, C_SPEECH] > 0:
                    cs[ch, C_LAST_VOICED] = t
            else:
                cs[ch, C_RUN] = 0.0
                if cs[ch, C_SPEECH] > 0 and t - cs[ch, C_LAST_VOICED] > p[P_HANGOVER]:
                    cs[ch, C_SPEECH] = 0.0
            vad_out[ch, i] = cs[ch, C_SPEECH]

            # utterances: speech runs separated by pauses shorter than P_UTT_GAP
            if cs[ch, C_SPEECH] > 0 and voiced:
                if cs[ch, C_UTT_ACTIVE] == 0.0:
                    cs[ch, C_UTT_ACTIVE] = 1.0
                    cs[ch, C_UTT_START] = cs[ch, C_SPEECH_START]
                    cs[ch, C_UTT_NVOICED] = 0.0
                    cs[ch, C_UTT_NUCLEI] = 0.0
                    cs[ch, C_UTT_NPITCH] = 0.0
                    cs[ch, C_UTT_ESUM] = 0.0
                    cs[ch, C_UTT_PALL] = 0.0
                    cs[ch, C_UTT_PLO] = 0.0
                    cs[ch, C_UTT_PMID] = 0.0
                    cs[ch, C_UTT_PHIGH] = 0.0
                cs[ch, C_UTT_NVOICED] += 1.0
                cs[ch, C_UTT_ESUM] += e
                f0 = feat[ch, i, F_F0]
                k = int(cs[ch, C_UTT_NPITCH])
                if f0 > 0.0 and k < MAX_UTT_FRAMES:
                    pbuf[ch, k] = f0
                    cs[ch, C_UTT_NPITCH] = k + 1.0
                low = feat[ch, i, F_LOW]
                if f0 > 0.0 and low > NO_LOW:
                    cs[ch, C_UTT_PALL] += 10.0 ** (0.1 * e)
                    cs[ch, C_UTT_PLO] += 10.0 ** (0.1 * low)
                    cs[ch, C_UTT_PMID] += 10.0 ** (0.1 * feat[ch, i, F_MID])
                    cs[ch, C_UTT_PHIGH] += 10.0 ** (0.1 * feat[ch, i, F_HIGH])
            has_f0 = 1.0 if feat[ch, i, F_F0] > 0.0 else 0.0
            _nucleus(cs, ch, feat[ch, i, F_ENV0], t - FRAME_S, thr, has_f0, p)
            _nucleus(cs, ch, feat[ch, i, F_ENV1], t - 0.5 * FRAME_S, thr, has_f0, p)
            if cs[ch, C_UTT_ACTIVE] > 0 and t - cs[ch, C_LAST_VOICED] >= p[P_UTT_GAP]:
                n = _end_utterance(cs, pbuf, ch, ev, n, p)
            # pending episodes are reported once the speaker has moved on
            if cs[ch, C_UTT_ACTIVE] == 0.0:
                if cs[ch, C_FP_ON] > 0 and t - cs[ch, C_FP_END] > p[P_MERGE_GAP]:
                    n = _flush_fast(cs, ch, ev, n, p)
                if cs[ch, C_AG_ON] > 0 and t - cs[ch, C_AG_END] > p[P_MERGE_GAP]:
                    n = _flush_agitation(cs, ch, ev, n)

        # talk-over: both in speech; the interrupter is whoever started later
        both = cs[0, C_SPEECH] > 0 and cs[1, C_SPEECH] > 0
        if both:
            if gs[G_OV_ON] == 0.0:
                gs[G_OV_ON] = 1.0
                gs[G_OV_DONE] = 0.0
                who = 1 if cs[1, C_SPEECH_START] > cs[0, C_SPEECH_START] else 0
                gs[G_OV_WHO] = who
                gs[G_OV_START] = cs[who, C_SPEECH_START]
            gs[G_OV_LAST_BOTH] = t
            gs[G_OV_END] = min(cs[0, C_LAST_VOICED], cs[1, C_LAST_VOICED])
        if gs[G_OV_ON] > 0:
            dur = gs[G_OV_END] - gs[G_OV_START]
            if not both and t - gs[G_OV_LAST_BOTH] > p[P_OV_GAP]:
                gs[G_OV_ON] = 0.0
                if gs[G_OV_DONE] == 0.0 and dur >= p[P_TALK_OVER]:
                    n = _emit(ev, n, K_TALK_OVER, gs[G_OV_WHO], gs[G_OV_START], gs[G_OV_END],
                              dur, 0.0, 0.0, 0.0, 0.0, 0.0)
            elif gs[G_OV_DONE] == 0.0 and dur >= p[P_TALK_OVER] + p[P_OV_CAP]:
                gs[G_OV_DONE] = 1.0  # still going: report now, with the overlap so far
                n = _emit(ev, n, K_TALK_OVER, gs[G_OV_WHO], gs[G_OV_START], gs[G_OV_END],
                          dur, 1.0, 0.0, 0.0, 0.0, 0.0)

        # dead air: nobody has spoken for P_LONG_SILENCE; reported while it lasts
        last = max(cs[0, C_LAST_VOICED], cs[1, C_LAST_VOICED])
        if cs[0, C_SPEECH] == 0.0 and cs[1, C_SPEECH] == 0.0 and gs[G_SIL_DONE] == 0.0:
            if t - last >= p[P_LONG_SILENCE]:
                gs[G_SIL_DONE] = 1.0
                n = _emit(ev, n, K_LONG_SILENCE, -1, last, t, t - last, 1.0, 0.0, 0.0, 0.0, 0.0)
    return n


@njit(cache=True)
def finish(cs, gs, pbuf, p, ev):
    """End of call: close open utterances, overlaps and pending episodes."""
    n = 0
    t = gs[G_T]
    for ch in range(2):
        if cs[ch, C_UTT_ACTIVE] > 0:
            n = _end_utterance(cs, pbuf, ch, ev, n, p)
        n = _flush_fast(cs, ch, ev, n, p)
        n = _flush_agitation(cs, ch, ev, n)
    if gs[G_OV_ON] > 0:
        gs[G_OV_ON] = 0.0
        dur = gs[G_OV_END] - gs[G_OV_START]
        if gs[G_OV_DONE] == 0.0 and dur >= p[P_TALK_OVER]:
            n = _emit(ev, n, K_TALK_OVER, gs[G_OV_WHO], gs[G_OV_START], gs[G_OV_END],
                      dur, 0.0, 0.0, 0.0, 0.0, 0.0)
    return n
