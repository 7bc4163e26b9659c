"""Benchmarks: every `callcue bench ...` (prosody, asr, assist, embed, store, tui), and
the README screenshot renderer, which drives the headless TUI the way `bench tui` does.

Each prints figures with a reference measured in the same run; none is a timed test.
Runtime code never imports this package (tests/test_layout.py).
"""
from __future__ import annotations

from pathlib import Path


def demo_calls() -> list[Path]:
    """The rendered demo calls (flows/demo/calls/*.wav): the default input of `bench prosody` and `bench asr`."""
    return sorted((Path(__file__).resolve().parents[2] / "flows" / "demo" / "calls").glob("*.wav"))
