"""Plain NumPy implementation of the same detectors, for the benchmark and for tests.

Features are vectorised with NumPy over all frames of a block (what a careful NumPy
programmer writes); the decision state machines are inherently sequential, so they run
as interpreted Python: the very source of kernels.py executed without Numba. The
benchmark compares this against the compiled kernels on the same audio.
"""
from __future__ import annotations

import inspect
import types

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import kernels
from .params import (
    F_EDB, F_ENV0, F_ENV1, F_F0, F_HIGH, F_LOW, F_MID, HALFBAND_TAPS, NO_LOW, PITCH_BUF,
    PITCH_RATE, YIN_TAU_MAX, YIN_TAU_MIN, YIN_WINDOW,
)
from .kernels import DB_FS


def _interpreted_kernels() -> types.ModuleType:
    """kernels.py executed with `njit` as a no-op decorator: same logic, pure Python."""
    src = inspect.getsource(kernels)
    marker = "from numba import njit"
    assert marker in src
    src = src.replace(marker, "def njit(*a, **k):\n    return lambda f: f")
    mod = types.ModuleType("callcue.daemon.prosody._kernels_interpreted")
    mod.__dict__["__package__"] = kernels.__package__
    exec(compile(src, kernels.__file__, "exec"), mod.__dict__)
    return mod


_py = _interpreted_kernels()
decide = _py.decide
finish = _py.finish


def _power_rows(rows: np.ndarray) -> np.ndarray:
    d = rows - rows.mean(axis=-1, keepdims=True)
    return (d * d).mean(axis=-1)


def _energy_db_rows(rows: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10(_power_rows(rows) + 1e-4) - DB_FS


def _band_db(p: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(p, 0.0) + 1e-4) - DB_FS


def _fir(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """y[k] = sum_j taps[j] * x[k - j] (zeros before x starts)."""
    return np.convolve(x, taps)[: len(x)]


def yin_rows(w: np.ndarray, thresh: float) -> np.ndarray:
    """YIN over each row of w (n, >= YIN_WINDOW + YIN_TAU_MAX) at 4 kHz; Hz or 0."""
    n = w.shape[0]
    d = np.ones((n, YIN_TAU_MAX + 1))
    ref = w[:, :YIN_WINDOW]
    for tau in range(1, YIN_TAU_MAX + 1):
        diff = ref - w[:, tau:tau + YIN_WINDOW]
        d[:, tau] = (diff * diff).sum(axis=1)
    run = np.cumsum(d[:, 1:], axis=1)
    taus = np.arange(1, YIN_TAU_MAX + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cm = np.where(run > 0, d[:, 1:] * taus / run, 1.0)
    d[:, 1:] = cm
    below = d[:, YIN_TAU_MIN:] < thresh
    found = below.any(axis=1)
    tau = YIN_TAU_MIN + below.argmax(axis=1)
    # walk down to the local minimum
    for _ in range(YIN_TAU_MAX - YIN_TAU_MIN):
        nxt = np.minimum(tau + 1, YIN_TAU_MAX)
        step = found & (tau + 1 <= YIN_TAU_MAX) & (d[np.arange(n), nxt] < d[np.arange(n), tau])
        if not step.any():
            break
        tau = tau + step
    best = tau.astype(np.float64)
    inner = found & (tau > YIN_TAU_MIN) & (tau < YIN_TAU_MAX)
    rows = np.arange(n)[inner]
    t = tau[inner]
    a, b, c = d[rows, t - 1], d[rows, t], d[rows, t + 1]
    den = a - 2.0 * b + c
    ok = den > 0
    best[np.flatnonzero(inner)[ok]] = t[ok] + 0.5 * (a[ok] - c[ok]) / den[ok]
    return np.where(found, PITCH_RATE / best, 0.0)


def frame_features(buf, hist, fl, taps, pitch_min_dbfs, yin_thresh, out):
    n = (len(buf) - hist) // fl
    half = fl // 2
    frames = buf[hist:hist + n * fl].reshape(n, fl)
    e = _energy_db_rows(frames)
    out[:n, F_EDB] = e
    out[:n, F_ENV1] = e
    win = sliding_window_view(buf, fl)
    out[:n, F_ENV0] = _energy_db_rows(win[hist - half: hist - half + n * fl: fl])
    out[:n, F_F0] = 0.0
    out[:n, F_LOW] = NO_LOW
    out[:n, F_MID] = NO_LOW
    out[:n, F_HIGH] = NO_LOW
    loud = np.flatnonzero(e > pitch_min_dbfs)
    if len(loud):
        dec = fl * 2 // PITCH_BUF
        hb = PITCH_BUF // 2
        y = _fir(buf, taps)
        base = hist + loud * fl - fl
        idx = base[:, None] + dec * np.arange(PITCH_BUF)[None, :] + dec - 1
        w = y[idx]
        f0 = yin_rows(w, yin_thresh)
        out[loud, F_F0] = f0
        # vocal-effort bands of voiced frames (as kernels.frame_features): 0-1 kHz from the 4 kHz
        # signal and 0-0.5 kHz from it taken at 2 kHz, 0-4 and 0-2 kHz from the frame (at 16 kHz
        # halved to 8 kHz first), all with the one half-band filter
        voiced = f0 > 0
        loud, w = loud[voiced], w[voiced]
        p1 = _power_rows(w[:, hb:])
        nt = len(HALFBAND_TAPS)
        w2 = w[:, 1::2]                                   # the 1 kHz signal at 2 kHz (odd samples)
        win = sliding_window_view(w2, nt, axis=1)[:, hb // 2 - nt + 1: hb - nt + 1]
        p05 = _power_rows(win @ HALFBAND_TAPS[::-1])
        starts = hist + loud * fl
        if dec == 2:
            frames8 = buf[starts[:, None] + np.arange(fl)[None, :]]
            y2 = _fir(buf, HALFBAND_TAPS)[starts[:, None] + np.arange(fl)[None, :]]
        else:
            x8 = _fir(buf, HALFBAND_TAPS)[1::2]             # x8[j] = the half-band output at sample 2j + 1
            j8 = starts[:, None] // 2 + np.arange(fl // 2)[None, :]
            frames8 = x8[j8]
            y2 = _fir(x8, HALFBAND_TAPS)[j8]
        out[loud, F_LOW] = _band_db(p1)
        out[loud, F_MID] = _band_db(p1 - p05)
        out[loud, F_HIGH] = _band_db(_power_rows(frames8) - _power_rows(y2))
