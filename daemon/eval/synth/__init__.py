"""Synthetic test calls: scripts, espeak-ng rendering, a seeded call generator, and a scorer."""
