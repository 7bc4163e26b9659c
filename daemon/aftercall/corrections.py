"""Corrections of a filled ticket (the desk's `ticket_update` command), checked against
the call's ticket template, and the form a desk needs to offer them.

The published ticket (`line/{line}/summary`) carries, next to the extracted `fields`, a
`form`: for each field its title in the call's language, type, whether it is required or
personal, the enum options, and whether it is a promise (which also has a due date). A
desk client builds its correction screen from that alone; the box checks every
correction again here before it is stored:

    value = check_update(template, "claim_type", "home")        # -> ("home", None)
    check_update(template, "claim_type", "boat")                 # CorrectionError
    check_update(template, "policy_number", None)                # clears a wrong fill

Pure: no I/O, no state.
"""
from __future__ import annotations

import re
from datetime import date
from typing import Any

from .forms import TicketField, TicketTemplate, text_in

MAX_TEXT = 500
_ID_SEPARATORS = re.compile(r"[\s\-/.]")
_PHONE_CHARS = re.compile(r"^\+?[0-9\s\-().]+$")


class CorrectionError(ValueError):
    """A correction the template does not allow; the message says why."""


def field_form(f: TicketField, lang: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"title": text_in(f.title, lang), "type": f.type, "required": f.required,
                           "personal": f.personal}
    if f.type == "enum":
        out["options"] = [{"value": o.value, "title": text_in(o.title, lang) or o.value} for o in f.options]
    if f.source == "promise":
        out["promise"] = True       # the value is what was promised; a correction may also give `due`
    return out


def ticket_form(template: TicketTemplate, lang: str | None) -> dict[str, dict[str, Any]]:
    """Every field of the template, in its order: what a desk needs to correct it."""
    return {f.name: field_form(f, lang) for f in template.fields}


def _iso_date(v: Any, what: str) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
        raise CorrectionError(f"{what}: {v!r} is not a date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(v).isoformat()
    except ValueError:
        raise CorrectionError(f"{what}: {v!r} is not a date of the calendar") from None


def _number(v: Any, what: str) -> float:
    if isinstance(v, bool):
        raise CorrectionError(f"{what}: {v!r} is not a number")
    if isinstance(v, (int, float)):
        x = float(v)
    elif isinstance(v, str) and re.fullmatch(r"\s*[-+]?\d[\d,]*(\.\d+)?\s*", v):
        x = float(v.replace(",", ""))
    else:
        raise CorrectionError(f"{what}: {v!r} is not a number")
    if x != x or x in (float("inf"), float("-inf")):
        raise CorrectionError(f"{what}: {v!r} is not a finite number")
    return x


def _digit_range(f: TicketField, digits: int, what: str, default: tuple[int, int]) -> None:
    lo, hi = f.digits or default
    if not lo <= digits <= hi:
        raise CorrectionError(f"{what}: {digits} digit(s); the template wants {lo}-{hi}")


def check_value(f: TicketField, value: Any) -> Any:
    """The value as the ticket stores it, or CorrectionError. None clears the field."""
    what = f"field {f.name!r} ({f.type})"
    if value is None:
        return None
    if f.type == "text":
        if not isinstance(value, str) or not value.strip():
            raise CorrectionError(f"{what}: give some text")
        text = " ".join(value.split())
        if len(text) > MAX_TEXT:
            raise CorrectionError(f"{what}: {len(text)} characters, at most {MAX_TEXT}")
        if not text.isprintable():
            raise CorrectionError(f"{what}: control characters are not allowed")
        return text
    if f.type == "enum":
        values = [o.value for o in f.options]
        if value not in values:
            raise CorrectionError(f"{what}: {value!r} is not one of {', '.join(values)}")
        return value
    if f.type == "date":
        return _iso_date(value, what)
    if f.type == "phone":
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not _PHONE_CHARS.match(value):
            raise CorrectionError(f"{what}: {value!r} is not a phone number (digits, spaces, + - ( ) .)")
        digits = re.sub(r"\D", "", value)
        _digit_range(f, len(digits), what, (3, 20))
        return digits
    if f.type in ("number", "money"):
        x = _number(value, what)
        if f.type == "money":
            if x < 0:
                raise CorrectionError(f"{what}: an amount is not negative")
            return round(x, 2)
        return int(x) if x.is_integer() else x
    if f.type == "id":
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise CorrectionError(f"{what}: {value!r} is not an id")
        v = _ID_SEPARATORS.sub("", value).upper()
        if not v or not re.fullmatch(r"[A-Z0-9]+", v) or len(v) > 40:
            raise CorrectionError(f"{what}: {value!r} is not an id (letters and digits, at most 40)")
        if f.pattern is not None and not re.fullmatch(f.pattern, v):
            raise CorrectionError(f"{what}: {v!r} does not match the template's pattern {f.pattern}")
        if f.digits is not None:
            _digit_range(f, sum(c.isdigit() for c in v), what, f.digits)
        return v
    raise CorrectionError(f"{what}: type not supported")   # pragma: no cover - FieldType is closed


def check_form_value(name: str, info: dict[str, Any], value: Any) -> Any:
    """`check_value` from a published ticket's `form` entry alone (a desk client's first
    check, before it sends; the box checks again against the template itself, with its
    id patterns and digit counts)."""
    from types import SimpleNamespace

    options = [SimpleNamespace(value=o.get("value")) for o in info.get("options") or [] if isinstance(o, dict)]
    f = SimpleNamespace(name=name, type=info.get("type") or "text", options=options, pattern=None, digits=None)
    return check_value(f, value)     # type: ignore[arg-type]


def check_update(template: TicketTemplate, field: str, value: Any, due: Any = None) -> tuple[Any, str | None]:
    """(value, due) as stored for a correction of `field`, or CorrectionError naming the problem."""
    f = next((x for x in template.fields if x.name == field), None)
    if f is None:
        raise CorrectionError(f"template {template.id!r} has no field {field!r} "
                              f"(its fields: {', '.join(x.name for x in template.fields)})")
    v = check_value(f, value)
    if due is not None:
        if f.source != "promise":
            raise CorrectionError(f"field {field!r}: only a promise has a due date")
        due = _iso_date(due, f"field {field!r} due")
    return v, due
