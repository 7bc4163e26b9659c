"""MQTT contract v1: topic names, QoS and retain flags, payload builders, routing.

The single place that knows the wire format (README, "MQTT contract"). Publishers
use `Message`; the JSON Lines event log is the same messages with a `topic` field.
Each builder also says where its message goes (`Route`): the daemon publishes and
stores by that, never by looking at topics.
"""
from __future__ import annotations

import enum
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

VERSION = "v1"
ALERT_KINDS = ("long_silence", "talk_over", "fast_speech", "agitation", "sensitive_word", "missing_phrase", "line_down")
LINE_STATUSES = ("idle", "in_call", "down")
CMD_OPS = ("call_start", "call_end", "ivr_context", "ack_alert", "flag", "ticket_update")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def new_id() -> str:
    return uuid.uuid4().hex[:16]


def root(site: str, floor: str) -> str:
    return f"callcue/{VERSION}/{site}/{floor}"


class Route(enum.Flag):
    """Where a message goes: published on the bus (and into a replay's JSON Lines), stored
    with its call in the call store (an event of the message's `output` kind), or both."""

    PUBLISH = 1
    STORE = 2
    BOTH = 3


def _call_record(call_id: str | None, keep: bool = True) -> Route:
    """Published always; also stored when it belongs to a call (and `keep`)."""
    return Route.BOTH if call_id and keep else Route.PUBLISH


@dataclass(frozen=True, slots=True)
class Message:
    """One payload for one topic (relative to the floor root), with its delivery class
    and route (set by the builder below that made it)."""

    subtopic: str
    payload: dict[str, Any] | str
    qos: int = 1
    retain: bool = False
    output: str = ""               # which output (BOX_OUTPUTS / LINE_OUTPUTS); the stored event's kind
    route: Route = Route.PUBLISH

    def __post_init__(self):
        assert Route.STORE not in self.route or (isinstance(self.payload, dict) and self.payload.get("call_id")
                                                 and self.output), "a stored message needs a call and a kind"

    def encode(self) -> bytes:
        if isinstance(self.payload, str):
            return self.payload.encode()
        return json.dumps(self.payload, ensure_ascii=False, separators=(",", ":")).encode()

    def jsonl(self, topic_root: str) -> str:
        body = {"payload": self.payload} if isinstance(self.payload, str) else dict(self.payload)
        return json.dumps({"topic": f"{topic_root}/{self.subtopic}", **body}, ensure_ascii=False)


def box_status(box: str, online: bool) -> Message:
    return Message(f"box/{box}/status", "online" if online else "offline", qos=1, retain=True, output="status")


def box_health(box: str, health: dict[str, Any]) -> Message:
    return Message(f"box/{box}/health", {"ts": now_iso(), **health}, qos=0, retain=True, output="health")


def line_state(line: str, agent: str, call_id: str | None, status: str, since: str) -> Message:
    assert status in LINE_STATUSES
    return Message(f"line/{line}/state", {"line": line, "agent": agent, "call_id": call_id,
                                          "status": status, "since": since}, qos=1, retain=True, output="state")


def alert(line: str, call_id: str | None, kind: str, severity: str, speaker: str | None,
          t_start: float, t_end: float, message: str, evidence: dict[str, Any]) -> Message:
    assert kind in ALERT_KINDS
    return Message(f"line/{line}/alert", {
        "id": new_id(), "call_id": call_id, "kind": kind, "severity": severity, "speaker": speaker,
        "t_start": round(t_start, 2), "t_end": round(t_end, 2), "message": message,
        "evidence": evidence, "ts": now_iso()}, qos=1, output="alert", route=_call_record(call_id))


def transcript(line: str, call_id: str, speaker: str, text: str, final: bool,
               t_start: float, t_end: float, seq: int) -> Message:
    return Message(f"line/{line}/transcript", {
        "call_id": call_id, "speaker": speaker, "text": text, "final": final,
        "t_start": round(t_start, 2), "t_end": round(t_end, 2), "seq": seq}, qos=1 if final else 0,
        output="transcript", route=_call_record(call_id, keep=final))     # partials are not kept


def record(line: str, call_id: str, speaker: str, text: str, t_start: float, t_end: float, seq: int,
           model: str) -> Message:
    """The call record's text of one speaker's turn: a second recognition pass over the
    whole turn (the live finals' utterances with the audio between them), by `model`. It
    replaces the live finals of that speaker between t_start and t_end in the call's
    record and after-call work; live views keep showing the finals (README, "The call record")."""
    return Message(f"line/{line}/record", {
        "call_id": call_id, "speaker": speaker, "text": text, "t_start": round(t_start, 2),
        "t_end": round(t_end, 2), "seq": seq, "model": model}, qos=1, output="record", route=_call_record(call_id))


# Commands: each sender role publishes on its own topic, `line/{line}/cmd/{role}`, and the
# broker's ACL (`callcue acl`) gives the right to publish there to that role only, so the
# topic a command arrived on says who sent it. The daemon applies only the role's ops.
CMD_ROLES = ("cti", "agent", "supervisor")
ROLE_OPS: dict[str, tuple[str, ...]] = {
    "cti": ("call_start", "call_end", "ivr_context"),   # the phone system: call boundaries, IVR context
    "agent": ("ack_alert", "ticket_update"),           # the agent's desk: its own line's alerts and tickets
    "supervisor": ("ack_alert", "flag"),               # the floor supervisor
}
LEGACY_CMD_OPS = CMD_OPS[:5]   # `line/{line}/cmd` (no role), where the box still accepts it: contract v1's first ops
# what the box publishes (the ACL grants exactly these; a new output topic is added here)
BOX_OUTPUTS = ("status", "health")
LINE_OUTPUTS = ("state", "alert", "transcript", "suggestion", "flow", "summary", "record")


def cmd_topic(line: str, role: str) -> str:
    """Where `role` publishes commands for `line` (relative to the floor root)."""
    assert role in CMD_ROLES, role
    return f"line/{line}/cmd/{role}"


def cmd_topic_filter() -> str:
    return "line/+/cmd/+"


def legacy_cmd_topic_filter() -> str:
    """Contract v1's first command topic, without a role (see broker.legacy_cmd_topic)."""
    return "line/+/cmd"


SUGGESTION_KINDS = ("knowledge", "next_step", "offer")


def suggestion(line: str, call_id: str, kind: str, title: str, body: str, score: float, t: float,
               detail: dict[str, Any]) -> Message:
    """A cue for the agent. `t` = call time it was made; `detail` says what it rests on
    (article/topic, flow step, offer id, the utterance that triggered it)."""
    assert kind in SUGGESTION_KINDS
    assert "topic" not in detail, "'topic' is the MQTT topic in JSON Lines; name the field otherwise"
    return Message(f"line/{line}/suggestion", {
        "id": new_id(), "call_id": call_id, "kind": kind, "title": title, "body": body,
        "score": round(score, 3), "t": round(t, 2), **detail, "ts": now_iso()}, qos=1,
        output="suggestion", route=_call_record(call_id))


def flow_state(line: str, call_id: str | None, flow: str | None, steps: list[dict[str, Any]],
               completion: float, next_step: dict[str, Any] | None, extra: dict[str, Any]) -> Message:
    return Message(f"line/{line}/flow", {
        "call_id": call_id, "flow": flow, "steps": steps, "completion": round(completion, 3),
        "next_step": next_step, **extra, "ts": now_iso()}, qos=1, retain=True, output="flow")


def summary(line: str, call_id: str, summary_text: str, ticket: dict[str, Any] | None,
            scorecard: dict[str, Any], call_type: str | None, ivr: dict[str, Any] | None = None) -> Message:
    """The call's after-call message: summary text, ticket, QA scorecard, call type, and
    the IVR context it had (None when none came)."""
    return Message(f"line/{line}/summary", {
        "call_id": call_id, "summary": summary_text, "ticket": ticket, "scorecard": scorecard,
        "call_type": call_type, "ivr": ivr, "ts": now_iso()}, qos=1, output="summary", route=_call_record(call_id))


# Look-back: a client asks a box about its stored calls (MQTT 5 request/response). The
# request goes to `box/{box}/query` (the ACL lets supervisors publish there, not agents)
# with a response topic under `box/{box}/reply/` and correlation data; the box answers
# there, echoing the correlation data, and answers nothing else.
QUERY_OPS = ("calls", "call")


def query_topic(box: str) -> str:
    return f"box/{box}/query"


def reply_prefix(box: str) -> str:
    """Response topics a box answers on: this prefix plus one level (the asker's own)."""
    return f"box/{box}/reply/"
