"""The live daemon (`callcue run`): wires capture -> line analysis -> bus + store.

Threads: capture (per device / WAV line, from capture/), one analysis worker per line
(the only code that touches that line's LineAnalyzer), paho's network thread (commands
arrive there and are handed to the line's worker through a bounded control queue), the
speech engine's thread (results go to the line's worker through a bounded queue of
their own), and a health thread (box health, systemd watchdog).
"""
from __future__ import annotations

import collections
import json
import logging
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import contract, memory, sdnotify
from .bus.broker import EmbeddedBroker
from .bus.client import Bus, BrokerAddress
from .bus.commands import (AckAlert, CallEnd, CallStart, CommandError, Flag, IvrContext, RoleError,
                           legacy_cmd_accepted, parse_command, split_cmd_topic)
from .bus.commands import TicketUpdate
from .bus.query import QueryBus
from .capture.capture import CaptureManager
from .capture.queue import BlockQueue
from .config import LineConfig, SiteConfig
from .line import Call, LineAnalyzer
from .prosody.session import Detectors
from .store.calls import CallStore, StoreError, UnknownAlertError

log = logging.getLogger(__name__)

HEALTH_EVERY_S = 5.0
CONTROL_QUEUE = 2048   # a line's commands waiting for its worker (a burst of a few thousand fits)
# a command that finds its line's control queue full waits this long (paho's network
# thread waits, so the broker holds the rest of a burst) before it is dropped and counted
COMMAND_WAIT_S = 5.0
CLAIMS_KEPT = 4096        # CTI call ids remembered at dispatch (the store holds every id for good)
STARTED_KEPT = 256        # call ids a line remembers starting (until the store has them)
CONTROL_SLICE = 50          # commands applied between two blocks of a line's audio
TRIM_EVERY_S = 30.0         # freed heap memory handed back to the system (a burst must not leave RSS at its peak)
TOUCH_EVERY_S = 5.0         # an open call's record notes it is still running (its duration after a crash)
LATENCY_WINDOW_S = 300.0    # health final_latency_s: the finals of the last 5 minutes
# A line's results come at most once per decoded 100 ms chunk per speaker (partials of a
# streaming model: 20 a second a line); this holds a minute of them, well past
# WORKER_STALL_S, after which systemd restarts a box whose worker has hung.
RESULT_QUEUE = 1200
WORKER_STALL_S = 20.0


class StartupError(Exception):
    """The daemon cannot start (a data_dir it cannot write...); the message says why and
    what to do. `callcue run` prints it without a traceback."""


def private_modes(root: Path) -> int:
    """Make every directory under root (and root) 0700 and every file 0600: the call store,
    the outbox and the broker's files hold transcripts and credentials. Returns how many
    were changed (an older version wrote some 0644)."""
    changed = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name, mode in [(dirpath, 0o700)] + [(os.path.join(dirpath, f), 0o600) for f in filenames]:
            try:
                st = os.lstat(name)
                if (st.st_mode & 0o777) != mode and not os.path.islink(name):
                    os.chmod(name, mode)
                    changed += 1
            except OSError:
                continue     # gone meanwhile (a temp file)
    return changed


@dataclass
class _Control:
    kind: str                  # "cmd" | "status" | "eof"
    data: Any


class LineWorker:
    """Analysis thread of one line."""

    def __init__(self, app: "Daemon", line: LineConfig, detectors: Detectors):
        self.app = app
        self.line = line
        self._started: collections.deque[str] = collections.deque(maxlen=STARTED_KEPT)
        self.queue = BlockQueue(app.cfg.queues.capture_frames)
        self.control: queue.Queue[_Control] = queue.Queue(CONTROL_QUEUE)
        # speech results apart from commands: a burst of commands never drops a transcript
        self.results: queue.Queue = queue.Queue(RESULT_QUEUE)
        self.analyzer = LineAnalyzer(line, app.cfg.calls, detectors,
                                     on_call_start=self._call_started, on_call_end=self._call_ended,
                                     asr=app.asr, assist=app.assist.engine, redact=app.assist.redact,
                                     aftercall=app.cfg.aftercall, mask_char=app.cfg.assist.redaction.mask,
                                     box=app.cfg.box)
        self.busy_s = 0.0          # analysis time, for the real-time factor in health
        self.audio_s = 0.0
        self.control_dropped = 0   # commands (and capture status) lost to a full control queue
        self._drop_log = memory.LogLimiter(log)
        self._touched = 0.0
        self.results_dropped = 0
        self._eof = False
        self.heartbeat = time.monotonic()   # the watchdog is only fed while every worker loops
        # (call time at the end of a block, when it arrived): when a final transcript comes,
        # its latency is measured from the arrival of the audio that ended the utterance
        self.arrivals: collections.deque[tuple[float, float]] = collections.deque(maxlen=3000)
        self._thread = threading.Thread(target=self._main, name=f"line-{line.id}", daemon=True)

    def start(self) -> None:
        self.app.emit([self.analyzer.state_message()])
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def post(self, item: _Control, wait: float = 0.0) -> bool:
        """Queue a command or capture status for the worker; a command waits up to `wait`
        for room. False when dropped (counted in health commands_dropped, logged)."""
        try:
            if wait > 0:
                self.control.put(item, timeout=wait)
            else:
                self.control.put_nowait(item)
            return True
        except queue.Full:
            self.control_dropped += 1
            self._drop_log.error("line %s: control queue full (%d waiting; the line's worker is behind): dropped %s %r "
                                 "(%d dropped so far)", self.line.id, CONTROL_QUEUE, item.kind, item.data,
                                 self.control_dropped)
            return False

    def post_result(self, res) -> None:
        """From the speech engine's thread; never blocks it."""
        try:
            self.results.put_nowait(res)
        except queue.Full:
            self.results_dropped += 1
            log.error("line %s: speech result queue full (worker behind), dropped a %s result of call %s: %r",
                      self.line.id, "final" if res.final else "partial", res.call_id, res.text[:80])

    def _main(self) -> None:
        stop = self.app.stopping
        while not stop.is_set():
            self.heartbeat = time.monotonic()
            # asked before the queues are drained: a recogniser done with the ended call has
            # already queued its last results, so they are handled before the summary
            drained = self.analyzer.closing_drained()
            # results first: they are of audio already analysed, so they belong before a
            # command that arrived meanwhile (a call_start closes the last call's summary)
            while True:
                try:
                    res = self.results.get_nowait()
                except queue.Empty:
                    break
                try:
                    self._result(res)
                except Exception:
                    log.exception("line %s: failed to handle speech result %r", self.line.id, res)
            self._drain_control(CONTROL_SLICE)
            if self.analyzer.call is not None and time.monotonic() - self._touched >= TOUCH_EVERY_S:
                self._touched = time.monotonic()
                call_id = self.analyzer.call.call_id
                self.app.store_op(lambda s: s.touch([call_id], contract.now_iso()))
            if drained:
                self.app.emit(self.analyzer.flush())
            block = self.queue.get(timeout=0.0 if not self.control.empty() else 0.1)   # a burst's rest goes on at once
            if block is None:
                if self._eof:
                    self._eof = False
                    self.app.emit(self.analyzer.end_call(reason="end of recording").messages)
                continue
            t = time.perf_counter()
            try:
                msgs = self.analyzer.feed(block)
            except Exception:
                # a bug in analysis must not take the line (or the box) down: log, count, go on
                log.exception("line %s: analysis failed on block at t=%.2f", self.line.id, block.t)
                self.app.errors += 1
                continue
            self.busy_s += time.perf_counter() - t
            self.audio_s += block.duration
            if self.analyzer.call is not None:
                self.arrivals.append((block.t + block.duration - self.analyzer.call.t0, time.monotonic()))
            self.app.emit(msgs)
        self._drain_control()    # commands taken before the stop (Daemon.stop) are applied
        self.app.emit(self.analyzer.end_call(reason="daemon stopping").messages)

    def _drain_control(self, most: int | None = None) -> None:
        """Apply queued commands, in order: at most `most` of them (a burst is taken a
        slice per block of audio, so the line's audio keeps flowing and the worker's
        heartbeat stays fresh)."""
        n = 0
        while most is None or n < most:
            try:
                item = self.control.get_nowait()
            except queue.Empty:
                return
            n += 1
            self.heartbeat = time.monotonic()
            try:
                self._control(item)
            except Exception:
                log.exception("line %s: failed to handle %s %r", self.line.id, item.kind, item.data)

    def _control(self, item: _Control) -> None:
        a = self.analyzer
        if item.kind == "status":
            up, reason = item.data
            if up:
                log.info("line %s: up (%s)", self.line.id, reason)
                self.app.emit(a.line_up())
            else:
                log.warning("line %s: down (%s)", self.line.id, reason)
                self.app.emit(a.line_down(reason))
        elif item.kind == "eof":
            self._eof = True     # acted on once the blocks already queued are analysed
        elif item.kind == "cmd":
            cmd = item.data
            if isinstance(cmd, CallStart):
                if cmd.call_id is not None and a.call is not None and a.call.call_id == cmd.call_id:
                    log.info("line %s: call_start for call %r, already in progress; ignored", self.line.id, cmd.call_id)
                elif cmd.call_id is not None and (cmd.call_id in self._started or self.app.call_id_taken(cmd.call_id)):
                    self.app.refuse_reused(self.line.id, cmd.call_id)
                else:
                    if cmd.call_id is not None:
                        self._started.append(cmd.call_id)
                    self.app.emit(a.start_call(a.t, "cmd", cmd.call_id, cmd.agent, cmd.ivr))
            elif isinstance(cmd, CallEnd):
                if a.call and cmd.call_id and cmd.call_id != a.call.call_id:
                    log.warning("line %s: call_end for %s but the call in progress is %s; ignored",
                                self.line.id, cmd.call_id, a.call.call_id)
                else:
                    self.app.emit(a.end_call(reason="call_end command").messages)
            elif isinstance(cmd, IvrContext):
                self.app.emit(a.ivr_context({"intent": cmd.intent, **(cmd.data or {})}))
            elif isinstance(cmd, AckAlert):
                self.app.store_op(lambda s: s.ack_alert(a.call.call_id if a.call else None, cmd.alert_id, cmd.by),
                                  expected=(UnknownAlertError,))
            elif isinstance(cmd, Flag):
                call_id = cmd.call_id or (a.call.call_id if a.call else None)
                if call_id is None:
                    log.warning("line %s: flag without a call in progress; ignored", self.line.id)
                else:
                    self.app.store_op(lambda s: s.flag_call(call_id, cmd.reason, cmd.by, cmd.note or ""))

    def _result(self, res) -> None:
        a = self.analyzer
        self.app.emit(a.on_asr_result(res))
        if res.final and a.call is not None and a.call.call_id == res.call_id:
            arrived = next((m for t, m in self.arrivals if t >= res.t_end - 1e-6), None)
            if arrived is not None:
                now = time.monotonic()
                self.app.final_latency.append((now, now - arrived))

    def _call_started(self, call: Call) -> None:
        self.arrivals.clear()     # call times start again at 0: a new call's finals match only its own audio
        self._touched = time.monotonic()
        self.app.store_op(lambda s: s.start_call(self.line.id, call.call_id, call.agent, call.started,
                                                 source="auto" if call.source == "auto" else "cmd", ivr=call.ivr))

    def _call_ended(self, call: Call, reason: str, duration: float) -> None:
        self.app.store_op(lambda s: s.end_call(call.call_id, contract.now_iso(), duration))


def _interrupted_at(rec: dict) -> tuple[str, float]:
    """(ended, duration_s) of a call a crash left open: it ran until it was last seen
    (touched by its line's worker) or its start when never touched."""
    from datetime import datetime
    started = rec["started"]
    seen = rec.get("last_seen") or started
    try:
        duration = max(0.0, (datetime.fromisoformat(seen) - datetime.fromisoformat(started)).total_seconds())
    except (TypeError, ValueError):
        seen, duration = started, 0.0
    return seen, round(duration, 1)


def _percentiles(values, window_s: float | None = None) -> dict[str, float] | None:
    if not values:
        return None
    v = sorted(values)
    pick = lambda q: round(v[min(len(v) - 1, int(q * len(v)))], 3)
    out = {"p50": pick(0.5), "p95": pick(0.95), "n": len(v)}
    if window_s is not None:
        out["window_s"] = window_s
    return out


class Daemon:
    def __init__(self, cfg: SiteConfig, embedded_port: int | None = None):
        self.cfg = cfg
        self.stopping = threading.Event()
        self.errors = 0
        self.rejected_commands = 0
        self.refused_commands = 0     # well-formed, but an op the sender's role may not send
        self.reused_call_ids = 0      # call_start with the id of a call already recorded (also in rejected)
        self.legacy_cmd = legacy_cmd_accepted(cfg)
        self.data_dir = Path(cfg.data_dir)
        self.broker: EmbeddedBroker | None = None
        self.embedded_port = embedded_port or cfg.embedded_broker.port
        self.store: CallStore | None = None
        self.bus: Bus | None = None
        self.capture: CaptureManager | None = None
        self.workers: dict[str, LineWorker] = {}
        self.asr = None
        self.words = None
        self.assist = None            # assist.setup.Assist: engine, redaction, pack watcher
        self.records = None           # records.RecordService: ticket corrections and look-back queries
        self.query_bus: QueryBus | None = None
        self._pack = None             # the content pack when no assist engine runs (see _content)
        # (time.monotonic(), seconds) of each final: health reports the last LATENCY_WINDOW_S
        self.final_latency: collections.deque[tuple[float, float]] = collections.deque(maxlen=5000)
        # the last retained message of each topic (line states, flows): published again on
        # every (re)connect, so a broker that lost its retained store is repaired
        self._retained: dict[str, contract.Message] = {}
        self._retained_lock = threading.Lock()
        self._connected_once = False
        # held while a command is handed to a worker and while stopping is set, so every
        # command taken is applied (see _on_cmd)
        self._cmd_lock = threading.Lock()
        self._claims: collections.OrderedDict[str, str] = collections.OrderedDict()   # CTI call id -> the line it started on
        self._health_thread: threading.Thread | None = None
        self.started_at = time.monotonic()

    # ---- outputs ----
    def emit(self, msgs: list[contract.Message]) -> None:
        for m in msgs:     # where each goes is the message's own route (contract.py)
            if contract.Route.PUBLISH in m.route:
                if m.retain:
                    with self._retained_lock:   # never behind a re-publish of an older one
                        self._retained[m.subtopic] = m
                        self.bus.publish(m)
                else:
                    self.bus.publish(m)
            if contract.Route.STORE in m.route:
                self.store_op(lambda s, m=m: s.add_event(m.payload["call_id"], m.output, m.payload))

    def store_op(self, fn, expected: tuple = ()) -> None:
        try:
            fn(self.store)
        except expected as exc:
            # e.g. an ack for an alert raised outside any call (line_down while idle): not stored
            log.info("call store: %s", exc)
        except StoreError as exc:
            self.errors += 1
            log.error("call store: %s", exc)

    def refuse_reused(self, line_id: str, call_id: str) -> None:
        self.rejected_commands += 1
        self.reused_call_ids += 1
        log.warning("line %s: call_start refused: call id %r is already recorded (a finished or open call); "
                    "a new call needs a new id", line_id, call_id)

    def _claim(self, call_id: str, line_id: str) -> bool:
        """Claim a CTI call id for a line in the order call_starts arrive (paho's thread,
        under _cmd_lock), before any line worker runs: two lines' workers run apart, and the
        store learns of a call only after its line has started it, so without this a reused id
        could start on a second line in that gap. True when the id is new or already this
        line's (a repeated call_start, which the line ignores or refuses itself)."""
        owner = self._claims.setdefault(call_id, line_id)
        self._claims.move_to_end(call_id)
        while len(self._claims) > CLAIMS_KEPT:     # older ids are in the store by now
            self._claims.popitem(last=False)
        return owner == line_id

    def call_id_taken(self, call_id: str) -> bool:
        """A call with this id is recorded already (open, recent or archived), or in
        progress on a line."""
        if any(w.analyzer.call is not None and w.analyzer.call.call_id == call_id for w in self.workers.values()):
            return True
        return self.store is not None and self.store.knows(call_id)

    def _republish(self) -> None:
        """On every reconnect (paho's thread): the retained state again, newest last. The
        first connection needs none: everything since the start waits in the outbox."""
        if not self._connected_once:
            self._connected_once = True
            return
        with self._retained_lock:
            msgs = list(self._retained.values())
            for m in msgs:
                self.bus.publish(m)
        if msgs:
            log.info("bus: retained state published again (%d message(s))", len(msgs))

    # ---- inputs ----
    def _on_cmd(self, subtopic: str, payload: bytes) -> bool | None:
        """A command from the broker (paho's thread). Returns False for one not taken
        because the daemon is stopping: it is not acknowledged, so the broker delivers it
        again to the next session (the session is persistent)."""
        line_id, role = split_cmd_topic(subtopic)     # line/{line}/cmd/{role} (or legacy line/{line}/cmd)
        worker = self.workers.get(line_id)
        if worker is None:
            self.rejected_commands += 1
            log.warning("command for unknown line %r rejected (this box has %s)", line_id,
                        ", ".join(self.workers) or "no lines")
            return
        try:
            cmd = parse_command(line_id, payload, role, legacy_ok=self.legacy_cmd)
        except RoleError as exc:
            self.refused_commands += 1
            log.warning("line %s: command refused: %s", line_id, exc)
            return
        except CommandError as exc:
            self.rejected_commands += 1
            log.warning("line %s: command rejected: %s (payload %r)", line_id, exc, payload[:200])
            return
        with self._cmd_lock:
            if self.stopping.is_set():
                return False
            if isinstance(cmd, TicketUpdate):     # after the call: the store's business, not the line's
                self.records.ticket_update(line_id, cmd)
                return
            if isinstance(cmd, CallStart) and cmd.call_id is not None and not self._claim(cmd.call_id, line_id):
                self.refuse_reused(line_id, cmd.call_id)
                return
            worker.post(_Control("cmd", cmd), wait=COMMAND_WAIT_S)

    def _content(self):
        """The content pack a ticket correction is checked against: the assist engine's (it
        follows hot reloads), else the configured pack loaded once (a box without speech
        recognition may still hold calls with tickets)."""
        if self.assist is not None and self.assist.engine is not None:
            return self.assist.engine.content
        if self._pack is None:
            from types import SimpleNamespace

            from .assist.pack import default_pack_dir, load_pack
            root = self.cfg.assist.content or default_pack_dir()
            self._pack = SimpleNamespace(pack=load_pack(Path(root)))
        return self._pack

    def _count_rejected(self) -> None:
        self.rejected_commands += 1

    def _on_status(self, line_id: str, up: bool, reason: str) -> None:
        self.workers[line_id].post(_Control("status", (up, reason)))

    def _on_asr(self, res) -> None:
        self.workers[res.line].post_result(res)

    def _on_eof(self, line_id: str) -> None:
        self.workers[line_id].post(_Control("eof", None))

    # ---- life cycle ----
    def _prepare_data_dir(self) -> None:
        """Before anything slow: a data_dir that cannot be written stops start-up with a
        message, and every file the daemon writes from here on is 0600 (directories 0700)."""
        self._umask = os.umask(0o077)     # given back at stop (a test runs daemons in its own process)
        d = self.data_dir
        try:
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
            probe = d / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise StartupError(f"data_dir {d} cannot be written: {exc.strerror or exc} "
                               f"({type(exc).__name__}). Create it for the user the daemon runs as "
                               f"(uid {os.getuid()}), or point data_dir at a writable folder.") from None
        n = private_modes(d)
        if n:
            log.info("data_dir %s: %d file(s)/folder(s) made private (files 0600, folders 0700)", d, n)

    def start(self) -> None:
        cfg = self.cfg
        self._prepare_data_dir()
        if cfg.asr is not None:
            # model problems are start-up errors, never a crash in the middle of a call
            from .asr.setup import build_engine
            from .asr.words import load_words
            self.words = load_words(cfg.asr.sensitive_words) if cfg.asr.sensitive_words else None
            self.asr = build_engine(cfg.asr, self._on_asr, cfg.asr.models_dir)
        from .assist.setup import build_assist
        self.assist = build_assist(cfg, self.words)   # a broken content pack stops start-up here
        if cfg.broker is None:
            self.broker = EmbeddedBroker.from_config(cfg.embedded_broker, self.embedded_port, self.data_dir / "broker")
            address = self.broker.client_address(cfg.box)  # 0.0.0.0 -> loopback; box-<box> with acl_dir
            self.broker.start()
            log.info("embedded broker listening on %s:%d", cfg.embedded_broker.bind, self.embedded_port)
        else:
            address = BrokerAddress.of(cfg.broker)
        self.store = CallStore(self.data_dir / "calls")
        for rec in self.store.open_calls():
            # a call left open by a crash or power cut: close it so reports stay right, with
            # the duration it ran (its record was touched every TOUCH_EVERY_S while it did)
            ended, duration = _interrupted_at(rec)
            self.store_op(lambda s, r=rec, e=ended, d=duration: s.end_call(r["call_id"], e, d, status="interrupted"))
        self._retention()
        # a persistent session with a fixed client id: QoS 1 commands sent while the box
        # restarts wait at the broker and are applied, in order, when it is back
        self.bus = Bus(cfg.topic_root, cfg.box, address, self.data_dir / "outbox.sqlite3",
                       client_id=f"callcue-{cfg.site}-{cfg.floor}-{cfg.box}", persistent=True)
        self.bus.on_connect(self._republish)
        from .records import RecordService
        red = cfg.assist.redaction
        if red.enabled:
            redact = self.assist.redact
        else:   # a look-back timeline shows redacted text only, whatever the live setting
            from .assist.redact import RedactionConfig, Redactor
            redactor = Redactor(RedactionConfig())
            redact = lambda text: redactor.redact(text).text  # noqa: E731
        self.records = RecordService(self.store, self._content,
                                     redact=redact, mask_char=red.mask, mask_personal=cfg.aftercall.mask_personal,
                                     on_rejected=self._count_rejected)
        self.records.start()
        self.query_bus = QueryBus(cfg.topic_root, cfg.box, address, f"callcue-{cfg.site}-{cfg.floor}-{cfg.box}-query",
                                  self.records.request)
        self.records.query_bus = self.query_bus
        detectors: dict[int, Detectors] = {}
        for line in cfg.lines:
            det = detectors.setdefault(line.sample_rate, Detectors(cfg.detectors, line.sample_rate))
            self.workers[line.id] = LineWorker(self, line, det)
        self.bus.subscribe(contract.cmd_topic_filter(), self._on_cmd)
        self.bus.subscribe(contract.legacy_cmd_topic_filter(), self._on_cmd)   # refused unless legacy_cmd
        if self.legacy_cmd and cfg.broker is not None:
            log.warning("broker.legacy_cmd_topic is on: line/+/cmd takes every op from any client of the broker")
        if self.asr is not None:
            self.asr.start()
        for w in self.workers.values():
            w.start()            # before the bus: commands the broker kept are handed to running workers
        self.bus.start()
        self.query_bus.start()
        self.capture = CaptureManager(cfg, {lid: w.queue for lid, w in self.workers.items()},
                                      on_status=self._on_status, on_eof=self._on_eof)
        self.capture.start()
        self._health_thread = threading.Thread(target=self._health_main, name="health", daemon=True)
        self._health_thread.start()
        if self.assist.watcher is not None:
            threading.Thread(target=self._reload_main, name="pack-reload", daemon=True).start()
        if cfg.retention.days is not None:
            threading.Thread(target=self._retention_main, name="retention", daemon=True).start()
        sdnotify.ready()
        sdnotify.status(f"{len(cfg.lines)} line(s), broker {address.host}:{address.port}")
        log.info("callcue %s/%s/%s running: %d line(s)", cfg.site, cfg.floor, cfg.box, len(cfg.lines))

    def stop(self) -> None:
        sdnotify.stopping()
        with self._cmd_lock:     # a command taken from here on is left to the next session
            self.stopping.set()
        if self.capture:
            self.capture.stop()
        for w in self.workers.values():
            w.join(5.0)
        if self.asr is not None:
            self.asr.stop()      # joins its thread and decode threads: no native thread outlives it
            for w in self.workers.values():   # finals of the last utterances
                while True:
                    try:
                        res = w.results.get_nowait()
                    except queue.Empty:
                        break
                    self.emit(w.analyzer.on_asr_result(res))
        for w in self.workers.values():       # summaries of calls that just ended
            self.emit(w.analyzer.flush())
        if self.query_bus is not None:
            self.query_bus.stop()
        if self.records is not None:
            self.records.stop()
        if self.bus:
            self.bus.publish(contract.box_health(self.cfg.box, self.health()))
            self.bus.stop(timeout=5.0)
        if self.store:
            self.store.close()
        if self.broker:
            self.broker.stop()
        if getattr(self, "_umask", None) is not None:
            os.umask(self._umask)
        if self.asr is not None:
            self.asr.shutdown()  # the models and every channel's VAD/stream, before the interpreter's teardown

    def health(self) -> dict[str, Any]:
        cap = self.capture.health() if self.capture else {}
        lines = {}
        for lid, w in self.workers.items():
            h = cap.get(lid, {})
            lines[lid] = {"status": w.analyzer.status, "up": h.get("up"),
                          "queue_frames": w.queue.depth_frames, "dropped_frames": w.queue.dropped_frames,
                          "results_dropped": w.results_dropped, "commands_dropped": w.control_dropped,
                          "asr_refused": self.asr.refused.get(lid, 0) if self.asr else 0,
                          "aftercall_ms_max": round(max(w.analyzer.aftercall_ms), 1) if w.analyzer.aftercall_ms else None,
                          "aftercall_errors": w.analyzer.aftercall_errors,
                          "analysis_rtf": round(w.busy_s / w.audio_s, 5) if w.audio_s else None}
        return {
            "load": [round(x, 2) for x in os.getloadavg()],
            "uptime_s": round(time.monotonic() - self.started_at, 1),
            "lines_up": sum(1 for lid in lines if cap.get(lid, {}).get("up")),
            "lines": lines,
            "frames_dropped": sum(l["dropped_frames"] for l in lines.values()),
            "asr_rtf": self.asr.stats()["rtf"] if self.asr else None,
            "asr": self.asr.stats() if self.asr else None,
            "final_latency_s": self._latency(),
            "bus": self.bus.stats() if self.bus else {},
            "rejected_commands": self.rejected_commands,
            "refused_commands": self.refused_commands,
            "reused_call_ids": self.reused_call_ids,
            "commands_dropped": sum(l["commands_dropped"] for l in lines.values()),
            "rss_mb": memory.rss_mb(),
            "errors": self.errors,
            "assist": self._assist_health(),
            "records": {**self.records.stats(), **(self.query_bus.stats() if self.query_bus else {})}
            if self.records is not None else None,
        }

    def _latency(self) -> dict[str, float] | None:
        """Final transcript latency over the last LATENCY_WINDOW_S (a quiet box reads None,
        not the figures of an old burst)."""
        since = time.monotonic() - LATENCY_WINDOW_S
        return _percentiles([v for t, v in list(self.final_latency) if t >= since], LATENCY_WINDOW_S)

    def _retention(self) -> None:
        """retention.days: calls (with their events) and archives older than that go."""
        days = self.cfg.retention.days
        if days is None or self.store is None:
            return
        import datetime as dt
        cutoff = (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=days)).isoformat()
        try:
            got = self.store.purge_before(cutoff)
        except StoreError as exc:
            self.errors += 1
            log.error("retention: purge of calls before %s failed: %s", cutoff, exc)
            return
        log.info("retention (%d days): deleted %d call(s), %d archive file(s) and %d day(s) of events "
                 "from before %s", days, got["calls"], got["archives"], got["event_days"], cutoff)

    def _retention_main(self) -> None:
        """Once a day (looked at hourly: the first hour of a new UTC day purges)."""
        import datetime as dt
        done = dt.datetime.now(dt.timezone.utc).date()
        while not self.stopping.wait(3600):
            today = dt.datetime.now(dt.timezone.utc).date()
            if today != done:
                done = today
                self._retention()

    def _assist_health(self) -> dict[str, Any] | None:
        if self.assist is None or self.assist.engine is None:
            return None
        w = self.assist.watcher
        return {**self.assist.engine.health(), "reloads": w.reloads, "pack_error": w.error}

    def _reload_main(self) -> None:
        """Content pack edits go live without a restart; a broken edit is refused (see content.py)."""
        every = self.cfg.assist.reload_s
        while not self.stopping.wait(every):
            try:
                new = self.assist.watcher.check()
            except Exception:
                self.errors += 1
                log.exception("content pack reload failed; keeping the previous version")
                continue
            if new is not None:
                self.assist.engine.swap(new)

    def _health_main(self) -> None:
        every = min(HEALTH_EVERY_S, (sdnotify.watchdog_interval() or 2 * HEALTH_EVERY_S) / 2)
        trimmed = time.monotonic()
        while not self.stopping.wait(every):
            if time.monotonic() - trimmed >= TRIM_EVERY_S:
                trimmed = time.monotonic()
                memory.trim()
            try:
                self.bus.publish(contract.box_health(self.cfg.box, self.health()))
            except Exception:
                log.exception("health report failed")
            stuck = [lid for lid, w in self.workers.items() if time.monotonic() - w.heartbeat > WORKER_STALL_S]
            if stuck:
                # no ping: systemd restarts a box whose analysis has hung
                log.error("line worker(s) %s stalled for over %.0f s; not feeding the watchdog",
                          ", ".join(stuck), WORKER_STALL_S)
            else:
                try:
                    sdnotify.watchdog()
                except OSError as exc:
                    log.error("systemd watchdog ping failed: %s", exc)

    def run_forever(self) -> int:
        done = threading.Event()

        def _stop(signum, _frame):
            log.info("signal %d: stopping", signum)
            done.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        self.start()
        try:
            while not done.wait(0.5):
                pass
        finally:
            self.stop()
        return 0
