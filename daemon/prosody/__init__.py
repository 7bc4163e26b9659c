"""Prosody detectors: Numba kernels, NumPy reference, per-call sessions."""
