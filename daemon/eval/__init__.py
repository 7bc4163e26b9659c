"""Evaluation: test-call synthesis (`synth/`) and every scorer (`score_*.py`, `wer.py`).

Measures the runtime from outside; nothing under capture, prosody, asr, assist, bus,
store, app, line, replay or tui imports it (tests/test_layout.py keeps it so). Kept
empty so `callcue.daemon.eval.wer` can be imported without eval's heavier modules.
"""
