"""`callcue acl --config site.yaml --out DIR`: the floor broker's users, passwords and ACL.

Writes DIR/passwd (Mosquitto 2 hashes), DIR/acl, DIR/mosquitto.conf (a listener that
uses them) and DIR/credentials.yaml (0600, the plain passwords for handing out); with
--central also DIR/bridge.conf (the floor broker's bridge) and DIR/central/{passwd,acl}
(this floor's users on the central broker). See README, "Security model".
"""
from __future__ import annotations

import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("acl", help="broker users, passwords, ACL and listener (and bridge) for a site file")
    p.add_argument("--config", required=True, type=Path, help="the box's site file")
    p.add_argument("--out", required=True, type=Path, help="folder to write (created 0700)")
    p.add_argument("--rotate", nargs="*", metavar="USER",
                   help="new passwords: for the users named, or for every user when none is named "
                        "(otherwise a second run keeps each password)")
    p.add_argument("--install-dir", metavar="DIR",
                   help="where passwd and acl will be on the broker host, for the paths in mosquitto.conf "
                        "(default: --out as an absolute path)")
    g = p.add_argument_group("listener (mosquitto.conf)")
    g.add_argument("--port", type=int, help="listener port (default 8883 with --tls-cert, else 1883)")
    g.add_argument("--bind", help="listener address (default: every address)")
    g.add_argument("--tls-cert", type=Path, help="the broker's server certificate (PEM): the listener speaks TLS")
    g.add_argument("--tls-key", type=Path, help="its private key (PEM)")
    g.add_argument("--tls-ca", type=Path, help="CA that signs client certificates")
    g.add_argument("--require-client-cert", action="store_true",
                   help="clients must also show a certificate signed by --tls-ca")
    b = p.add_argument_group("bridge to a central broker")
    b.add_argument("--central", metavar="URL", help="mqtt://host:port or mqtts://host:port of the central broker")
    b.add_argument("--central-ca", type=Path, help="CA of the central broker's certificate (default: system CAs)")
    b.add_argument("--central-cert", type=Path, help="the bridge's client certificate, if central asks for one")
    b.add_argument("--central-key", type=Path, help="its private key")
    b.add_argument("--no-central", action="store_true",
                   help="drop the bridge of an earlier run (a rerun without --central keeps it)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..bus.acl import Central, Listener, write_acl_dir
    from ..config import load_config

    cfg = load_config(args.config)
    if args.require_client_cert and not (args.tls_cert and args.tls_ca):
        print("callcue acl: --require-client-cert needs --tls-cert (and --tls-key) and --tls-ca", file=sys.stderr)
        return 2
    if (args.tls_key or args.tls_ca) and not args.tls_cert:
        print("callcue acl: --tls-key/--tls-ca need --tls-cert", file=sys.stderr)
        return 2
    listener = Listener(port=args.port, bind=args.bind, certfile=_abs(args.tls_cert), keyfile=_abs(args.tls_key),
                        cafile=_abs(args.tls_ca), require_certificate=args.require_client_cert)
    central = None
    if args.central:
        central = Central(args.central, cafile=_abs(args.central_ca), certfile=_abs(args.central_cert),
                          keyfile=_abs(args.central_key))
    elif args.central_ca or args.central_cert or args.central_key:
        print("callcue acl: --central-ca/--central-cert/--central-key need --central URL", file=sys.stderr)
        return 2
    rotate: bool | set[str] = False if args.rotate is None else (set(args.rotate) if args.rotate else True)
    if args.central and args.no_central:
        print("callcue acl: --central and --no-central contradict each other", file=sys.stderr)
        return 2
    res = write_acl_dir(cfg, args.out, rotate=rotate, listener=listener, central=central,
                        keep_central=not args.no_central, install_dir=args.install_dir)
    for f in res.files:
        print(f"wrote {f}")
    for what, names in (("new password", res.created), ("new password (rotated)", res.rotated),
                        ("password kept", res.kept), ("removed (no longer needed)", res.dropped)):
        if names:
            print(f"{what}: {', '.join(names)}")
    print(f"hand each user its own line of {res.out / 'credentials.yaml'}; the box reads its own with "
          f"broker.credentials_file (or embedded_broker.acl_dir)")
    return 0


def _abs(p: Path | None) -> Path | None:
    return p.resolve() if p is not None else None
