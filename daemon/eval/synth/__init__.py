"""Synthetic test calls: scripts, espeak-ng rendering and a seeded call generator (their
truth labels come from ../score_alerts.py, which also scores detected alerts)."""
