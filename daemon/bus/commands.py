"""Inbound commands on ``line/{line}/cmd`` (MQTT contract v1), validated.

Commands come from CTI integrations and supervisor terminals we do not control, so
every rejection names what is wrong; the daemon logs it and keeps running.
"""
from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Union

from pydantic import Field, TypeAdapter, ValidationError

from ..schema import Strict

MAX_PAYLOAD = 64 * 1024  # a command is a few hundred bytes; anything bigger is a mistake or abuse

Id = Annotated[str, Field(min_length=1, max_length=128)]


class CommandError(ValueError):
    """A command payload was rejected; the message says why."""


class _Cmd(Strict):  # unknown fields are errors and values frozen, as in every validated file
    pass


class CallStart(_Cmd):
    """A call begins on the line (from the phone system / CTI)."""

    op: Literal["call_start"] = Field(description="command name")
    call_id: Id | None = Field(None, description="the phone system's call id; the box makes one when omitted")
    agent: Annotated[str, Field(max_length=128)] | None = Field(
        None, description="agent name or id now on the line (replaces the configured one)")
    ivr: dict[str, Any] | None = Field(None, description="what the IVR collected before the hand-over (intent, slots)")


class CallEnd(_Cmd):
    """The call on the line is over."""

    op: Literal["call_end"] = Field(description="command name")
    call_id: Id | None = Field(None, description="call to end; the line's current call when omitted")


class IvrContext(_Cmd):
    """IVR intent handed to the agent (语音导航联动), during or at the start of a call."""

    op: Literal["ivr_context"] = Field(description="command name")
    call_id: Id | None = Field(None, description="call it belongs to; the line's current call when omitted")
    intent: Id = Field(description="intent the IVR recognised, e.g. 'billing_dispute'")
    data: dict[str, Any] | None = Field(None, description="slots the IVR filled (account, amount, ...)")


class AckAlert(_Cmd):
    """A supervisor acknowledged an alert."""

    op: Literal["ack_alert"] = Field(description="command name")
    alert_id: Id = Field(description="the alert's id as published on line/{line}/alert")
    by: Id = Field(description="who acknowledged it")


class Flag(_Cmd):
    """A supervisor flags a call for coaching or take-over."""

    op: Literal["flag"] = Field(description="command name")
    call_id: Id | None = Field(None, description="call flagged; the line's current call when omitted")
    reason: Literal["coaching", "takeover"] = Field(description="why: coaching afterwards, or take over now")
    by: Id = Field(description="who flagged it")
    note: Annotated[str, Field(max_length=2000)] | None = Field(None, description="free text for the agent or QA")


Command = Annotated[Union[CallStart, CallEnd, IvrContext, AckAlert, Flag], Field(discriminator="op")]
_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)
OPS = tuple(m.model_fields["op"].annotation.__args__[0] for m in (CallStart, CallEnd, IvrContext, AckAlert, Flag))


def _describe(err: dict) -> str:
    # drop the union tag pydantic puts first in loc
    loc = [str(p) for p in err["loc"][1:]] if len(err["loc"]) > 1 else [str(p) for p in err["loc"]]
    field = ".".join(loc)
    if err["type"] == "extra_forbidden":
        return f"unknown field {field!r}"
    if err["type"] == "missing":
        return f"missing field {field!r}"
    got = repr(err.get("input"))
    return f"field {field!r}: {err['msg']} (got {got if len(got) <= 60 else got[:57] + '...'})"


def parse_command(line: str, payload: bytes) -> Command:
    """Validate one ``line/{line}/cmd`` payload, or raise CommandError saying what is wrong."""
    where = f"command on line {line!r}"
    if len(payload) > MAX_PAYLOAD:
        raise CommandError(f"{where}: payload is {len(payload)} bytes, more than the {MAX_PAYLOAD} allowed")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CommandError(f"{where}: payload is not UTF-8 (byte 0x{payload[exc.start]:02x} at offset {exc.start})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"{where}: payload is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(obj, dict):
        raise CommandError(f"{where}: payload must be a JSON object, got {type(obj).__name__}")
    if "op" not in obj:
        raise CommandError(f"{where}: missing field 'op' (one of {', '.join(OPS)})")
    if obj["op"] not in OPS:
        raise CommandError(f"{where}: unknown op {obj['op']!r} (expected one of {', '.join(OPS)})")
    try:
        return _ADAPTER.validate_python(obj)
    except ValidationError as exc:
        problems = "; ".join(dict.fromkeys(_describe(e) for e in exc.errors()))
        raise CommandError(f"{where}: op {obj['op']!r}: {problems}") from None
