"""The central call store: one row per call summary, for reports over a whole center.

SQLite (stdlib) in one file, WAL, one writer: `callcue qa` and `callcue collect` write,
`callcue report` reads. The schema and every query are plain SQL that PostgreSQL runs
too (README, "Central store"). Modules: schema.py (the DDL), records.py (a summary
payload -> rows), store.py (Warehouse: open, ingest, the bulk run's file ledger).
"""
