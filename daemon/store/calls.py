"""The call store: every call's record and its events, in TinyDB files.

Files under `data_dir` (all JSON, all written atomically, see atomic.py):

    .lock                               flock: one process owns the store
    calls.json                          table "calls": open calls + the most recent
                                        `hot_limit` ended calls
    archive/YYYY-MM-DD.json             table "calls": older ended calls, by start day
    events/YYYY-MM-DD/<call_id>.<n>.json  table "events": a call's events, segment n
                                        holds at most `segment_events` of them
    seen.json                           each open call's last sign of life (`touch`), so a
                                        call a crash cut short keeps the time it ran

Why this shape: TinyDB rewrites a whole file on every write. One file for all
events would grow all day and be rewritten every few hundred milliseconds on a busy
floor (20 lines, an alert or transcript final every few seconds each). Here a flush
rewrites only the files that changed: calls.json (bounded: open + `hot_limit`
ended calls) and the current segment of each call that got events (bounded by
`segment_events`), so the cost of a flush does not grow with the day or the call.

Threads: one writer thread owns every TinyDB object. Callers (bus, assist, any
thread) validate their arguments, then put an operation on a bounded queue; the
writer applies operations to in-memory tables in queue order and flushes dirty
files at most every `flush_interval_s` (immediately when it has been idle longer),
and on close. Reads are queued too, so a read sees every write its caller made
before it and a consistent state (results are deep copies).

What a power cut or SIGKILL can lose: the operations applied since the last flush
(at most `flush_interval_s` plus the flush itself) and whatever was still queued.
It never leaves a broken file. A flush writes calls.json before the event files,
so after a crash a call's record may miss its last events batch, but events never
exist for a call the store does not know.

When the queue is full (only if the disk stalls: applying is in-memory):
- add_event never blocks: the event is dropped, counted in stats()["dropped_events"],
  logged, and add_event returns False. The audio/analysis path calls it.
- start_call, end_call, ack_alert, flag_call block for up to `block_s`, then raise
  StoreBusyError: a lost call boundary or supervisor action must not be silent.
- reads block up to `read_timeout_s`, then raise StoreBusyError.
"""
from __future__ import annotations

import copy
import fcntl
import glob
import hashlib
import json
import logging
import math
import os
import queue
import re
import threading
import time
import urllib.parse
from collections import OrderedDict
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterator

from tinydb import TinyDB
from tinydb.table import Document

from ..contract import now_iso
from .atomic import (AtomicJSONStorage, CorruptStoreError, StoreError, WriteBehind, atomic_write_bytes, dumps,
                     ensure_dir, read_json_file)

log = logging.getLogger(__name__)

SAFE_STEM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")  # used as a file name as it is
MAX_CALL_ID = 128
KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
SOURCES = ("cmd", "auto")
END_STATUSES = ("ended", "interrupted")
# written only by ack_alert / flag_call / correct_ticket, so the call record stays in step with its events
RESERVED_KINDS = ("ack", "flag", "ticket_update")
# a "summary" event (line/{line}/summary) also puts these on the call's record: the
# call's after-call results are read with the record, without its events
AFTERCALL_KEYS = ("summary", "ticket", "scorecard", "call_type")
SEEN_FILE = "seen.json"   # open calls' last sign of life (touch), for the duration of one a crash cut short
KEEP_RECENT_S = 600.0   # ended calls younger than this stay in calls.json whatever hot_limit says
CALLS_TABLE = "calls"
EVENTS_TABLE = "events"


class BadInput(StoreError, ValueError):
    """An argument the store cannot accept (also a ValueError)."""


class StoreBusyError(StoreError):
    """The writer queue stayed full (disk stalled) past the caller's time limit."""


class StoreLockedError(StoreError):
    """Another process owns this data directory."""


class StoreClosedError(StoreError):
    """The store was closed."""


class UnknownCallError(StoreError, LookupError):
    """No call with this id."""


class UnknownAlertError(StoreError, LookupError):
    """No alert with this id among the recent calls."""


class DuplicateCallError(StoreError):
    """start_call with an id already in use."""


class CallEndedError(StoreError):
    """end_call on a call that already ended."""


def day_of(iso: str) -> str:
    """YYYY-MM-DD of an ISO time, in the offset it was written with."""
    return datetime.fromisoformat(iso).date().isoformat()


def sort_key(iso: str) -> float:
    # naive times are local wall-clock; aware ones carry their offset
    return datetime.fromisoformat(iso).timestamp()


def _check_iso(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise BadInput(f"{what} must be an ISO 8601 string, got {type(value).__name__}")
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise BadInput(f"{what} {value!r} is not an ISO 8601 time") from None
    return value


def _check_call_id(call_id: Any) -> str:
    # phone systems' ids vary (SIP Call-IDs have '@', some have braces): accept any
    # printable text and make a file name of it in file_stem()
    if not isinstance(call_id, str) or not 0 < len(call_id) <= MAX_CALL_ID or not call_id.isprintable() \
            or call_id != call_id.strip():
        raise BadInput(f"call_id {call_id!r} must be 1-{MAX_CALL_ID} printable characters without "
                       "leading or trailing spaces")
    return call_id


def file_stem(call_id: str) -> str:
    """The call's event file name stem: the id itself when it is a safe name, else
    %-escaped (never '/'), else a hash when escaping makes it too long. The three
    forms cannot collide: only the escaped and hashed forms contain '%'."""
    if SAFE_STEM_RE.match(call_id):
        return call_id
    quoted = urllib.parse.quote(call_id, safe="")
    if len(quoted) <= 180 and not quoted.startswith("."):
        return quoted
    return "%h" + hashlib.sha256(call_id.encode("utf-8")).hexdigest()[:40]


def _check_text(value: Any, what: str, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise BadInput(f"{what} must be a {'' if allow_empty else 'non-empty '}string, got {value!r}")
    return value


def _json_copy(value: Any, what: str) -> Any:
    """A private copy that is certain to serialize: a bad payload fails here, in the
    caller, not later in the writer's flush where it would block the whole file."""
    try:
        return json.loads(dumps(value))
    except (TypeError, ValueError) as exc:
        raise BadInput(f"{what} cannot be stored as JSON: {exc}") from None


def take_lock(data_dir: Path):
    """Own `data_dir` (flock on .lock, holding our pid) or raise StoreLockedError."""
    fh = os.fdopen(os.open(data_dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600), "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        owner = fh.read().strip() or "unknown"
        fh.close()
        raise StoreLockedError(f"{data_dir}: call store is in use by another process (pid {owner}); "
                               "only one process may own it") from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return fh


def release_lock(fh) -> None:
    fcntl.flock(fh, fcntl.LOCK_UN)
    fh.close()


@dataclass
class _Meta:
    """What callers need to validate an operation without asking the writer."""

    day: str
    open: bool


@dataclass
class _Op:
    kind: str
    args: tuple = ()
    future: Future | None = None


@dataclass
class _EventLog:
    """A call's event segments; the writer's view."""

    call_id: str
    folder: Path
    first_open: int  # index of the first segment held in `dbs`; lower ones are on disk
    dbs: list[TinyDB] = field(default_factory=list)
    count: int = 0  # events in the last segment
    next_seq: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    ended: bool = False

    def seg_path(self, n: int) -> Path:
        return self.folder / f"{file_stem(self.call_id)}.{n}.json"

    @property
    def dirty(self) -> bool:
        return any(db.storage.dirty for db in self.dbs)


class CallStore:
    """Single writer of the call database under `data_dir` (see the module doc)."""

    def __init__(self, data_dir: Path, *, repair: bool = False, queue_size: int = 10000,
                 flush_interval_s: float = 0.5, block_s: float = 2.0, read_timeout_s: float = 10.0,
                 hot_limit: int = 500, segment_events: int = 500, max_open_logs: int = 64,
                 alert_index: int = 50000):
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1: the writer queue is always bounded")
        self.data_dir = Path(data_dir)
        self.repair = repair
        self.flush_interval_s = flush_interval_s
        self.block_s = block_s
        self.read_timeout_s = read_timeout_s
        self.hot_limit = hot_limit
        self.segment_events = segment_events
        self.max_open_logs = max_open_logs
        self.alert_index_size = alert_index

        ensure_dir(self.data_dir)
        self._lock_fh = take_lock(self.data_dir)
        try:
            self._calls_db = self._open_db(self.data_dir / "calls.json")
            self._calls = self._calls_db.table(CALLS_TABLE)
            self._doc_of: dict[str, int] = {d["call_id"]: d.doc_id for d in self._calls.all()}
            # caller-side index, guarded by _lock
            self._lock = threading.Lock()
            self._hot: dict[str, _Meta] = {
                d["call_id"]: _Meta(day_of(d["started"]), d.get("ended") is None) for d in self._calls.all()}
            self._alerts: OrderedDict[str, str] = OrderedDict()
            # ids of archived calls -> their day: a new call may not reuse one (start_call)
            self._archived: dict[str, str] = self._scan_archives()
            # writer-side state
            self._logs: OrderedDict[str, _EventLog] = OrderedDict()
            self._archives: OrderedDict[str, tuple[TinyDB, dict[str, int]]] = OrderedDict()
            self._dirty = False
            # open calls' last sign of life (touch): seen.json, {"seen": {call_id: {"t": iso}}}
            self._seen: dict[str, str] = self._read_seen()
            self._seen_dirty = False
            for d in self._calls.all():
                if d.get("ended") is None:
                    self._index_alerts(self._log(d["call_id"], day_of(d["started"])))
        except BaseException:
            self._release_lock()
            raise

        self._queue: queue.Queue[_Op] = queue.Queue(maxsize=queue_size)
        self._closed = False
        self._close_lock = threading.Lock()
        self._st = {"applied": 0, "dropped_events": 0, "flushes": 0, "files_written": 0, "flush_errors": 0,
                    "apply_errors": 0, "last_flush_mono": None, "last_flush": None, "last_flush_ms": None,
                    "last_error": None}
        self._writer = threading.Thread(target=self._run, name="callstore-writer", daemon=True)
        self._writer.start()

    # ------------------------------------------------------------------ set-up

    def _release_lock(self) -> None:
        if self._lock_fh is not None:
            release_lock(self._lock_fh)
            self._lock_fh = None

    def _open_db(self, path: Path) -> TinyDB:
        db = TinyDB(path, repair=self.repair, storage=WriteBehind(AtomicJSONStorage))
        db.storage.read()  # fail now, naming the file, not at the first write
        return db

    # ------------------------------------------------------------------ public API: writes

    def start_call(self, line: str, call_id: str, agent: str, started: str, source: str = "cmd",
                   ivr: dict | None = None) -> None:
        """Record a new open call. Raises DuplicateCallError if a call with this id is
        already recorded (open, recent or archived): a reused id never adds to an old
        record."""
        _check_text(line, "line")
        _check_call_id(call_id)
        _check_text(agent, "agent", allow_empty=True)
        _check_iso(started, "started")
        if source not in SOURCES:
            raise BadInput(f"source must be one of {SOURCES}, got {source!r}")
        if ivr is not None and not isinstance(ivr, dict):
            raise BadInput(f"ivr must be a dict or None, got {type(ivr).__name__}")
        record = {"call_id": call_id, "line": line, "agent": agent, "started": started, "source": source,
                  "ivr": _json_copy(ivr, "ivr"), "ended": None, "duration_s": None, "status": "open",
                  "counts": {}, "flags": []}
        with self._lock:
            if call_id in self._hot or call_id in self._archived:
                raise DuplicateCallError(f"call {call_id!r} already exists (line {line})")
            self._hot[call_id] = _Meta(day_of(started), True)  # reserve before queueing
        try:
            self._put(_Op("start", (record,)), self.block_s)
        except BaseException:
            with self._lock:
                self._hot.pop(call_id, None)
            raise

    def end_call(self, call_id: str, ended: str, duration_s: float, status: str = "ended") -> None:
        """Close an open call; status "interrupted" for calls cut by a crash or restart."""
        _check_call_id(call_id)
        _check_iso(ended, "ended")
        if isinstance(duration_s, bool) or not isinstance(duration_s, (int, float)) \
                or not math.isfinite(duration_s) or duration_s < 0:
            raise BadInput(f"duration_s must be a finite number >= 0, got {duration_s!r}")
        if status not in END_STATUSES:
            raise BadInput(f"status must be one of {END_STATUSES}, got {status!r}")
        with self._lock:
            meta = self._hot.get(call_id)
            if meta is not None and meta.open:
                meta.open = False
                reserved = True
            else:
                reserved = False
        if not reserved:
            if meta is None and self._locate(call_id) is None:
                raise UnknownCallError(f"end_call: no call {call_id!r}")
            raise CallEndedError(f"end_call: call {call_id!r} has already ended")
        try:
            self._put(_Op("end", (call_id, ended, float(duration_s), status)), self.block_s)
        except BaseException:
            with self._lock:
                meta.open = True
            raise

    def knows(self, call_id: str) -> bool:
        """Whether a call with this id is recorded (open, recent or archived); no I/O."""
        with self._lock:
            return call_id in self._hot or call_id in self._archived

    def touch(self, call_ids: list[str], seen: str) -> None:
        """Note that these open calls were still running at `seen` (ISO): after a crash
        their record's duration runs to the last such time (see `open_calls`). Never
        blocks: skipped when the writer queue is full."""
        _check_iso(seen, "seen")
        ids = [_check_call_id(c) for c in call_ids]
        if ids and not self._closed:
            try:
                self._queue.put_nowait(_Op("touch", (ids, seen)))
            except queue.Full:
                pass

    def purge_before(self, day: str) -> dict[str, int]:
        """Delete ended calls started before `day` (YYYY-MM-DD), their events and the
        archives of those days (retention). Returns what was deleted."""
        datetime.strptime(day, "%Y-%m-%d")
        return self._read(self._w_purge, day)

    def add_event(self, call_id: str, kind: str, payload: dict) -> bool:
        """Append an event (alert, final transcript, suggestion, summary, ...) to a call.

        Never blocks: returns False when the writer queue is full and the event was
        dropped (counted in stats()["dropped_events"]). Events go to open calls and
        recently ended ones (late finals); older calls raise UnknownCallError.
        """
        _check_call_id(call_id)
        if not isinstance(kind, str) or not KIND_RE.match(kind):
            raise BadInput(f"event kind {kind!r} must be 1-32 lower-case letters, digits, '_'")
        if kind in RESERVED_KINDS:
            writer = {"ack": "ack_alert", "flag": "flag_call"}.get(kind, "correct_ticket")
            raise BadInput(f"event kind {kind!r} is written by {writer}()")
        if not isinstance(payload, dict):
            raise BadInput(f"payload must be a dict, got {type(payload).__name__}")
        if self._closed:
            raise StoreClosedError(f"{self.data_dir}: call store is closed")
        payload = _json_copy(payload, f"{kind} payload")
        alert_id = payload.get("id") if kind == "alert" else None
        with self._lock:
            if call_id not in self._hot:
                raise UnknownCallError(f"add_event: no open or recent call {call_id!r}")
        event = {"ts": now_iso(), "kind": kind, "payload": payload}
        try:
            self._queue.put_nowait(_Op("event", (call_id, event)))
        except queue.Full:
            return self._dropped(kind, call_id)
        if isinstance(alert_id, str):
            self._remember_alert(alert_id, call_id)
        return True

    def ack_alert(self, call_id: str | None, alert_id: str, by: str) -> str:
        """Record a supervisor's acknowledgement; returns the call id it was filed under.
        With call_id None the alert is looked up among recent calls' alerts."""
        _check_text(alert_id, "alert_id")
        _check_text(by, "by")
        if call_id is None:
            with self._lock:
                call_id = self._alerts.get(alert_id)
            if call_id is None:
                raise UnknownAlertError(f"ack_alert: alert {alert_id!r} is not among the recent calls' alerts; "
                                        "pass its call_id")
        else:
            self._require_call(_check_call_id(call_id), "ack_alert")
        event = {"ts": now_iso(), "kind": "ack", "payload": {"alert_id": alert_id, "by": by}}
        self._put(_Op("event", (call_id, event)), self.block_s)
        return call_id

    def flag_call(self, call_id: str, reason: str, by: str, note: str = "") -> None:
        """Flag a call for QA / take-over; kept on the record and as a "flag" event."""
        self._require_call(_check_call_id(call_id), "flag_call")
        _check_text(reason, "reason")
        _check_text(by, "by")
        _check_text(note, "note", allow_empty=True)
        flag = {"reason": reason, "by": by, "note": note, "ts": now_iso()}
        self._put(_Op("flag", (call_id, flag)), self.block_s)

    def correct_ticket(self, call_id: str, field_name: str, value: Any, by: str, due: str | None = None) -> dict:
        """Store an agent's correction of one field of the call's ticket, next to the
        extraction: the record's "corrections" list gets {field, value, due, by, ts,
        original} (original: the extracted field as published, so extraction accuracy can
        be measured from corrections), and a "ticket_update" event the same. The value
        must already be checked against the call's template (aftercall/corrections.py).
        Raises UnknownCallError, or BadInput when the call has no ticket."""
        self._require_call(_check_call_id(call_id), "correct_ticket")
        _check_text(field_name, "field")
        _check_text(by, "by")
        fix = {"field": field_name, "value": _json_copy(value, "value"), "by": by, "ts": now_iso()}
        if due is not None:
            fix["due"] = _check_text(due, "due")
        fut: Future = Future()
        self._put(_Op("correct", (call_id, fix), fut), self.block_s)
        try:
            return fut.result(timeout=self.read_timeout_s)
        except FutureTimeout:
            raise StoreBusyError(f"{self.data_dir}: call store did not answer within {self.read_timeout_s:g} s") \
                from None

    # ------------------------------------------------------------------ public API: reads

    def get_call(self, call_id: str) -> dict | None:
        """The call record with "events" (ordered by seq), or None if unknown."""
        _check_call_id(call_id)
        return self._read(self._w_get_call, call_id)

    def list_calls(self, line: str | None = None, limit: int = 50) -> list[dict]:
        """Call records (without events), newest start first."""
        if limit < 1:
            raise BadInput(f"limit must be at least 1, got {limit}")
        return self._read(self._w_list_calls, line, limit)

    def find_calls(self, line: str | None = None, agent: str | None = None, since: str | None = None,
                   limit: int = 200) -> list[dict]:
        """Call records (without events), newest start first, of one line and/or agent,
        started at or after `since` (ISO time)."""
        if limit < 1:
            raise BadInput(f"limit must be at least 1, got {limit}")
        if since is not None:
            _check_iso(since, "since")
        return self._read(self._w_find_calls, line, agent, since, limit)

    def open_calls(self) -> list[dict]:
        """Calls with no end, oldest first: after an unclean stop the daemon ends
        them with status "interrupted"."""
        return self._read(self._w_open_calls)

    def flush(self) -> None:
        """Write everything applied so far now (tests, shutdown hooks)."""
        self._read(self._w_flush)

    def stats(self) -> dict[str, Any]:
        """Health figures: queue depth and bound, drops, flush timing, errors."""
        st = dict(self._st)
        mono = st.pop("last_flush_mono")
        st["last_flush_age_s"] = None if mono is None else round(time.monotonic() - mono, 3)
        st["pending"] = self._queue.qsize()
        st["queue_size"] = self._queue.maxsize
        st["writer_alive"] = self._writer.is_alive()
        with self._lock:
            st["hot_calls"] = len(self._hot)
            st["open_calls"] = sum(1 for m in self._hot.values() if m.open)
        return st

    def close(self) -> None:
        """Flush everything and release the data directory. Raises StoreError if
        the final flush failed (the message says what is not on disk)."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        try:
            if self._writer.is_alive():
                # a stalled disk can hold the writer; wait for it rather than lose the tail
                self._queue.put(_Op("stop"))
                self._writer.join()
            else:
                self._w_flush()
            self._close_dbs()
        finally:
            self._release_lock()
        if self._st["last_error"] and self._any_dirty():
            raise StoreError(f"{self.data_dir}: final flush failed, the last batch is not on disk: "
                             f"{self._st['last_error']}")

    def __enter__(self) -> "CallStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ caller side helpers

    def _put(self, op: _Op, timeout: float) -> None:
        if self._closed:
            raise StoreClosedError(f"{self.data_dir}: call store is closed")
        try:
            self._queue.put(op, timeout=timeout)
        except queue.Full:
            raise StoreBusyError(f"{self.data_dir}: call store queue stayed full for {timeout:g} s "
                                 f"({self._queue.maxsize} operations pending; is the disk stalled?); "
                                 f"{op.kind} was not recorded") from None

    def _read(self, fn: Callable, *args) -> Any:
        fut: Future = Future()
        self._put(_Op("call", (fn, args), fut), self.read_timeout_s)
        try:
            return fut.result(timeout=self.read_timeout_s)
        except FutureTimeout:
            raise StoreBusyError(f"{self.data_dir}: call store did not answer within {self.read_timeout_s:g} s") \
                from None

    def _dropped(self, kind: str, call_id: str) -> bool:
        with self._lock:
            self._st["dropped_events"] += 1
            n = self._st["dropped_events"]
        if n == 1 or n % 100 == 0:
            log.warning("call store queue full (%d pending): dropped %s event of call %s (%d dropped so far)",
                        self._queue.maxsize, kind, call_id, n)
        return False

    def _remember_alert(self, alert_id: str, call_id: str) -> None:
        with self._lock:
            self._alerts[alert_id] = call_id
            self._alerts.move_to_end(alert_id)
            while len(self._alerts) > self.alert_index_size:
                self._alerts.popitem(last=False)

    def _require_call(self, call_id: str, what: str) -> None:
        with self._lock:
            if call_id in self._hot:
                return
        if self._locate(call_id) is None:
            raise UnknownCallError(f"{what}: no call {call_id!r}")

    def _locate(self, call_id: str) -> str | None:
        """Day of a call that is not in calls.json (archived), or None."""
        return self._read(self._w_locate, call_id)

    @contextmanager
    def _hold_writer(self, timeout: float = 30.0) -> Iterator[None]:
        """Keep the writer busy (as a stalled disk would) while the block runs. For
        tests of the queue bound."""
        held, release = threading.Event(), threading.Event()
        self._put(_Op("hold", (held, release, timeout)), self.block_s)
        if not held.wait(timeout):
            raise StoreBusyError("writer did not reach the hold")
        try:
            yield
        finally:
            release.set()

    # ------------------------------------------------------------------ writer thread

    def _run(self) -> None:
        last = float("-inf")
        while True:
            timeout = max(0.0, last + self.flush_interval_s - time.monotonic()) if self._dirty else None
            try:
                op = self._queue.get(timeout=timeout)
            except queue.Empty:
                op = None
            stop = False
            if op is not None:
                stop = self._apply(op)
                # take what is already waiting, but keep the flush deadline
                while not stop and (not self._dirty or time.monotonic() < last + self.flush_interval_s):
                    try:
                        op = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    stop = self._apply(op)
            if self._dirty and (stop or time.monotonic() >= last + self.flush_interval_s):
                last = time.monotonic()
                try:
                    self._w_flush()
                except Exception as exc:  # keep the data in memory and retry next interval
                    self._st["flush_errors"] += 1
                    self._st["last_error"] = f"{type(exc).__name__}: {exc}"
                    log.exception("call store flush failed; retrying in %.1f s", self.flush_interval_s)
            if stop:
                return

    def _apply(self, op: _Op) -> bool:
        try:
            if op.kind == "stop":
                return True
            if op.kind == "call":
                fn, args = op.args
                result = fn(*args)
                if op.future is not None:
                    op.future.set_result(result)
                return False
            if op.kind == "hold":
                held, release, timeout = op.args
                held.set()
                release.wait(timeout)
                return False
            result = getattr(self, f"_w_{op.kind}")(*op.args)
            self._st["applied"] += 1
            self._dirty = True
            if op.future is not None:
                op.future.set_result(result)
        except Exception as exc:
            if op.future is not None:
                op.future.set_exception(exc)
            else:
                self._st["apply_errors"] += 1
                self._st["last_error"] = f"{type(exc).__name__}: {exc}"
                log.exception("call store: could not apply %s", op.kind)
        return False

    # writer: operations

    def _w_start(self, record: dict) -> None:
        self._doc_of[record["call_id"]] = self._calls.insert(record)
        self._log(record["call_id"], day_of(record["started"]))

    def _w_end(self, call_id: str, ended: str, duration_s: float, status: str) -> None:
        rec, where = self._find(call_id)
        if rec is None:
            raise UnknownCallError(f"end_call: no call {call_id!r}")
        evlog = self._log(call_id, day_of(rec["started"]))
        evlog.ended = True
        self._update(where, {"ended": ended, "duration_s": duration_s, "status": status,
                             "counts": dict(evlog.counts)})
        if self._seen.pop(call_id, None) is not None:
            self._seen_dirty = True

    def _w_event(self, call_id: str, event: dict) -> None:
        rec, where = self._find(call_id)
        if rec is None:
            raise UnknownCallError(f"event for unknown call {call_id!r}")
        evlog = self._log(call_id, day_of(rec["started"]))
        evlog.ended = rec.get("ended") is not None
        if not evlog.dbs or evlog.count >= self.segment_events:
            evlog.dbs.append(self._open_db(evlog.seg_path(evlog.first_open + len(evlog.dbs))))
            evlog.count = 0
        event = {"seq": evlog.next_seq, **event}
        evlog.dbs[-1].table(EVENTS_TABLE).insert(Document(event, doc_id=evlog.next_seq + 1))
        evlog.next_seq += 1
        evlog.count += 1
        evlog.counts[event["kind"]] = evlog.counts.get(event["kind"], 0) + 1
        if where[0] == "archive" or rec.get("ended") is not None:
            # a late event after the end: keep the record's counts true
            self._update(where, {"counts": dict(evlog.counts)})
        if event["kind"] == "summary" and isinstance(event.get("payload"), dict):
            p = event["payload"]
            fields = {k: p.get(k) for k in AFTERCALL_KEYS}
            if p.get("ivr") and not rec.get("ivr"):
                fields["ivr"] = p["ivr"]        # an ivr_context that came after call_start
            self._update(where, fields)

    def _w_correct(self, call_id: str, fix: dict) -> dict:
        rec, where = self._find(call_id)
        if rec is None:
            raise UnknownCallError(f"correct_ticket: no call {call_id!r}")
        ticket = rec.get("ticket")
        if not isinstance(ticket, dict):
            raise BadInput(f"correct_ticket: call {call_id!r} has no ticket")
        original = (ticket.get("fields") or {}).get(fix["field"])
        fix = {**fix, "original": copy.deepcopy(original)}
        self._update(where, {"corrections": list(rec.get("corrections") or []) + [fix]})
        self._w_event(call_id, {"ts": fix["ts"], "kind": "ticket_update", "payload": fix})
        return copy.deepcopy(fix)

    def _w_touch(self, call_ids: list[str], seen: str) -> None:
        # kept in seen.json, a small file of its own: rewriting calls.json (hundreds of
        # records) every few seconds per open call would cost more than the rest of the store
        for cid in call_ids:
            doc_id = self._doc_of.get(cid)
            rec = self._calls.get(doc_id=doc_id) if doc_id is not None else None
            if rec is not None and rec.get("ended") is None:
                self._seen[cid] = seen
                self._seen_dirty = True

    def _w_purge(self, day: str) -> dict[str, int]:
        """Retention: everything of ended calls that started before `day` goes."""
        import shutil

        out = {"calls": 0, "archives": 0, "event_days": 0}
        old = [d for d in self._calls.all() if d.get("ended") is not None and day_of(d["started"]) < day]
        if old:
            self._calls.remove(doc_ids=[d.doc_id for d in old])
            self._dirty = True
            out["calls"] += len(old)
        gone = {d["call_id"] for d in old}
        for cid in gone:
            self._doc_of.pop(cid, None)
            if cid in self._logs:
                self._close_log(cid)
        for d in self._archive_days(newest_first=False):
            if d >= day:
                break
            if d in self._archives:
                self._archives.pop(d)[0].close()
            path = self.data_dir / "archive" / f"{d}.json"
            data = read_json_file(path) if path.exists() else None
            out["calls"] += len((data or {}).get(CALLS_TABLE, {}))
            path.unlink(missing_ok=True)
            out["archives"] += 1
        still_open = [d["call_id"] for d in self._calls.all() if d.get("ended") is None]
        keep = {file_stem(c) for c in still_open}
        events = self.data_dir / "events"
        for folder in sorted(events.glob("????-??-??")) if events.is_dir() else []:
            if folder.name >= day:
                continue
            for cid in [c for c, lg in self._logs.items() if lg.folder == folder and c not in still_open]:
                self._close_log(cid)
            if any(f.name.rsplit(".", 2)[0] in keep for f in folder.iterdir()):
                # a call open since then (days long): only its own events stay
                for f in folder.iterdir():
                    if f.name.rsplit(".", 2)[0] not in keep:
                        f.unlink(missing_ok=True)
                continue
            shutil.rmtree(folder, ignore_errors=True)
            out["event_days"] += 1
        with self._lock:
            for cid in gone:
                self._hot.pop(cid, None)
            for cid in [c for c, d in self._archived.items() if d < day]:
                del self._archived[cid]
            for aid in [a for a, c in self._alerts.items() if c in gone]:
                del self._alerts[aid]
        if old:
            self._calls_db.storage.flush()
        return out

    def _w_flag(self, call_id: str, flag: dict) -> None:
        rec, where = self._find(call_id)
        if rec is None:
            raise UnknownCallError(f"flag_call: no call {call_id!r}")
        self._update(where, {"flags": list(rec.get("flags", [])) + [flag]})
        self._w_event(call_id, {"ts": flag["ts"], "kind": "flag", "payload": flag})

    # writer: reads

    def _w_get_call(self, call_id: str) -> dict | None:
        rec, _ = self._find(call_id)
        if rec is None:
            return None
        out = copy.deepcopy(dict(rec))
        out["events"] = self._events_of(call_id, day_of(rec["started"]))
        return out

    def _w_list_calls(self, line: str | None, limit: int) -> list[dict]:
        hot = [dict(d) for d in self._calls.all() if line is None or d["line"] == line]
        seen = {r["call_id"] for r in self._calls.all()}
        older: list[dict] = []
        # archive days hold strictly older starts than later days: stop once `limit` are in hand
        for day in self._archive_days(newest_first=True):
            if len(older) >= limit:
                break
            db, _ = self._archive(day)
            older += [dict(d) for d in db.table(CALLS_TABLE).all()
                      if d["call_id"] not in seen and (line is None or d["line"] == line)]
        rows = sorted(hot + older, key=lambda r: sort_key(r["started"]), reverse=True)[:limit]
        return copy.deepcopy(rows)

    def _w_find_calls(self, line: str | None, agent: str | None, since: str | None, limit: int) -> list[dict]:
        t0 = sort_key(since) if since is not None else None
        # archive files are by start day in the calls' own offsets: a day of margin
        first_day = (datetime.fromisoformat(since) - timedelta(days=1)).date().isoformat() if since else None

        def keep(d) -> bool:
            return (line is None or d.get("line") == line) and (agent is None or d.get("agent") == agent) \
                and (t0 is None or sort_key(d["started"]) >= t0)

        rows = [dict(d) for d in self._calls.all() if keep(d)]
        seen = {r["call_id"] for r in self._calls.all()}
        for day in self._archive_days(newest_first=True):
            if len(rows) >= limit or (first_day is not None and day < first_day):
                break
            db, _ = self._archive(day)
            rows += [dict(d) for d in db.table(CALLS_TABLE).all() if d["call_id"] not in seen and keep(d)]
        rows.sort(key=lambda r: sort_key(r["started"]), reverse=True)
        return copy.deepcopy(rows[:limit])

    def _w_open_calls(self) -> list[dict]:
        rows = [dict(d) for d in self._calls.all() if d.get("ended") is None]
        for r in rows:
            if r["call_id"] in self._seen:
                r["last_seen"] = self._seen[r["call_id"]]
        return copy.deepcopy(sorted(rows, key=lambda r: sort_key(r["started"])))

    def _w_locate(self, call_id: str) -> str | None:
        rec, where = self._find(call_id)
        return None if rec is None else day_of(rec["started"])

    # writer: files

    def _w_flush(self) -> None:
        """Write dirty files: archives, then calls.json, then event segments (see
        the module doc for why this order)."""
        t0 = time.perf_counter()
        written = 0
        self._archive_old_calls()
        for db, _ in list(self._archives.values()):
            if db.storage.dirty:
                db.storage.flush()
                written += 1
        if self._calls_db.storage.dirty:
            self._calls_db.storage.flush()
            written += 1
        if self._seen_dirty:
            atomic_write_bytes(self.data_dir / SEEN_FILE,
                               dumps({"seen": {cid: {"t": t} for cid, t in self._seen.items()}}))
            self._seen_dirty = False
            written += 1
        for evlog in self._logs.values():
            for db in evlog.dbs:
                if db.storage.dirty:
                    db.storage.flush()
                    written += 1
            # full segments are final now: drop them from memory
            while len(evlog.dbs) > 1:
                evlog.dbs.pop(0).close()
                evlog.first_open += 1
        self._trim_logs()
        while len(self._archives) > 4:
            self._archives.popitem(last=False)[1][0].close()
        self._dirty = False
        if written:
            self._st["flushes"] += 1
            self._st["files_written"] += written
            self._st["last_flush_mono"] = time.monotonic()
            self._st["last_flush"] = now_iso()
            self._st["last_flush_ms"] = round((time.perf_counter() - t0) * 1000, 2)

    def _trim_logs(self) -> None:
        """Close clean logs of ended calls, then the least recently used past the bound."""
        for cid in [c for c, lg in self._logs.items() if lg.ended and not lg.dirty]:
            self._close_log(cid)
        for cid in list(self._logs):
            if len(self._logs) <= self.max_open_logs:
                break
            if not self._logs[cid].dirty:
                self._close_log(cid)

    def _close_log(self, call_id: str) -> None:
        for db in self._logs.pop(call_id).dbs:
            db.close()

    def _archive_old_calls(self) -> None:
        """Move the oldest ended calls out of calls.json once it holds more than
        hot_limit ended calls (in batches, so this is rare). The archive is
        written before calls.json drops them: a crash in between leaves a
        duplicate, which readers skip, never a loss."""
        ended = [d for d in self._calls.all() if d.get("ended") is not None]
        batch = max(1, self.hot_limit // 5)
        if len(ended) <= self.hot_limit + batch:
            return
        ended.sort(key=lambda d: sort_key(d["started"]))
        # a call that ended minutes ago still gets its late finals and summary (add_event
        # takes only calls in calls.json): a burst of short calls must not push it out
        now = time.time()
        move = [d for d in ended[: len(ended) - self.hot_limit] if now - sort_key(d["ended"]) >= KEEP_RECENT_S]
        if not move:
            return
        by_day: dict[str, list[Document]] = {}
        for d in move:
            by_day.setdefault(day_of(d["started"]), []).append(d)
        for day, docs in by_day.items():
            db, index = self._archive(day)
            table = db.table(CALLS_TABLE)
            for d in docs:
                if d["call_id"] in index:
                    table.update(dict(d), doc_ids=[index[d["call_id"]]])
                else:
                    index[d["call_id"]] = table.insert(dict(d))
            db.storage.flush()
        self._calls.remove(doc_ids=[d.doc_id for d in move])
        with self._lock:
            for d in move:
                self._hot.pop(d["call_id"], None)
                self._doc_of.pop(d["call_id"], None)
                self._archived[d["call_id"]] = day_of(d["started"])

    def _read_seen(self) -> dict[str, str]:
        try:
            data = read_json_file(self.data_dir / SEEN_FILE) or {}
        except CorruptStoreError as exc:
            log.error("%s; the durations of calls a crash cut short fall back to 0", exc)
            return {}
        return {cid: d["t"] for cid, d in data.get("seen", {}).items() if isinstance(d.get("t"), str)}

    def _scan_archives(self) -> dict[str, str]:
        """Ids of the archived calls -> day (read once at open; archiving keeps it up to date)."""
        out: dict[str, str] = {}
        for day in self._archive_days(newest_first=False):
            path = self.data_dir / "archive" / f"{day}.json"
            try:
                data = read_json_file(path) or {}
            except CorruptStoreError as exc:
                log.error("%s", exc)    # reported again, with the repair, when the day is opened
                continue
            for doc in data.get(CALLS_TABLE, {}).values():
                if isinstance(doc.get("call_id"), str):
                    out[doc["call_id"]] = day
        return out

    def _archive_days(self, newest_first: bool) -> list[str]:
        folder = self.data_dir / "archive"
        days = sorted(p.stem for p in folder.glob("????-??-??.json")) if folder.is_dir() else []
        return days[::-1] if newest_first else days

    def _archive(self, day: str) -> tuple[TinyDB, dict[str, int]]:
        if day in self._archives:
            self._archives.move_to_end(day)
            return self._archives[day]
        db = self._open_db(self.data_dir / "archive" / f"{day}.json")
        entry = (db, {d["call_id"]: d.doc_id for d in db.table(CALLS_TABLE).all()})
        self._archives[day] = entry
        return entry

    def _find(self, call_id: str) -> tuple[Document | None, tuple]:
        doc_id = self._doc_of.get(call_id)
        if doc_id is not None:
            return self._calls.get(doc_id=doc_id), ("hot", doc_id)
        # archived: the call's events folder names its day; else search the archives
        first_seg = f"*/{glob.escape(file_stem(call_id))}.0.json"
        days = [p.parent.name for p in (self.data_dir / "events").glob(first_seg)]
        days += [d for d in self._archive_days(newest_first=True) if d not in days]
        for day in days:
            if not (self.data_dir / "archive" / f"{day}.json").exists():
                continue
            db, index = self._archive(day)
            if call_id in index:
                return db.table(CALLS_TABLE).get(doc_id=index[call_id]), ("archive", day, index[call_id])
        return None, ()

    def _update(self, where: tuple, fields: dict) -> None:
        if where[0] == "hot":
            self._calls.update(fields, doc_ids=[where[1]])
        else:
            db, _ = self._archive(where[1])
            db.table(CALLS_TABLE).update(fields, doc_ids=[where[2]])

    def _log(self, call_id: str, day: str) -> _EventLog:
        """The call's event log, loading its segment files' state the first time."""
        if call_id in self._logs:
            self._logs.move_to_end(call_id)
            return self._logs[call_id]
        folder = self.data_dir / "events" / day
        stem = file_stem(call_id)
        pat = re.compile(rf"^{re.escape(stem)}\.(\d+)\.json$")
        names = [p.name for p in folder.glob(f"{glob.escape(stem)}.*.json")] if folder.is_dir() else []
        segs = sorted(int(m.group(1)) for name in names if (m := pat.match(name)))
        evlog = _EventLog(call_id, folder, first_open=segs[-1] if segs else 0)
        for n in segs:
            db = self._open_db(evlog.seg_path(n))  # repair applies per segment
            docs = db.table(EVENTS_TABLE).all()
            for d in docs:
                evlog.counts[d["kind"]] = evlog.counts.get(d["kind"], 0) + 1
                evlog.next_seq = max(evlog.next_seq, d["seq"] + 1)
            if n == segs[-1]:
                evlog.dbs.append(db)
                evlog.count = len(docs)
            else:
                db.close()
        self._logs[call_id] = evlog
        return evlog

    def _events_of(self, call_id: str, day: str) -> list[dict]:
        evlog = self._log(call_id, day)
        out: list[dict] = []
        for n in range(evlog.first_open):
            data = read_json_file(evlog.seg_path(n))
            if data is not None:
                out += data.get(EVENTS_TABLE, {}).values()
        for db in evlog.dbs:
            out += [dict(d) for d in db.table(EVENTS_TABLE).all()]
        out.sort(key=lambda e: e["seq"])
        return copy.deepcopy(out)

    def _index_alerts(self, evlog: _EventLog) -> None:
        for e in self._events_of(evlog.call_id, evlog.folder.name):
            if e["kind"] == "alert" and isinstance(e["payload"].get("id"), str):
                self._remember_alert(e["payload"]["id"], evlog.call_id)

    def _any_dirty(self) -> bool:
        return self._calls_db.storage.dirty or any(lg.dirty for lg in self._logs.values()) \
            or any(db.storage.dirty for db, _ in self._archives.values())

    def _close_dbs(self) -> None:
        """Close without writing again: a failed flush must not be retried blindly
        here (the caller reports it)."""
        for db in [self._calls_db] + [db for lg in self._logs.values() for db in lg.dbs] \
                + [db for db, _ in self._archives.values()]:
            db.storage.storage.close()
