"""Inbound commands on ``line/{line}/cmd/{role}`` (MQTT contract v1), validated.

Commands come from CTI integrations and supervisor terminals we do not control, so
every rejection names what is wrong; the daemon logs it and keeps running. The role
is the last topic level: the broker's ACL lets only that role publish there (see
`callcue acl`), and a role may send only its own ops (contract.ROLE_OPS).
"""
from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, Field, TypeAdapter, ValidationError

from .. import contract
from ..schema import Strict

MAX_PAYLOAD = 64 * 1024  # a command is a few hundred bytes; anything bigger is a mistake or abuse
MAX_DEPTH = 32           # JSON nesting (ivr slots are a level or two); deeper is refused, not recursed into


def _printable(v: str) -> str:
    """Ids and names go into topics' payloads, file names and log lines: printable
    characters only (no NUL, newline or other control character), no edge spaces."""
    if not v.isprintable():
        bad = next(c for c in v if not c.isprintable())
        raise ValueError(f"must be printable text; it holds the control character {bad!r}")
    if v != v.strip():
        raise ValueError("must not start or end with spaces")
    return v


Id = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_printable)]
Name = Annotated[str, Field(max_length=128), AfterValidator(_printable)]


class CommandError(ValueError):
    """A command payload was rejected; the message says why."""


class RoleError(CommandError):
    """A well-formed command whose op its sender's role may not send (or a topic no role has)."""


def split_cmd_topic(subtopic: str) -> tuple[str, str | None]:
    """``line/{line}/cmd/{role}`` -> (line, role); the legacy ``line/{line}/cmd`` -> (line, None).
    Anything else gives line "?" (no line has that id)."""
    parts = subtopic.split("/")
    if len(parts) in (3, 4) and parts[0] == "line" and parts[2] == "cmd":
        return parts[1], (parts[3] if len(parts) == 4 else None)
    return "?", None


def legacy_cmd_accepted(cfg) -> bool:
    """Whether the role-less ``line/{line}/cmd`` is taken (with every op): only when the site
    says so (`broker.legacy_cmd_topic`), or on the embedded broker bound to loopback without
    users (the single-box demo), where any local client may publish as any role anyway."""
    if cfg.broker is not None:
        return bool(cfg.broker.legacy_cmd_topic)
    emb = cfg.embedded_broker
    return emb.acl_dir is None and emb.loopback


class _Cmd(Strict):  # unknown fields are errors and values frozen, as in every validated file
    pass


class CallStart(_Cmd):
    """A call begins on the line (from the phone system / CTI)."""

    op: Literal["call_start"] = Field(description="command name")
    call_id: Id | None = Field(None, description="the phone system's call id; the box makes one when omitted")
    agent: Name | None = Field(
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


class TicketUpdate(_Cmd):
    """The agent corrects one field of an ended call's ticket (after-call work). The box
    checks it against the call's ticket template and stores it next to the extraction."""

    op: Literal["ticket_update"] = Field(description="command name")
    call_id: Id = Field(description="the call whose ticket is corrected (as in its line/{line}/summary)")
    field: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")] = Field(
        description="ticket field name, e.g. policy_number")
    value: str | int | float | None = Field(description=(
        "the right value, as the field's type takes it (text, an enum option, YYYY-MM-DD, digits, a number); "
        "null: the call does not state it, the field stays empty"))
    due: Annotated[str, Field(max_length=10)] | None = Field(None, description="promise fields: by when (YYYY-MM-DD)")
    by: Id = Field(description="who corrected it")


Command = Annotated[Union[CallStart, CallEnd, IvrContext, AckAlert, Flag, TicketUpdate], Field(discriminator="op")]
_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)
OPS = tuple(m.model_fields["op"].annotation.__args__[0]
            for m in (CallStart, CallEnd, IvrContext, AckAlert, Flag, TicketUpdate))


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


def _depth(obj: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, d)
            if d <= MAX_DEPTH:      # deeper is refused anyway: no need to walk it all
                stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def parse_command(line: str, payload: bytes, role: str | None = None, *, legacy_ok: bool = True) -> Command:
    """Validate one command payload sent by ``role`` (None: the legacy role-less topic), or
    raise CommandError saying what is wrong (RoleError: the role may not send it)."""
    where = f"command on line {line!r}" + (f" from {role!r}" if role is not None else "")
    if role is None and not legacy_ok:
        raise RoleError(f"{where}: line/{line}/cmd (without a role) is not accepted on this box; publish on "
                        f"line/{line}/cmd/{{{'|'.join(contract.CMD_ROLES)}}} (or set broker.legacy_cmd_topic)")
    if role is not None and role not in contract.ROLE_OPS:
        raise RoleError(f"{where}: no such role (the roles are {', '.join(contract.CMD_ROLES)})")
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
    except RecursionError:
        raise CommandError(f"{where}: payload is nested more than {MAX_DEPTH} levels deep") from None
    if _depth(obj) > MAX_DEPTH:
        raise CommandError(f"{where}: payload is nested more than {MAX_DEPTH} levels deep")
    if not isinstance(obj, dict):
        raise CommandError(f"{where}: payload must be a JSON object, got {type(obj).__name__}")
    if "op" not in obj:
        raise CommandError(f"{where}: missing field 'op' (one of {', '.join(OPS)})")
    if obj["op"] not in OPS:
        raise CommandError(f"{where}: unknown op {obj['op']!r} (expected one of {', '.join(OPS)})")
    allowed = contract.ROLE_OPS[role] if role is not None else contract.LEGACY_CMD_OPS
    if obj["op"] not in allowed:
        raise RoleError(f"{where}: op {obj['op']!r} may not be sent by this role (it may send {', '.join(allowed)})")
    try:
        return _ADAPTER.validate_python(obj)
    except ValidationError as exc:
        problems = "; ".join(dict.fromkeys(_describe(e) for e in exc.errors()))
        raise CommandError(f"{where}: op {obj['op']!r}: {problems}") from None
