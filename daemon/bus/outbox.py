"""Persistent FIFO outbox for QoS >= 1 messages.

A message is written here before it is handed to the broker and deleted only when
the broker acknowledges it, so broker outages, daemon restarts and power cuts lose
nothing that was accepted. SQLite in WAL mode with synchronous=NORMAL: a commit
survives a process crash; a power cut may lose the last few commits at most, the
file itself stays consistent.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_MAX_ROWS = 100_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: ids never go back, so FIFO by id holds after a drain
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL
)
"""


class OutboxError(RuntimeError):
    """The outbox file cannot be opened or used; the message names the file."""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool


class Outbox:
    """Bounded FIFO of messages waiting for a broker acknowledgement. Thread-safe.

    ``path=None`` keeps it in memory (tests, replay): same behaviour, nothing survives.
    When ``max_rows`` is reached the oldest message is dropped and counted in ``dropped``.
    """

    def __init__(self, path: Path | None, max_rows: int = DEFAULT_MAX_ROWS):
        if max_rows < 1:
            raise ValueError(f"outbox max_rows must be >= 1, got {max_rows}")
        self.path = Path(path) if path is not None else None
        self.max_rows = max_rows
        self.dropped = 0
        self._lock = threading.Lock()
        where = ":memory:" if self.path is None else str(self.path)
        try:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # it holds transcripts and alerts: owner only (SQLite gives its -wal and -shm
                # files the database file's mode)
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
                os.chmod(self.path, 0o600)
            self._db = sqlite3.connect(where, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            self._count = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        except (sqlite3.Error, OSError) as exc:
            raise OutboxError(f"cannot open outbox {where}: {exc}") from exc
        if self._count:
            log.info("outbox %s holds %d unsent message(s) from before", where, self._count)

    def __len__(self) -> int:
        return self._count

    @property
    def depth(self) -> int:
        return self._count

    def put(self, topic: str, payload: bytes, qos: int, retain: bool) -> int:
        """Append a message; returns its id (ids only grow)."""
        try:
            return self._put(topic, payload, qos, retain)
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot write to outbox {self.path or ':memory:'}: {exc}") from exc

    def _put(self, topic: str, payload: bytes, qos: int, retain: bool) -> int:
        with self._lock:
            over = self._count + 1 - self.max_rows
            if over > 0:
                # full: the oldest goes, the newest state matters more
                self._db.execute("DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)", (over,))
                self._count -= over
                self.dropped += over
                if self.dropped == over or self.dropped % 1000 == 0:
                    log.warning("outbox full (%d messages): dropped the oldest, %d dropped so far",
                                self.max_rows, self.dropped)
            cur = self._db.execute("INSERT INTO outbox (topic, payload, qos, retain) VALUES (?, ?, ?, ?)",
                                   (topic, payload, qos, int(retain)))
            self._count += 1
            return int(cur.lastrowid)

    def after(self, last_id: int, limit: int) -> list[OutboxRow]:
        """The oldest ``limit`` messages with id > last_id, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, qos, retain FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                (last_id, limit)).fetchall()
        return [OutboxRow(r[0], r[1], bytes(r[2]), r[3], bool(r[4])) for r in rows]

    def delete(self, row_id: int) -> bool:
        """Remove an acknowledged message; False if it was already gone (dropped when full)."""
        with self._lock:
            n = self._db.execute("DELETE FROM outbox WHERE id = ?", (row_id,)).rowcount
            self._count -= n
            return n > 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "Outbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
