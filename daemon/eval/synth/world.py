"""Formant-preserving pitch shift for the natural test-call voice, with the WORLD vocoder
(pyworld, the "voices" extra; test tooling only, the daemon never imports it).

A plain pitch shift (sox `pitch`, resampling) moves the formants with f0: a few semitones
up turns a voice into a smaller, strained one, whose extra energy above 1 kHz reads as
vocal effort. People raise their pitch with their larynx, not by shrinking their vocal
tract: their formants stay where they are. WORLD splits speech into f0 (Harvest), the
spectral envelope (CheapTrick) and aperiodicity (D4C), so f0 is scaled alone and the
envelope is kept, or (a second, higher voice: women's formants sit ~10-20 % above men's)
stretched along frequency by its own, realistic factor.

WORLD draws its noise from a generator reseeded on every call (no global state), so the
same input gives the same samples, also from parallel threads (the wrapper releases the GIL).
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache

import numpy as np

PACKAGE = "pyworld"
F0_FLOOR, F0_CEIL = 65.0, 320.0    # Harvest's search range: the Piper voice speaks in ~80-250 Hz
FRAME_MS = 5.0


class WorldError(Exception):
    """pyworld is not installed or cannot be loaded."""


@lru_cache(maxsize=1)
def _pw():
    """The compiled pyworld module. pyworld 0.3.5's package __init__ asks pkg_resources for
    its version, and setuptools 81+ no longer ships pkg_resources: then load the compiled
    extension next to it directly (all the functions live there)."""
    try:
        import pyworld
        return pyworld
    except ImportError as exc:
        if "pkg_resources" not in str(exc):
            raise WorldError(f"{PACKAGE} is not installed: pip install -e '.[voices]'") from None
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WorldError(f"{PACKAGE} is not installed: pip install -e '.[voices]'")
    from pathlib import Path
    exts = sorted(Path(list(spec.submodule_search_locations)[0]).glob("pyworld*.so"))
    if not exts:
        raise WorldError(f"{PACKAGE}: no compiled extension found next to {spec.origin}")
    ext = importlib.util.spec_from_file_location("pyworld.pyworld", exts[0])
    mod = importlib.util.module_from_spec(ext)
    ext.loader.exec_module(mod)
    return mod


def available() -> bool:
    try:
        _pw()
    except (WorldError, ImportError, OSError):
        return False
    return True


def warp_envelope(sp: np.ndarray, scale: float) -> np.ndarray:
    """Stretch each frame's envelope (frames x bins, linear frequency) along frequency by
    ``scale``: what was at f moves to f * scale (bins past the top keep the last value)."""
    if scale == 1.0:
        return sp
    n = sp.shape[1]
    pos = np.minimum(np.arange(n) / scale, n - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    w = pos - lo
    return np.ascontiguousarray(sp[:, lo] * (1 - w) + sp[:, hi] * w)


def shift(x: np.ndarray, sr: int, semitones: float, formant_scale: float = 1.0) -> np.ndarray:
    """``x`` (float mono) with f0 ``semitones`` up (down if negative) and the spectral
    envelope stretched by ``formant_scale`` (1.0: formants kept); float32, same length."""
    pw = _pw()
    xd = np.ascontiguousarray(x, dtype=np.float64)
    f0, t = pw.harvest(xd, sr, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=FRAME_MS)
    sp = pw.cheaptrick(xd, f0, t, sr)
    ap = pw.d4c(xd, f0, t, sr)
    f0 = f0 * 2.0 ** (semitones / 12.0)
    sp = warp_envelope(sp, formant_scale)
    ap = warp_envelope(ap, formant_scale)
    y = pw.synthesize(f0, sp, ap, sr, FRAME_MS)
    out = np.zeros(len(x), dtype=np.float32)
    m = min(len(x), len(y))
    out[:m] = y[:m]
    return out
