"""The daemon's after-call desk: ticket corrections (`ticket_update`) and look-back
requests (`box/{box}/query`), both served from the call store on one thread of their own,
so a slow store read never holds a line's worker (audio) or paho's network thread.

- ticket_update (agent role, on its own line's cmd topic): the call must be of that
  line and have a ticket; the field and value are checked against the call's ticket
  template in the content pack (aftercall/corrections.py); then the store keeps the
  correction, who made it and the original extraction side by side (CallStore.correct_ticket).
  Anything else is rejected, logged and counted (health rejected_commands).
- queries (bus/query.py): `calls` (the calls stored, filtered by line, agent, since) and
  `call` (one call's timeline, timeline.py: redacted text, personal values masked).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Callable

from .bus.commands import TicketUpdate
from .bus.query import CallQuery, QueryBus, QueryError, Request, parse_query
from .store.calls import StoreError
from .timeline import call_row, timeline

log = logging.getLogger(__name__)

QUEUE = 256
TICKET_WAIT_S = 3.0     # a correction that beat its call's summary into the store waits this long


class RecordService:
    def __init__(self, store, content: Callable[[], Any], *, redact: Callable[[str], str] | None,
                 mask_char: str = "*", mask_personal: bool = False,
                 on_rejected: Callable[[], None] | None = None):
        self.store = store
        self.content = content            # () -> the current assist Content (its pack's ticket templates)
        self.redact = redact or (lambda s: s)
        self.mask_char = mask_char
        self.mask_personal = mask_personal
        self.on_rejected = on_rejected or (lambda: None)
        self.query_bus: QueryBus | None = None
        self._q: queue.Queue = queue.Queue(QUEUE)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="records", daemon=True)
        self.corrections = 0
        self.rejected = 0
        self.queries = 0
        self.dropped = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Finish what is queued (up to `timeout`), then stop."""
        self._stop.set()
        try:
            self._q.put(None, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)

    # ---- from other threads ----
    def ticket_update(self, line_id: str, cmd: TicketUpdate) -> None:
        self._put(("ticket", line_id, cmd))

    def request(self, req: Request) -> None:
        self._put(("query", req))

    def _put(self, item) -> None:
        try:
            self._q.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            log.error("records: queue full (%d waiting); dropped a %s", QUEUE, item[0])

    def stats(self) -> dict[str, int]:
        return {"corrections": self.corrections, "rejected": self.rejected, "queries": self.queries,
                "dropped": self.dropped}

    # ---- the thread ----
    def _main(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            try:
                if item[0] == "ticket":
                    self._ticket(item[1], item[2])
                else:
                    self._query(item[1])
            except Exception:
                log.exception("records: handling %s failed", item[0])

    def _reject(self, line_id: str, cmd: TicketUpdate, why: str) -> None:
        self.rejected += 1
        self.on_rejected()
        log.warning("line %s: ticket_update of call %r field %r by %r rejected: %s", line_id, cmd.call_id,
                    cmd.field, cmd.by, why)

    def _ticket(self, line_id: str, cmd: TicketUpdate) -> None:
        from .aftercall.corrections import CorrectionError, check_update
        from .aftercall.extract import mask

        deadline = time.monotonic() + TICKET_WAIT_S
        while True:
            try:
                rec = self.store.get_call(cmd.call_id)
            except StoreError as exc:
                return self._reject(line_id, cmd, f"call store: {exc}")
            if rec is None:
                return self._reject(line_id, cmd, "no such call")
            if rec.get("line") != line_id:
                return self._reject(line_id, cmd, f"the call is on line {rec.get('line')!r}, not this line")
            if isinstance(rec.get("ticket"), dict):
                break
            if "ticket" in rec:      # its summary is in: no template fitted the call
                return self._reject(line_id, cmd, "the call has no ticket (no ticket template fitted it)")
            if time.monotonic() >= deadline or self._stop.is_set():
                return self._reject(line_id, cmd, "the call has no ticket yet (its summary is not in)")
            time.sleep(0.1)
        tid = rec["ticket"].get("template")
        content = self.content()
        tickets = getattr(getattr(content, "pack", None), "tickets", None)
        tpl = tickets.get(tid) if tickets is not None else None
        if tpl is None:
            return self._reject(line_id, cmd, f"the content pack has no ticket template {tid!r} now")
        try:
            value, due = check_update(tpl, cmd.field, cmd.value, cmd.due)
        except CorrectionError as exc:
            return self._reject(line_id, cmd, str(exc))
        personal = next((f.personal for f in tpl.fields if f.name == cmd.field), False)
        if personal and self.mask_personal and value is not None:
            value = mask(value, self.mask_char)       # aftercall.mask_personal: the store never holds it in full
        try:
            self.store.correct_ticket(cmd.call_id, cmd.field, value, cmd.by, due)
        except StoreError as exc:
            return self._reject(line_id, cmd, f"call store: {exc}")
        self.corrections += 1
        log.info("line %s: ticket of call %s: %s corrected by %s", line_id, cmd.call_id, cmd.field, cmd.by)

    def _query(self, req: Request) -> None:
        self.queries += 1
        try:
            q = parse_query(req.payload)
            if isinstance(q, CallQuery):
                rec = self.store.get_call(q.call_id)
                if rec is None:
                    raise QueryError(f"no call {q.call_id!r} on this box")
                body = {"ok": True, "op": "call", "timeline": timeline(rec, self.redact, self.mask_char)}
            else:
                rows = self.store.find_calls(q.line, q.agent, q.since, q.limit)
                body = {"ok": True, "op": "calls", "calls": [call_row(r) for r in rows]}
        except (QueryError, StoreError, ValueError) as exc:
            body = {"ok": False, "error": str(exc)}
        if self.query_bus is not None:
            self.query_bus.reply(req, body)
