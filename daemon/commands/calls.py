"""`callcue calls list|show`: look back at stored calls (callcue.daemon.timeline).

Reads the call store's files (store/reader.py), so it works on the box while the daemon
runs, or on a copy of a data_dir. `show` prints the call's whole timeline: IVR context,
turns, alerts, suggestions, flow steps, ticket (with corrections), scorecard. Text is the
stored, redacted text; personal ticket values are masked.
"""
from __future__ import annotations

import json
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def add_parser(sub) -> None:
    p = sub.add_parser("calls", help="list stored calls; show one call's timeline, ticket and scorecard",
                       description="Look back at the calls a box stored. Works while the daemon runs (the store's "
                                   "files are read, never written).")
    csub = p.add_subparsers(dest="calls_command", required=True, metavar="list|show")
    for name, helptext in (("list", "calls, newest first"), ("show", "one call's timeline")):
        c = csub.add_parser(name, help=helptext)
        c.add_argument("--config", type=Path, help="site file: its data_dir and redaction settings")
        c.add_argument("--data-dir", type=Path, help="the daemon's data_dir (the store is DATA_DIR/calls); "
                                                     "default: the site file's, else ./var")
        c.add_argument("--json", action="store_true", help="print JSON instead of tables")
        if name == "list":
            c.add_argument("--line", help="only this line")
            c.add_argument("--agent", help="only this agent (as the line state names them)")
            c.add_argument("--since", help="only calls started since: an ISO time, YYYY-MM-DD, or 30m / 12h / 1d / 2w ago")
            c.add_argument("--limit", type=int, default=50, help="at most this many calls (default 50)")
            c.set_defaults(func=run_list)
        else:
            c.add_argument("call_id", help="the call's id (see `callcue calls list`)")
            c.add_argument("--lang", choices=("en", "zh"), default="en", help="labels' language")
            c.add_argument("--width", type=int, default=None, help="text width (default: the terminal's)")
            c.set_defaults(func=run_show)


def parse_since(text: str | None, now: datetime | None = None) -> str | None:
    """An ISO time from `--since` (ISO time, date, or an amount ago); ValueError if neither."""
    if text is None:
        return None
    now = now or datetime.now(timezone.utc)
    m = _RELATIVE.match(text.strip())
    if m:
        return (now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})).isoformat(timespec="seconds")
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--since {text!r}: give an ISO time, a date (YYYY-MM-DD) or an amount ago (30m, 12h, 1d)") \
            from None
    if dt.tzinfo is None:
        dt = dt.astimezone()        # a local wall-clock time
    return dt.isoformat()


def _open(args):
    from ..config import load_config
    from ..store.reader import StoreReader

    cfg = load_config(args.config) if args.config else None
    data_dir = args.data_dir or (cfg.data_dir if cfg is not None else Path("var"))
    store_dir = data_dir if (data_dir / "calls.json").exists() else data_dir / "calls"
    return StoreReader(store_dir), cfg


def run_list(args) -> int:
    from ..store.atomic import StoreError
    from ..timeline import call_row

    try:
        since = parse_since(args.since)
        reader, _ = _open(args)
        rows = [call_row(r) for r in reader.find_calls(args.line, args.agent, since, max(1, args.limit))]
    except (ValueError, FileNotFoundError, StoreError) as exc:
        print(f"callcue calls: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{len(rows)} call(s)", title_justify="left")
    for col in ("started", "line", "agent", "call id", "duration", "call type", "score", "alerts", "fixes"):
        t.add_column(col, no_wrap=True, overflow="fold" if col in ("agent", "call id") else "ellipsis")
    for r in rows:
        try:
            started = datetime.fromisoformat(r["started"]).astimezone().strftime("%Y-%m-%d %H:%M")
        except (TypeError, ValueError):
            started = str(r["started"])
        dur = r["duration_s"]
        t.add_row(started, str(r["line"]), r["agent"] or "-", str(r["call_id"]),
                  f"{int(dur) // 60}:{int(dur) % 60:02d}" if isinstance(dur, (int, float)) else r["status"] or "-",
                  r["call_type"] or "-", "-" if r["score"] is None else f"{r['score']:g}", str(r["alerts"]),
                  str(r["corrections"]))
    con = Console()
    if not con.is_terminal:
        con = Console(width=160)      # piped: the whole rows
    con.print(t)
    return 0


def run_show(args) -> int:
    from ..assist.redact import RedactionConfig, Redactor
    from ..store.atomic import StoreError
    from ..timeline import render, timeline

    try:
        reader, cfg = _open(args)
        rec = reader.get_call(args.call_id)
    except (FileNotFoundError, StoreError) as exc:
        print(f"callcue calls: {exc}", file=sys.stderr)
        return 2
    if rec is None:
        print(f"callcue calls: no call {args.call_id!r} in {reader.dir}", file=sys.stderr)
        return 1
    red = cfg.assist.redaction if cfg is not None else RedactionConfig()
    redactor = Redactor(red if red.enabled else RedactionConfig())
    tl = timeline(rec, lambda s: redactor.redact(s).text, red.mask)
    if args.json:
        print(json.dumps(tl, ensure_ascii=False, indent=1))
        return 0
    from rich.console import Console

    con = Console(width=args.width) if args.width else Console()
    if not args.width and not con.is_terminal:
        con = Console(width=160)
    for part in render(tl, args.lang):
        con.print(part)
    return 0
