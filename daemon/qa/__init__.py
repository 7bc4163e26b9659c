"""`callcue qa`: the live pipeline (as `callcue replay`) over folders of recorded calls,
on every core, into the central store (daemon/warehouse). Modules: discover.py (which
recordings, mono pairs, metadata from names and sidecars), worker.py (one recogniser per
worker process), run.py (the pool, progress, resume, bad files).
"""
