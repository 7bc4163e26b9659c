"""`Warehouse`: the central store folder (DIR/calls.sqlite3), opened for writing by one
process at a time (DIR/.writer.lock, flock) or read-only by any number of readers.

Why SQLite and not DuckDB: it is in the standard library (no extra dependency on a box
or a QA PC), its WAL mode lets one writer (the collector, a QA run) append call by call
while reports read a consistent snapshot, and single-row inserts with a commit each are
what a collector does (DuckDB is faster for scans but is built for bulk loads, allows
one process per file, and would be a new dependency). The aggregations of a report are
indexed GROUP BYs that SQLite runs over a million calls in seconds (`callcue bench report`).
"""
from __future__ import annotations

import fcntl
import os
import sqlite3
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Iterator

from .records import Rows
from .schema import CALL_COLUMNS, INDEXES, TABLES, VERSION

DB_NAME = "calls.sqlite3"
LOCK_NAME = ".writer.lock"


class StoreError(Exception):
    pass


def db_path(folder: Path) -> Path:
    return Path(folder) / DB_NAME


class Warehouse:
    """One writer. `ingest(rows)` is idempotent on call_id (a second summary of the same call,
    e.g. a QoS 1 redelivery, changes nothing and returns False)."""

    def __init__(self, folder: Path | str, *, synchronous: str = "NORMAL"):
        self.folder = Path(folder)
        self._in_batch = False
        self.db = None
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.folder / LOCK_NAME, "a+")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise StoreError(f"{self.folder}: another process is writing to this store (one writer at a time: "
                             f"stop it, or give this run its own --store)") from None
        try:
            self.db = sqlite3.connect(db_path(self.folder), isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(f"PRAGMA synchronous={synchronous}")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("BEGIN")
            for ddl in TABLES + INDEXES:
                self.db.execute(ddl)
            self.db.execute("INSERT INTO meta (name, value) VALUES ('schema', ?) ON CONFLICT (name) DO NOTHING",
                            (str(VERSION),))
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._lock.close()
            raise StoreError(f"{db_path(self.folder)}: {exc}") from None
        got = self.db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
        if got is None or got[0] != str(VERSION):
            self.close()
            raise StoreError(f"{db_path(self.folder)}: schema version {got[0] if got else '?'}, this callcue writes "
                             f"version {VERSION}; use a new --store folder")
        self._next_id = (self.db.execute("SELECT MAX(id) FROM calls").fetchone()[0] or 0) + 1
        self._in_batch = False
        cols = ", ".join(CALL_COLUMNS)
        marks = ", ".join("?" for _ in CALL_COLUMNS)
        self._insert_call = f"INSERT INTO calls ({cols}) VALUES ({marks}) ON CONFLICT (call_id) DO NOTHING"

    def close(self) -> None:
        if self.db is not None:
            if self._in_batch:
                self.db.execute("COMMIT")
            self.db.close()
            self.db = None
        self._lock.close()

    def __enter__(self) -> "Warehouse":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Many ingests in one transaction (bulk loads); committed at the end."""
        self.db.execute("BEGIN")
        self._in_batch = True
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            self._next_id = (self.db.execute("SELECT MAX(id) FROM calls").fetchone()[0] or 0) + 1
            raise
        finally:
            self._in_batch = False
        self.db.execute("COMMIT")

    def ingest(self, rows: Rows, qa_file: tuple | None = None) -> bool:
        """Store one call (and, for `callcue qa`, mark its recording done in the same
        transaction). True if the call was new."""
        own = not self._in_batch
        if own:
            self.db.execute("BEGIN")
        try:
            cid = self._next_id
            cur = self.db.execute(self._insert_call, tuple(cid if c == "id" else rows.call.get(c) for c in CALL_COLUMNS))
            new = cur.rowcount == 1
            if new:
                self._next_id += 1
                ex = self.db.executemany
                c = rows.call
                day, team, agent = c.get("day"), c.get("team"), c.get("agent")
                ex("INSERT INTO alerts (call, day, team, agent, kind, speaker, severity, t_start, t_end) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [(cid, day, team, agent, *a) for a in rows.alerts])
                ex("INSERT INTO offers (call, day, team, agent, offer, fitted, made) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   [(cid, day, team, agent, *o) for o in rows.offers])
                ex("INSERT INTO steps (call, day, flow, step, position, done) VALUES (?, ?, ?, ?, ?, ?)",
                   [(cid, day, *s) for s in rows.steps])
                ex("INSERT INTO score_items (call, item, title, weight, applies, points) VALUES (?, ?, ?, ?, ?, ?)",
                   [(cid, *i) for i in rows.score_items])
                ex("INSERT INTO issues (call, day, agent, kind, issue) VALUES (?, ?, ?, ?, ?)",
                   [(cid, day, agent, *i) for i in rows.issues])
            if qa_file is not None:
                self.mark_file(*qa_file, status="done", reason=None, call_id=rows.call["call_id"])
            if own:
                self.db.execute("COMMIT")
        except BaseException:
            if own:
                self.db.execute("ROLLBACK")
            raise
        return new

    # ---- the bulk run's ledger ----
    def mark_file(self, path: str, size: int, mtime_ns: int, audio_s: float | None = None,
                  elapsed_s: float | None = None, *, status: str, reason: str | None, call_id: str | None) -> None:
        self.db.execute(
            "INSERT INTO qa_files (path, size, mtime_ns, status, reason, call_id, audio_s, elapsed_s, finished) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET size = excluded.size, "
            "mtime_ns = excluded.mtime_ns, status = excluded.status, reason = excluded.reason, "
            "call_id = excluded.call_id, audio_s = excluded.audio_s, elapsed_s = excluded.elapsed_s, "
            "finished = excluded.finished",
            (path, size, mtime_ns, status, reason, call_id, audio_s, elapsed_s,
             datetime.now().isoformat(sep=" ", timespec="seconds")))

    def ledger(self) -> dict[str, tuple[int, int, str, str | None]]:
        """path -> (size, mtime_ns, status, reason) of every recording a run finished."""
        return {p: (s, m, st, r) for p, s, m, st, r in
                self.db.execute("SELECT path, size, mtime_ns, status, reason FROM qa_files")}

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    def has_call(self, call_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM calls WHERE call_id = ?", (call_id,)).fetchone() is not None


def open_readonly(folder: Path | str) -> sqlite3.Connection:
    """A reader's connection (WAL: it sees the last committed state while a writer goes on)."""
    path = db_path(Path(folder))
    if not path.is_file():
        raise StoreError(f"{folder}: no central store here ({DB_NAME} missing; `callcue qa` or `callcue collect` "
                         f"makes one)")
    uri = f"file:{os.path.abspath(path)}?mode=ro"
    return sqlite3.connect(uri, uri=True, check_same_thread=False)
