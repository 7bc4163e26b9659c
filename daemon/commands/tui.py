"""`callcue tui` and `callcue agent`: the MQTT clients of contract v1 for people (callcue.tui)."""
from __future__ import annotations

import os
import sys

from ...tui.i18n import LANGS


def _broker_args(p) -> None:
    p.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="mqtt://host:port or mqtts://host:port")
    p.add_argument("--username", help="broker user name, if it requires one")
    p.add_argument("--password-env", default="CALLCUE_MQTT_PASSWORD", metavar="VAR",
                   help="environment variable holding the broker password (default CALLCUE_MQTT_PASSWORD)")
    p.add_argument("--ca-file", help="CA bundle for mqtts:// (system CAs when omitted)")
    p.add_argument("--certfile", help="client certificate (PEM) for a broker that asks for one (mqtts://)")
    p.add_argument("--keyfile", help="private key of --certfile (PEM)")
    p.add_argument("--credentials", metavar="FILE",
                   help="credentials.yaml of `callcue acl`: the password of --username is read from it")
    p.add_argument("--lang", choices=LANGS, default=os.environ.get("CALLCUE_LANG", "en"),
                   help="UI language (default en, or CALLCUE_LANG)")
    p.add_argument("--user", help="name sent as `by` with acknowledgements and flags (default user@host)")


def add_parser(sub) -> None:
    p = sub.add_parser("tui", help="supervisor dashboard: floor board, call view, alert feed (Textual)")
    _broker_args(p)
    p.add_argument("--site", help="site to watch (default: every site)")
    p.add_argument("--floor", help="floor to watch (default: every floor of the site)")
    p.add_argument("--all", action="store_true", help="watch every floor of every site on the broker")
    p.set_defaults(func=run_tui)

    a = sub.add_parser("agent", help="agent desk client: one line's alerts and suggestions as they arrive")
    _broker_args(a)
    a.add_argument("--line", required=True, help="the agent's line id")
    a.add_argument("--site", default="demo", help="site of the line (default demo)")
    a.add_argument("--floor", default="f1", help="floor of the line (default f1)")
    a.set_defaults(func=run_agent)


def _broker(args):
    from ...tui.mqtt import parse_broker
    if args.lang not in LANGS:
        raise SystemExit(f"callcue: --lang must be one of {', '.join(LANGS)} (got {args.lang!r})")
    try:
        return parse_broker(args.broker, args.username, os.environ.get(args.password_env), args.ca_file,
                            args.certfile, args.keyfile, args.credentials)
    except ValueError as exc:
        print(f"callcue {args.command}: --broker: {exc}", file=sys.stderr)
        return None


def run_tui(args) -> int:
    from ...tui.app import SupervisorApp
    from ...tui.mqtt import floor_filters
    if args.all and (args.site or args.floor):
        print("callcue tui: --all watches every floor; leave out --site/--floor or drop --all", file=sys.stderr)
        return 2
    broker = _broker(args)
    if broker is None:
        return 2
    filters = floor_filters(args.site, args.floor, args.all)
    scope = "/".join([args.site or "*", args.floor or "*"]) if (args.site or args.floor) else ""
    SupervisorApp(broker, filters, lang=args.lang, user=args.user, scope=scope).run()
    return 0


def run_agent(args) -> int:
    from ...tui.agent import AgentApp
    broker = _broker(args)
    if broker is None:
        return 2
    AgentApp(broker, args.site, args.floor, args.line, lang=args.lang, user=args.user).run()
    return 0
