"""`callcue status [--config site.yaml] [--broker URL]`: a box's health, as a table.

Reads the retained `box/{box}/health` (every 5 s) and `box/{box}/status` from the broker,
so it works from any machine that may read them: the box itself (with --config, as
box-<box>), a supervisor's desk (as supervisor-<site>-<floor>), the central broker.
Exit code 0: health found and the box online; 3: found but the box is offline or its
health is stale; 1: nothing found or the broker cannot be used; 2: bad arguments.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

STALE_S = 20.0        # health comes every 5 s; three missed ones mean the box is not reporting


def add_parser(sub) -> None:
    p = sub.add_parser("status", help="a box's health from the broker: lines, queues, drops, outbox, ASR, errors")
    p.add_argument("--config", type=Path, help="site file: its box, and its broker (as box-<box>) unless --broker")
    p.add_argument("--broker", metavar="URL", help="mqtt://host:port or mqtts://host:port (default: the site file's "
                                                   "broker, else mqtt://127.0.0.1:1883)")
    p.add_argument("--username", help="broker user (e.g. supervisor-<site>-<floor>)")
    p.add_argument("--password-env", default="CALLCUE_MQTT_PASSWORD", metavar="VAR",
                   help="environment variable holding the password (default CALLCUE_MQTT_PASSWORD)")
    p.add_argument("--credentials", type=Path, metavar="FILE",
                   help="credentials.yaml of `callcue acl`: the password of --username is read from it")
    p.add_argument("--ca-file", type=Path, help="CA bundle for mqtts://")
    p.add_argument("--certfile", type=Path, help="client certificate for mqtts://")
    p.add_argument("--keyfile", type=Path, help="its private key")
    p.add_argument("--site", help="site (default: the site file's, else every site)")
    p.add_argument("--floor", help="floor (default: the site file's, else every floor)")
    p.add_argument("--box", help="box (default: the site file's, else every box)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the retained health (default 5)")
    p.add_argument("--json", action="store_true", help="print the health messages as JSON instead of tables")
    p.set_defaults(func=run)


def _address(args):
    """(BrokerAddress, site, floor, box) from the arguments and the site file."""
    from ..bus.broker import EmbeddedBroker
    from ..bus.client import BrokerAddress
    from ..config import BrokerConfig, load_config

    cfg = load_config(args.config) if args.config else None
    site = args.site or (cfg.site if cfg else None)
    floor = args.floor or (cfg.floor if cfg else None)
    box = args.box or (cfg.box if cfg else None)
    if args.broker is None and cfg is not None and args.username is None:
        if cfg.broker is not None:
            return BrokerAddress.of(cfg.broker), site, floor, box
        emb = EmbeddedBroker.from_config(cfg.embedded_broker, cfg.embedded_broker.port, cfg.data_dir / "broker")
        return emb.client_address(cfg.box), site, floor, box
    url = args.broker or (cfg.broker.url if cfg is not None and cfg.broker is not None else
                          f"mqtt://127.0.0.1:{cfg.embedded_broker.port if cfg else 1883}")
    password = os.environ.get(args.password_env)
    broker = BrokerConfig(url=url, username=args.username, password=None if args.credentials else password,
                          credentials_file=args.credentials, ca_file=args.ca_file, certfile=args.certfile,
                          keyfile=args.keyfile, keepalive_s=10)
    return BrokerAddress.of(broker), site, floor, box


def fetch(address, site: str | None, floor: str | None, box: str | None,
          timeout: float) -> tuple[dict[tuple[str, str, str], dict[str, Any]], str | None]:
    """{(site, floor, box): {"health": dict|None, "status": str|None}} from the retained messages,
    and the reason when the broker could not be used."""
    import paho.mqtt.client as mqtt

    from ..bus import tls

    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    lock = threading.Condition()
    state: dict[str, Any] = {"subscribed": None, "error": None}
    topic = f"callcue/v1/{site or '+'}/{floor or '+'}/box/{box or '+'}/+"
    one = site is not None and floor is not None and box is not None

    c = tls.DiagClient(mqtt.CallbackAPIVersion.VERSION2, client_id=f"callcue-status-{uuid.uuid4().hex[:8]}",
                       protocol=mqtt.MQTTv311)
    if address.username is not None:
        c.username_pw_set(address.username, address.password)
    if address.tls:
        tls.configure_tls(c, address.ca_file, address.certfile, address.keyfile)

    def fail(why: str) -> None:
        with lock:
            state["error"] = why
            lock.notify_all()

    def on_connect(client, userdata, flags, rc, props):
        if rc.is_failure:
            fail(tls.refused(rc, host=address.host, port=address.port, username=address.username))
        else:
            client.subscribe(topic, qos=0)

    def on_subscribe(client, userdata, mid, rcs, props):
        with lock:
            state["subscribed"] = time.monotonic()
            lock.notify_all()

    def on_message(client, userdata, msg):
        parts = msg.topic.split("/")
        if len(parts) != 7 or parts[6] not in ("health", "status") or not msg.payload:
            return
        with lock:
            entry = found.setdefault((parts[2], parts[3], parts[5]), {"health": None, "status": None})
            try:
                if parts[6] == "health":
                    entry["health"] = json.loads(msg.payload)
                else:
                    entry["status"] = msg.payload.decode("utf-8", "replace")
            except (ValueError, UnicodeDecodeError):
                entry["health"] = {"unreadable": msg.payload[:200].decode("utf-8", "replace")}
            lock.notify_all()

    c.on_connect = on_connect
    c.on_subscribe = on_subscribe
    c.on_message = on_message
    c.on_connect_fail = lambda client, userdata: fail(address.describe_failure(client.last_error))
    c.on_disconnect = lambda client, userdata, flags, rc, props: (
        state["subscribed"] is None and state["error"] is None and fail(address.describe_failure(client.last_error)))
    c.connect_async(address.host, address.port, keepalive=10)
    c.loop_start()
    deadline = time.monotonic() + timeout
    try:
        with lock:
            def done() -> bool:
                if state["error"] is not None:
                    return True
                if one:
                    e = found.get((site, floor, box))
                    return e is not None and e["health"] is not None and e["status"] is not None
                # several boxes: retained messages follow the SUBACK at once; give them a moment
                return state["subscribed"] is not None and time.monotonic() > state["subscribed"] + 0.5
            while not done() and time.monotonic() < deadline:
                lock.wait(0.1)
            error = state["error"]
            if error is None and state["subscribed"] is None:
                error = f"no answer from broker {address.host}:{address.port} within {timeout:.0f} s"
            return {k: dict(v) for k, v in found.items()}, error
    finally:
        c.disconnect()
        c.loop_stop()


def _age(ts: str | None) -> float | None:
    try:
        return (datetime.now(timezone.utc) - datetime.fromisoformat(ts)).total_seconds()
    except (TypeError, ValueError):
        return None


def _dur(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(s)
    return f"{s // 86400}d {s % 86400 // 3600}h" if s >= 86400 else f"{s // 3600}h {s % 3600 // 60:02d}m" \
        if s >= 3600 else f"{s // 60}m {s % 60:02d}s"


def _n(v: Any, fmt: str = "{}") -> str:
    return "-" if v is None else fmt.format(v)


def render(key: tuple[str, str, str], entry: dict[str, Any], console) -> bool:
    """Print one box; True when it is online and its health fresh."""
    from rich.table import Table
    from rich.text import Text

    site, floor, box = key
    h = entry.get("health") or {}
    status = entry.get("status") or "unknown"
    age = _age(h.get("ts"))
    fresh = age is not None and age <= STALE_S
    ok = status == "online" and fresh
    head = Text()
    head.append(f"box {box}", style="bold")
    head.append(f"  {site}/{floor}  ")
    head.append(status, style="bold green" if status == "online" else "bold red")
    head.append(f"  health {round(age)} s old" if age is not None else "  no health message")
    if age is not None and not fresh:
        head.append(f" (stale: over {STALE_S:.0f} s)", style="bold yellow")
    head.append(f"  up {_dur(h.get('uptime_s'))}  load {' '.join(str(x) for x in h.get('load') or []) or '-'}")
    console.print(head)
    if "unreadable" in h:
        console.print(Text(f"health message is not JSON: {h['unreadable']}", style="red"))
        return False

    lines = h.get("lines") or {}
    t = Table(title=f"lines ({h.get('lines_up', 0)} of {len(lines)} up)", title_justify="left", expand=False)
    for col, just in (("line", "left"), ("status", "left"), ("capture", "left"), ("queue frames", "right"),
                      ("dropped frames", "right"), ("ASR results dropped", "right"), ("commands dropped", "right"),
                      ("after-call", "right"), ("analysis rtf", "right")):
        t.add_column(col, justify=just)

    def count(ln: dict, key: str) -> Text:        # a non-zero loss or error count shows red
        return Text(_n(ln.get(key)), style="red" if ln.get(key) else "")

    def aftercall(ln: dict) -> Text:              # the slowest call end's after-call work, and its failures
        errors = ln.get("aftercall_errors")
        return Text(_n(ln.get("aftercall_ms_max"), "{} ms") + (f", {errors} failed" if errors else ""),
                    style="red" if errors else "")

    for lid, ln in sorted(lines.items()):
        st = ln.get("status") or "-"
        t.add_row(lid, Text(st, style={"in_call": "green", "down": "red"}.get(st, "")),
                  Text("up", style="green") if ln.get("up") else Text("down", style="red") if ln.get("up") is False
                  else Text("-"),
                  _n(ln.get("queue_frames")), count(ln, "dropped_frames"), count(ln, "results_dropped"),
                  count(ln, "commands_dropped"), aftercall(ln), _n(ln.get("analysis_rtf")))
    console.print(t)

    bus = h.get("bus") or {}
    asr = h.get("asr") or {}
    lat = h.get("final_latency_s") or {}
    assist = h.get("assist") or {}
    rows = [
        ("frames dropped", _n(h.get("frames_dropped")), bool(h.get("frames_dropped"))),
        ("memory", f"RSS {_n(h.get('rss_mb'), '{} MB')}", False),
        ("broker", "connected" if bus.get("connected") else "disconnected", not bus.get("connected")),
        ("outbox", f"{_n(bus.get('outbox_depth'))} waiting, {_n(bus.get('inflight'))} in flight, "
                   f"{_n(bus.get('outbox_dropped'))} dropped (full)", bool(bus.get("outbox_dropped"))),
        ("published", f"{_n(bus.get('published'))}, QoS 0 dropped offline {_n(bus.get('dropped_qos0'))}, "
                      f"reconnects {_n(bus.get('reconnects'))}", False),
    ]
    if asr:
        rows += [("ASR", f"rtf {_n(h.get('asr_rtf'))}, {_n(asr.get('channels'))} channels, queue "
                         f"{_n(asr.get('queue_chunks'))} chunks, {_n(asr.get('pending_utterances'))} utterances waiting, "
                         f"{_n(asr.get('dropped_s'))} s dropped", bool(asr.get("dropped_s"))),
                 ("ASR channels", f"{_n(asr.get('open_channels'))} open, {_n(asr.get('refused_channels'))} refused "
                                  f"(cap), {_n(asr.get('dropped_utterances'))} utterances dropped, "
                                  f"{_n(asr.get('record_decodes'))} record turns decoded",
                  bool(asr.get("refused_channels") or asr.get("dropped_utterances"))),
                 ("ASR final latency", f"p50 {_n(lat.get('p50'), '{} s')}, p95 {_n(lat.get('p95'), '{} s')} "
                                       f"(n {_n(lat.get('n'))})" if lat else "-", False)]
    else:
        rows.append(("ASR", "off", False))
    if assist:
        rows.append(("assist pack", f"reloads {_n(assist.get('reloads'))}" +
                     (f", error: {assist['pack_error']}" if assist.get("pack_error") else ""),
                     bool(assist.get("pack_error"))))
    rows += [
        ("commands", f"{_n(h.get('rejected_commands'))} rejected (malformed), "
                     f"{_n(h.get('refused_commands'))} refused (role), {_n(h.get('reused_call_ids'))} reused call "
                     f"ids, {_n(h.get('commands_dropped'))} dropped (line queue full)",
         bool(h.get("commands_dropped"))),
        ("errors", f"{_n(h.get('errors'))}" + (f", ASR {asr.get('errors')}" if asr.get("errors") else "") +
                   (f", bus handlers {bus.get('handler_errors')}" if bus.get("handler_errors") else ""),
         bool(h.get("errors") or asr.get("errors") or bus.get("handler_errors"))),
    ]
    rec = h.get("records") or {}
    if rec:
        rows.append(("records", f"{_n(rec.get('corrections'))} ticket corrections, {_n(rec.get('rejected'))} "
                                f"rejected, {_n(rec.get('queries'))} look-backs ({_n(rec.get('refused'))} refused), "
                                f"{_n(rec.get('dropped'))} dropped", bool(rec.get("dropped"))))
    b = Table(show_header=False, box=None, padding=(0, 2))
    b.add_column(style="bold")
    b.add_column()
    for name, value, bad in rows:
        b.add_row(name, Text(value, style="red" if bad else ""))
    console.print(b)
    return ok


def run(args) -> int:
    from pydantic import ValidationError
    from rich.console import Console

    from ..bus.tls import TlsSetupError

    try:
        address, site, floor, box = _address(args)
    except ValidationError as exc:
        print(f"callcue status: {'; '.join(e['msg'].removeprefix('Value error, ') for e in exc.errors())}",
              file=sys.stderr)
        return 2
    try:
        found, error = fetch(address, site, floor, box, args.timeout)
    except TlsSetupError as exc:
        print(f"callcue status: {exc}", file=sys.stderr)
        return 2
    if error is not None:
        print(f"callcue status: {error}", file=sys.stderr)
        return 1
    want = f"callcue/v1/{site or '+'}/{floor or '+'}/box/{box or '+'}/health"
    if not any(e["health"] for e in found.values()):
        print(f"callcue status: no retained health on {want} at {address.host}:{address.port} "
              f"within {args.timeout:.0f} s (is the box running, and may {address.username or 'an anonymous client'} "
              f"read it?)", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"/".join(k): v for k, v in sorted(found.items())}, indent=2, ensure_ascii=False))
        return 0 if all(v.get("status") == "online" for v in found.values()) else 3
    console = Console()
    all_ok = True
    for i, key in enumerate(sorted(found)):
        if i:
            console.print()
        all_ok &= render(key, found[key], console)
    return 0 if all_ok else 3
