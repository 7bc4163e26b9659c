"""`callcue bench asr` helpers that decide what the live trial measures."""
from __future__ import annotations

import numpy as np

from callcue.daemon.bench.asr import STAGGER_S, _staggered
from callcue.daemon.replay import load_call
from helpers import write_wav


def test_lines_sharing_a_recording_start_at_staggered_points(tmp_path):
    sr = 8000
    rng = np.random.default_rng(3)
    a = write_wav(tmp_path / "a.wav", rng.integers(-3000, 3000, (30 * sr, 2)).astype(np.int16), sr)
    b = write_wav(tmp_path / "b.wav", rng.integers(-3000, 3000, (20 * sr, 2)).astype(np.int16), sr)
    (tmp_path / "x").mkdir()
    out = _staggered([a, b], 5, tmp_path / "x")
    assert out[:2] == [a, b]                      # the first line of each recording plays it as it is
    _, src = load_call(a)
    for path, k in ((out[2], 1), (out[4], 2)):    # later lines of recording a: rotated k x STAGGER_S
        _, got = load_call(path)
        assert np.array_equal(got, np.roll(src, -int(k * STAGGER_S * sr) % len(src), axis=0))
    _, got_b = load_call(out[3])
    assert not np.array_equal(got_b[:sr], load_call(b)[1][:sr]) and len(got_b) == 20 * sr
