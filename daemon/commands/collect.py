"""`callcue collect --broker URL --store DIR`: every floor's call summaries from the central
broker into the central store (callcue.daemon.collector), with a persistent session."""
from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("collect", help="central collector: every floor's call summaries into a central store",
                       description="Subscribes to callcue/v1/+/+/line/+/summary (QoS 1, persistent session) and "
                                   "writes each summary into the store, once per call.")
    p.add_argument("--broker", required=True, help="central broker, mqtt://host:port or mqtts://host:port")
    p.add_argument("--store", type=Path, required=True, help="central store folder (made if missing)")
    p.add_argument("--username", help="broker user (the `collector` of callcue acl)")
    p.add_argument("--password-env", default="CALLCUE_MQTT_PASSWORD", metavar="VAR",
                   help="environment variable holding the broker password (default CALLCUE_MQTT_PASSWORD)")
    p.add_argument("--credentials", metavar="FILE",
                   help="credentials.yaml of `callcue acl`: the password of --username is read from it")
    p.add_argument("--ca-file", help="CA bundle for mqtts:// (system CAs when omitted)")
    p.add_argument("--certfile", help="client certificate (PEM) for a broker that asks for one (mqtts://)")
    p.add_argument("--keyfile", help="private key of --certfile (PEM)")
    p.add_argument("--client-id", default="callcue-collector",
                   help="MQTT client id: the broker keeps this session (default callcue-collector; one per store)")
    p.add_argument("--session-expiry", type=int, default=7 * 24 * 3600, metavar="SECONDS",
                   help="how long the broker keeps the session while the collector is away (default 7 days)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pydantic import ValidationError

    from ..collector import Collector
    from ..config import BrokerConfig
    from ..warehouse.store import StoreError

    try:
        broker = BrokerConfig(url=args.broker, username=args.username,
                              password=None if args.credentials else os.environ.get(args.password_env),
                              ca_file=args.ca_file, certfile=args.certfile, keyfile=args.keyfile,
                              credentials_file=args.credentials)
    except ValidationError as exc:
        print("callcue collect: --broker: " + "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors()),
              file=sys.stderr)
        return 2
    try:
        coll = Collector(broker, args.store, client_id=args.client_id, session_expiry_s=args.session_expiry)
    except StoreError as exc:
        print(f"callcue collect: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *a: stop.set())
    print(f"callcue collect: {args.broker} -> {args.store} (client id {args.client_id})", file=sys.stderr, flush=True)
    rc = coll.run(stop)
    s = coll.stats
    print(f"callcue collect: stopped: {s['stored']} stored, {s['duplicates']} duplicates, {s['rejected']} rejected",
          file=sys.stderr)
    return rc
