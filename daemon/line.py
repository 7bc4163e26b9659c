"""One line's analysis: call boundaries, prosody session, alerts -> contract messages.

No I/O: blocks and commands go in, `contract.Message`s come out. The live daemon and
`callcue replay` drive the same object, so they behave the same.
"""
from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Callable, NamedTuple

import numpy as np

from . import contract
from .aftercall.record import Utterance
from .audio import Block
from .config import CallsConfig, LineConfig
from .asr.gate import SpeechGate
from .asr.transcripts import TranscriptTracker
from .prosody.session import Detectors, ProsodyAlert, ProsodySession

log = logging.getLogger(__name__)

PREROLL_S = 1.0       # audio kept while idle, so an auto-started call includes its first words
ACTIVITY_WINDOW_S = 2.0
# After a call ends the recogniser still decodes its last utterances (often the closing
# line); the call's assist session is closed (summary, at_end checks) once this much more
# line audio has passed, or when the line's next call starts.
ASR_DRAIN_S = 5.0
# what a call keeps in memory for its after-call work (an hours-long call stays bounded)
KEEP_UTTERANCES = 5000
KEEP_ALERTS = 2000
FRAME_S = 0.02        # prosody frame: the VAD's speech seconds per side are counted in these


@dataclass
class Call:
    call_id: str
    agent: str
    source: str                   # "cmd" | "auto" | "replay"
    t0: float                     # line audio time of the call's first sample
    started: str                  # wall clock ISO
    session: ProsodySession
    ivr: dict[str, Any] | None = None
    alerts: int = 0
    last_speech: float = 0.0      # line audio time of the last speech heard
    kinds: collections.Counter = field(default_factory=collections.Counter)
    gates: dict[str, SpeechGate] = field(default_factory=dict)
    fast_spans: list[tuple[float, float]] = field(default_factory=list)   # fast_speech alerts raised
    assist: Any = None            # AssistSession, when the assist engine runs
    ended_at: float | None = None # line audio time the call ended
    # speech recognition: a call is handed to the recogniser once it has lasted
    # calls.min_call_s (a burst of call_starts opens no channel); until then the gated audio
    # waits here, and goes in first when the channels open
    asr_opened: tuple[str, ...] | None = None     # speakers with a channel; None: not yet opened
    asr_backlog: list[tuple[str, Any]] = field(default_factory=list)
    # after the call (aftercall/): the site's local date at call start, the final
    # utterances of both channels with their text NOT redacted (memory only: dropped once
    # the after-call work is done, never published or stored in this form), every alert
    # published for the call, and the VAD's speech frames per side (agent, customer)
    call_date: date | None = None
    said: list[Utterance] = field(default_factory=list)
    alert_log: list[dict[str, Any]] = field(default_factory=list)
    speech_frames: Any = field(default_factory=lambda: np.zeros(2, dtype=np.int64))
    # the call record's turns when a second recognition pass made them (unredacted, memory
    # only, as `said`): each replaces the live finals of its speaker it overlaps
    record_text: list[Utterance] | None = None

    @property
    def unrecognised(self) -> bool:
        """In a language the speech model does not know: its text would be made up."""
        return self.assist is not None and self.assist.off is not None


class Ended(NamedTuple):
    """What end_call did: the call it ended (None when none was in progress) and the
    messages that ending produced."""

    call: Call | None
    messages: list[contract.Message]


class LineAnalyzer:
    """Owns one line's call state. Not thread-safe: one analysis thread per line."""

    def __init__(self, line: LineConfig, calls: CallsConfig, detectors: Detectors,
                 now: Callable[[], str] = contract.now_iso, new_id: Callable[[], str] = contract.new_id,
                 on_call_start: Callable[[Call], None] | None = None,
                 on_call_end: Callable[[Call, str, float], None] | None = None,
                 asr=None, assist=None, redact: Callable[[str], str] | None = None,
                 aftercall=None, mask_char: str = "*", today: Callable[[], date] = date.today,
                 box: str | None = None):
        self.cfg = line
        self.box = box                  # this box's id: the summary's `call` says which box took the call
        self.aftercall = aftercall      # config.AfterCallConfig, or None: the defaults
        self.mask_char = mask_char      # assist.redaction.mask: masks personal ticket values when asked
        self.today = today              # the site's local date (replay: the call's own)
        self.aftercall_ms: collections.deque[float] = collections.deque(maxlen=200)   # per ended call
        self.aftercall_errors = 0
        self.asr = asr                  # shared AsrEngine, or None: prosody only
        self.assist = assist            # shared AssistEngine, or None
        self.redact = redact            # masks personal numbers before anything leaves the line
        self.transcripts = TranscriptTracker(line.id, detectors.cfg)
        self._team_det: dict[str, Detectors] = {}
        self._closing: Call | None = None   # ended call whose assist session still takes late transcripts
        self.on_call_start = on_call_start
        self.on_call_end = on_call_end
        self.calls = calls
        self.det = detectors
        self.now = now
        self.new_id = new_id
        self.agent = line.agent
        self.call: Call | None = None
        self.status = "idle"
        self.since = now()
        self.t = 0.0                    # line audio time after the last block
        self._idle = detectors.session()
        self._preroll: collections.deque[Block] = collections.deque()
        self._activity: collections.deque[tuple[float, float]] = collections.deque()
        self._pending_ivr: dict[str, Any] | None = None
        self._record_seq: dict[str, int] = {}    # the call record's turns, numbered per call

    # ---- state ----
    def state_message(self) -> contract.Message:
        return contract.line_state(self.cfg.id, self.agent, self.call.call_id if self.call else None,
                                   self.status, self.since)

    def _set_status(self, status: str) -> list[contract.Message]:
        if status == self.status:
            return []
        self.status = status
        self.since = self.now()
        return [self.state_message()]

    # ---- calls ----
    def start_call(self, t0: float, source: str, call_id: str | None = None, agent: str | None = None,
                   ivr: dict[str, Any] | None = None) -> list[contract.Message]:
        out: list[contract.Message] = []
        if self.call is not None:
            out += self.end_call(reason="superseded by a new call_start").messages
        out += self._finish_closing()
        if agent:
            self.agent = agent
        self.call = Call(call_id or self.new_id(), self.agent, source, t0, self.now(),
                         self._detectors().session(), ivr or self._pending_ivr, last_speech=t0,
                         call_date=self.today())
        self._pending_ivr = None
        self._asr_language(self.call)
        if self.assist is not None:
            self.call.assist = self.assist.session(self.cfg.id, self.call.call_id, self.cfg.team, self.call.ivr)
        if self.asr is not None:
            for who in ("agent", "customer"):
                self.call.gates[who] = self.asr.speech_gate(self.cfg.sample_rate)
            if self.calls.min_call_s <= 0:
                self._open_asr(self.call)
        self.transcripts.call_started(self.call.call_id)
        if self.status != "down":
            self.status = "idle"  # force a fresh state message carrying the call id
            out += self._set_status("in_call")
        log.info("line %s: call %s started (%s)", self.cfg.id, self.call.call_id, source)
        if self.on_call_start:
            self.on_call_start(self.call)
        if self.call.assist is not None:
            out += self.call.assist.start()
        return out

    def _detectors(self) -> Detectors:
        """The line's detectors, with its team's thresholds from the content pack if it sets any."""
        if self.assist is None or not self.cfg.team:
            return self.det
        cfg = self.assist.detectors_for(self.cfg.team, self.det.cfg)
        if cfg == self.det.cfg:
            return self.det
        key = cfg.model_dump_json()
        if key not in self._team_det:
            self._team_det = {key: Detectors(cfg, self.det.sample_rate)}   # one per pack version
        return self._team_det[key]

    def _finish_closing(self) -> list[contract.Message]:
        """Close the last ended call's assist session (summary, at_end checks)."""
        call, self._closing = self._closing, None
        if call is None or call.assist is None:
            if call is not None:
                call.said, call.record_text = [], None
            return []
        msgs = call.assist.close(max(0.0, (call.ended_at or self.t) - call.t0))
        self._keep_alerts(call, msgs)
        return self._with_call(call, self._after_call(call, msgs))

    def _with_call(self, call: Call, msgs: list[contract.Message]) -> list[contract.Message]:
        """The summary says who took the call, when and what was raised in it (`call`), so a
        central collector (`callcue collect`) counts it by agent, team, day and alert kind."""
        length = max(0.0, (call.ended_at if call.ended_at is not None else self.t) - call.t0)
        for m in msgs:
            if m.output == "summary" and isinstance(m.payload, dict):
                started = datetime.fromisoformat(call.started).astimezone()   # the box's local clock
                m.payload["call"] = {
                    "agent": call.agent or None, "team": self.cfg.team, "box": self.box,
                    "started": started.isoformat(timespec="seconds"), "duration_s": round(length, 2),
                    "alerts": [{k: a.get(k) for k in ("kind", "speaker", "severity", "t_start", "t_end")}
                               for a in call.alert_log]}
        return msgs

    def _after_call(self, call: Call, msgs: list[contract.Message]) -> list[contract.Message]:
        """The call's summary message, filled by the content pack's after-call logic:
        ticket, summary text, QA scorecard, call type (aftercall/). Runs here, on the line's
        worker, once the recogniser has finished the call; a failure keeps the assist
        session's own summary (logged, counted)."""
        said, call.said = call.said, []               # the unredacted text goes now, whatever happens
        text, call.record_text = call.record_text, None
        k = next((i for i, m in enumerate(msgs) if m.output == "summary"), None)
        ac = getattr(call.assist.content, "aftercall", None)
        if k is None or call.unrecognised or ac is None or (self.aftercall is not None and not self.aftercall.enabled):
            return msgs
        t0 = time.perf_counter()
        try:
            from .aftercall.corrections import ticket_form
            from .aftercall.record import CallRecord

            length = max(0.0, (call.ended_at if call.ended_at is not None else self.t) - call.t0)
            speech = {"agent": float(call.speech_frames[0]) * FRAME_S,
                      "customer": float(call.speech_frames[1]) * FRAME_S}
            record = CallRecord.from_assist(call.assist, with_record(said, text), call.alert_log,
                                            call_date=call.call_date or self.today(), duration_s=length,
                                            speech_s=speech, agent=call.agent)
            mask = bool(self.aftercall is not None and self.aftercall.mask_personal)
            out = ac.finish(record, redact=self.redact or _unchanged, mask_personal=mask, mask_char=self.mask_char)
            card = dict(out["scorecard"])
            ticket = out["ticket"]
            if ticket is not None:
                tpl = ac.pack.tickets.get(ticket["template"])
                if tpl is not None:
                    ticket = {**ticket, "form": ticket_form(tpl, card.get("language"))}
            if record.flow is not None:
                # the path with the call time each step was done: the call's timeline shows it
                card["steps"] = [{"id": s.id, "title": s.title, "done": s.done,
                                  "t": None if s.t is None else round(s.t, 2)} for s in record.flow.steps]
            msg = contract.summary(self.cfg.id, call.call_id, out["summary"], ticket, card, out["call_type"],
                                   ivr=record.ivr)
        except Exception:
            self.aftercall_errors += 1
            log.exception("line %s: after-call work failed for call %s; publishing the assist summary only",
                          self.cfg.id, call.call_id)
            return msgs
        self.aftercall_ms.append((time.perf_counter() - t0) * 1000)
        return msgs[:k] + [msg] + msgs[k + 1:]

    def _keep_alerts(self, call: Call, msgs: list[contract.Message]) -> None:
        """Remember the call's published alerts for its after-call work."""
        for m in msgs:
            if m.output == "alert" and isinstance(m.payload, dict) and m.payload.get("call_id") == call.call_id \
                    and len(call.alert_log) < KEEP_ALERTS:
                call.alert_log.append(m.payload)

    def closing_drained(self) -> bool:
        """True when an ended call waits for its summary and the recogniser has finished it."""
        c = self._closing
        if c is None or c.assist is None:
            return False
        return self.asr is None or not self.asr.has_call(self.cfg.id, c.call_id)

    def flush(self) -> list[contract.Message]:
        """Everything still pending (replay end, daemon stop): the last call's summary."""
        return self._finish_closing()

    def end_call(self, reason: str = "call_end") -> Ended:
        call = self.call
        if call is None:
            return Ended(None, [])
        out = self._alert_messages(call, call.session.close())
        if self.asr is not None:
            for who in call.asr_opened or ():
                self.asr.close(self.cfg.id, who)
            call.asr_backlog.clear()
        self.call = None
        call.ended_at = self.t
        short = self.t - call.t0 < self.calls.min_call_s
        if short and call.assist is not None:
            # a call of a burst (see calls.min_call_s): recorded, with its alerts, but it gets
            # no summary or after-call work, and nothing of it was sent to the recogniser
            call.assist = None
        out += self._finish_closing()
        self._closing = call
        self._idle = self.det.session()
        self._preroll.clear()
        self._activity.clear()
        if self.status != "down":
            out += self._set_status("idle")
        log.info("line %s: call %s ended (%s), %d alert(s)%s", self.cfg.id, call.call_id, reason, call.alerts,
                 f"; shorter than calls.min_call_s ({self.calls.min_call_s:g} s): no summary" if short else "")
        if self.on_call_end:
            self.on_call_end(call, reason, max(0.0, self.t - call.t0))
        return Ended(call, out)

    # ---- audio ----
    def feed(self, block: Block) -> list[contract.Message]:
        out: list[contract.Message] = []
        out += self.line_up()   # audio flowing again means the line is back
        self.t = block.t + block.duration
        if self._closing is not None and self.t - (self._closing.ended_at or 0.0) >= ASR_DRAIN_S:
            out += self._finish_closing()
        if self.call is None:
            out += self._feed_idle(block)
            return out
        call = self.call
        alerts = self._analyse(call, block)
        if call.session.last_vad.any():
            # last frame with speech in this block
            idx = np.flatnonzero(call.session.last_vad.any(axis=0))[-1]
            call.last_speech = block.t + (idx + 1) * 0.02
        out += self._alert_messages(call, alerts)
        if call.assist is not None:
            ticked = call.assist.tick(self.t - call.t0)
            self._keep_alerts(call, ticked)
            out += ticked
        if (self.calls.auto and call.source == "auto"
                and self.t - call.last_speech >= self.calls.idle_end_s):
            out += self.end_call(reason=f"no speech for {self.calls.idle_end_s:.0f} s").messages
        return out

    def _feed_idle(self, block: Block) -> list[contract.Message]:
        if not self.calls.auto:
            return []
        self._idle.process(block.agent, block.customer)
        self._preroll.append(block)
        while self._preroll and self.t - self._preroll[0].t > PREROLL_S + block.duration:
            self._preroll.popleft()
        speech_s = float(self._idle.last_vad.any(axis=0).sum()) * 0.02
        self._activity.append((self.t, speech_s))
        while self._activity and self.t - self._activity[0][0] > ACTIVITY_WINDOW_S:
            self._activity.popleft()
        if sum(s for _, s in self._activity) < self.calls.start_speech_s:
            return []
        pre = list(self._preroll)
        out = self.start_call(pre[0].t, "auto")
        for b in pre:
            out += self._alert_messages(self.call, self._analyse(self.call, b))
        return out

    # ---- faults ----
    def line_down(self, reason: str) -> list[contract.Message]:
        out = self._set_status("down")
        call = self.call
        t = self.t - call.t0 if call else 0.0
        out.append(contract.alert(self.cfg.id, call.call_id if call else None, "line_down", "critical",
                                  None, t, t, f"Line {self.cfg.id} is down: {reason}",
                                  {"reason": reason, "agent": self.agent}))
        return out

    def line_up(self) -> list[contract.Message]:
        if self.status != "down":
            return []
        return self._set_status("in_call" if self.call else "idle")

    def ivr_context(self, data: dict[str, Any]) -> list[contract.Message]:
        if self.call is None:
            self._pending_ivr = data
            return []
        self.call.ivr = data
        self._asr_language(self.call)
        return self.call.assist.set_ivr(data) if self.call.assist is not None else []

    def _asr_language(self, call: Call) -> None:
        """The IVR context's language, for a multilingual record model (asr.record_model)."""
        lang = (call.ivr or {}).get("lang") or (call.ivr or {}).get("language")
        if lang and self.asr is not None and hasattr(self.asr, "set_language"):
            self.asr.set_language(self.cfg.id, call.call_id, str(lang))

    # ---- speech recognition ----
    def _analyse(self, call: Call, block: Block) -> list[ProsodyAlert]:
        alerts = call.session.process(block.agent, block.customer)
        call.speech_frames += (call.session.last_vad > 0).sum(axis=1)
        if self.asr is not None and call.gates and not call.unrecognised:     # not decoded
            t = block.t - call.t0
            vad = call.session.last_vad
            for ch, (who, x) in enumerate((("agent", block.agent), ("customer", block.customer))):
                for chunk in call.gates[who].push(x, t, vad[ch] > 0):
                    if call.asr_opened is None:
                        call.asr_backlog.append((who, chunk))
                    elif who in call.asr_opened:
                        self.asr.feed(self.cfg.id, who, chunk)
            if call.asr_opened is None and t + block.duration >= self.calls.min_call_s - 1e-9:
                self._open_asr(call)
        return alerts

    def _open_asr(self, call: Call) -> None:
        """Open the call's recogniser channels (each may be refused by the engine's caps)
        and hand over the audio gated so far, in the order it came."""
        call.asr_opened = tuple(who for who in ("agent", "customer")
                                if self.asr.open(self.cfg.id, who, call.call_id, self.cfg.sample_rate))
        for who, chunk in call.asr_backlog:
            if who in call.asr_opened:
                self.asr.feed(self.cfg.id, who, chunk)
        call.asr_backlog.clear()

    def on_asr_result(self, res) -> list[contract.Message]:
        """A transcript from the engine (possibly for a call that has just ended)."""
        live = self.call if self.call is not None and self.call.call_id == res.call_id else None
        owner = live or (self._closing if self._closing is not None and self._closing.call_id == res.call_id else None)
        if owner is not None and owner.unrecognised:
            return []       # decoded before the IVR said the language: not published
        if getattr(res, "record", False):
            return self._record_result(res, owner)
        text = self.redact(res.text) if self.redact is not None else res.text
        msgs, alerts = self.transcripts.result(res, text, live.fast_spans if live else None)
        if owner is not None and owner.assist is not None:
            now = (self.t if owner.ended_at is None else owner.ended_at) - owner.t0
            alerts += owner.assist.heard(res.speaker, text, res.final, res.t_start, res.t_end, res.utterance, now)
        if owner is not None:
            for a in alerts:
                if a.output == "alert":
                    owner.alerts += 1
                    owner.kinds[a.payload["kind"]] += 1
            self._keep_alerts(owner, alerts)
            if res.final and res.text.strip() and len(owner.said) < KEEP_UTTERANCES:
                owner.said.append(Utterance(res.speaker, res.text, float(res.t_start), float(res.t_end)))
        return msgs + alerts

    def _record_result(self, res, owner: Call | None) -> list[contract.Message]:
        """A turn of the call record (the engine's second pass): published and stored
        (redacted, like transcripts), and kept unredacted as the call's record text, which
        the after-call work reads instead of the live finals. Not given to the assist
        engine: it has already heard the live finals of the same words."""
        seq = self._record_seq.get(res.call_id, 0)
        self._record_seq = {res.call_id: seq + 1}      # one call at a time per line
        text = self.redact(res.text) if self.redact is not None else res.text
        if owner is not None and hasattr(owner, "record_text"):
            from .aftercall.record import Utterance as Said
            if owner.record_text is None:
                owner.record_text = []
            owner.record_text.append(Said(res.speaker, res.text, float(res.t_start), float(res.t_end)))
        return [contract.record(self.cfg.id, res.call_id, res.speaker, text, res.t_start, res.t_end, seq,
                                getattr(self.asr, "record_name", ""))]

    # ---- helpers ----
    def _alert_messages(self, call: Call, alerts: list[ProsodyAlert]) -> list[contract.Message]:
        out = []
        for a in alerts:
            if a.kind == "fast_speech":
                if any(s < a.t_end and a.t_start < e for s, e in call.fast_spans):
                    continue   # the transcript already reported this stretch
                call.fast_spans.append((a.t_start, a.t_end))
            call.alerts += 1
            call.kinds[a.kind] += 1
            out.append(contract.alert(self.cfg.id, call.call_id, a.kind, a.severity, a.speaker,
                                      a.t_start, a.t_end, a.message, a.evidence))
        self._keep_alerts(call, out)
        return out


def with_record(said: list[Utterance], record: list[Utterance] | None) -> list[Utterance]:
    """The call's text for its after-call work: the live finals, each replaced by the call
    record's turns of the same speaker it overlaps (the record's second pass heard them
    with more context)."""
    if not record:
        return said
    keep = [u for u in said if not any(r.speaker == u.speaker and u.t_start < r.t_end and r.t_start < u.t_end
                                       for r in record)]
    return sorted(keep + list(record), key=lambda u: (u.t_start, u.t_end))


def _unchanged(text: str) -> str:
    """Redaction turned off by the site: evidence as said (transcripts are published so too)."""
    return text
