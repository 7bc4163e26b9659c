"""Broker users, passwords and ACLs of one floor, generated from the site file (`callcue acl`).

The broker is the security boundary (README, "Security model"). Every client logs in as
one of these users, and Mosquitto's ACL gives each exactly the topics its role needs:

| user | reads | publishes |
| --- | --- | --- |
| `box-<box>` | its lines' `cmd/+`, its own `box/<box>/#` | `box/<box>/status`, `/health`, `/reply/+`; its lines' outputs |
| `agent-<line>` | `line/<line>/#` (its own line only) | `line/<line>/cmd/agent` |
| `supervisor-<site>-<floor>` | the whole floor | `line/+/cmd/supervisor`, `box/+/query` on the floor |
| `cti-<site>` | nothing | `line/+/cmd/cti` on the floor |
| `collector` | `line/+/summary` | nothing |
| `bridge-<site>-<floor>` | (central broker only) | the bridged topics of this floor |

Passwords are random (24 bytes, URL-safe) and stored hashed in Mosquitto 2's
`mosquitto_passwd` format: ``$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>``
with 101 iterations and a 12-byte salt, as `mosquitto_passwd` 2.0 writes it (its
``PW_DEFAULT_ITERATIONS`` and ``SALT_LEN``). Running again keeps every password unless
asked to rotate it; the plain passwords are in ``credentials.yaml`` (0600) for handing out.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import yaml

from .. import contract
from ..yamlfile import ConfigError

PBKDF2_ITERATIONS = 101     # mosquitto_passwd 2.0's default
SALT_BYTES = 12
BRIDGE_OUT = (("line/+/alert", 1), ("line/+/summary", 1), ("line/+/state", 1),
              ("box/+/status", 1), ("box/+/health", 0))   # what a floor sends to the central broker


# ----------------------------------------------------------------------- passwords

def hash_password(password: str, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """The password_file hash Mosquitto 2 checks (``$7$``, PBKDF2-HMAC-SHA512)."""
    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    """True when `hashed` ($7$ PBKDF2, or the older $6$ salted SHA-512) is `password`'s."""
    parts = hashed.split("$")
    try:
        if len(parts) == 5 and parts[1] == "7":
            salt, want = base64.b64decode(parts[3]), base64.b64decode(parts[4])
            got = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, int(parts[2]))
        elif len(parts) == 4 and parts[1] == "6":
            salt, want = base64.b64decode(parts[2]), base64.b64decode(parts[3])
            got = hashlib.sha512(password.encode("utf-8") + salt).digest()
        else:
            return False
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def new_password() -> str:
    return secrets.token_urlsafe(24)


def read_credentials(path: Path) -> dict[str, str]:
    """credentials.yaml: {user: password}; {} when the file does not exist."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the broker credentials: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ConfigError(f"{path}: expected 'user: password' lines (as `callcue acl` writes them)")
    return data


def password_of(path: Path, user: str | None) -> str:
    """The password of `user` in credentials.yaml, or ConfigError naming what is missing."""
    creds = read_credentials(path)
    if not creds:
        raise ConfigError(f"{path}: no broker credentials there; run `callcue acl --config SITE.yaml --out DIR`")
    if user not in creds:
        raise ConfigError(f"{path}: no password for broker user {user!r} (users there: {', '.join(sorted(creds))})")
    return creds[user]


def read_passwd(path: Path) -> dict[str, str]:
    """A mosquitto password_file: {user: hash}."""
    out: dict[str, str] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return out
    for line in lines:
        if line and not line.startswith("#") and ":" in line:
            user, hashed = line.split(":", 1)
            out[user] = hashed
    return out


# ----------------------------------------------------------------------- users and ACLs

@dataclass(frozen=True)
class User:
    name: str
    role: str
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    about: str = ""


def box_user(box: str) -> str:
    return f"box-{box}"


def agent_user(line: str) -> str:
    return f"agent-{line}"


def supervisor_user(site: str, floor: str) -> str:
    return f"supervisor-{site}-{floor}"


def cti_user(site: str) -> str:
    return f"cti-{site}"


COLLECTOR = "collector"


def bridge_user(site: str, floor: str) -> str:
    return f"bridge-{site}-{floor}"


def floor_users(cfg) -> list[User]:
    """The users of one floor broker, from a SiteConfig."""
    r = contract.root(cfg.site, cfg.floor)
    lines = [line.id for line in cfg.lines]
    box_writes = tuple(f"{r}/box/{cfg.box}/{t}" for t in contract.BOX_OUTPUTS) + tuple(
        f"{r}/line/{lid}/{t}" for lid in lines for t in contract.LINE_OUTPUTS) + (
        f"{r}/{contract.reply_prefix(cfg.box)}+",)     # answers to look-back queries
    users = [User(box_user(cfg.box), "box",
                  read=(f"{r}/box/{cfg.box}/#",) + tuple(f"{r}/line/{lid}/cmd/+" for lid in lines),
                  write=box_writes,
                  about=f"the box {cfg.box}: publishes its status, health and its lines' outputs, reads their commands "
                        f"and look-back queries, answers the queries")]
    for lid in lines:
        users.append(User(agent_user(lid), "agent", read=(f"{r}/line/{lid}/#",),
                          write=(f"{r}/{contract.cmd_topic(lid, 'agent')}",),
                          about=f"the agent desk of line {lid}: reads that line only, sends its "
                                f"acknowledgements and ticket corrections"))
    users.append(User(supervisor_user(cfg.site, cfg.floor), "supervisor", read=(f"{r}/#",),
                      write=(f"{r}/line/+/cmd/supervisor", f"{r}/{contract.query_topic('+')}"),
                      about=f"supervisors of floor {cfg.site}/{cfg.floor}: read the floor, acknowledge and flag, "
                            f"ask boxes about past calls (answers on box/<box>/reply/<token>)"))
    users.append(User(cti_user(cfg.site), "cti", write=(f"{r}/line/+/cmd/cti",),
                      about="the phone system integration: call_start, call_end, ivr_context"))
    users.append(User(COLLECTOR, "collector", read=(f"{contract.root('+', '+')}/line/+/summary",),
                      about="the central collector: reads call summaries"))
    return users


def central_users(cfg) -> list[User]:
    """This floor's users on the central broker: its bridge, its supervisor, the collector."""
    r = contract.root(cfg.site, cfg.floor)
    return [
        User(bridge_user(cfg.site, cfg.floor), "bridge", write=tuple(f"{r}/{t}" for t, _ in BRIDGE_OUT),
             about=f"the bridge of floor {cfg.site}/{cfg.floor}'s broker"),
        User(supervisor_user(cfg.site, cfg.floor), "supervisor", read=(f"{r}/#",),
             about=f"supervisors of floor {cfg.site}/{cfg.floor}, watching from the central broker"),
        User(COLLECTOR, "collector", read=(f"{contract.root('+', '+')}/line/+/summary",),
             about="the central collector: reads call summaries of every floor"),
    ]


def acl_text(users: list[User], title: str) -> str:
    out = [f"# {title}", "# written by `callcue acl`; run it again rather than editing (see README, Security model)",
           "# no 'topic' line before the first 'user': anonymous clients get nothing", ""]
    for u in users:
        out.append(f"# {u.about}")
        out.append(f"user {u.name}")
        both = [t for t in u.read if t in u.write]
        out += [f"topic readwrite {t}" for t in both]
        out += [f"topic read {t}" for t in u.read if t not in both]
        out += [f"topic write {t}" for t in u.write if t not in both]
        out.append("")
    return "\n".join(out)


def passwd_text(users: list[User], passwords: dict[str, str], old_hashes: dict[str, str]) -> str:
    out = []
    for u in users:
        pw = passwords[u.name]
        old = old_hashes.get(u.name)
        out.append(f"{u.name}:{old if old and verify_password(pw, old) else hash_password(pw)}")
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------- listener and bridge

@dataclass(frozen=True)
class Listener:
    """The floor broker's listener in the generated mosquitto.conf."""

    port: int | None = None            # default 8883 with TLS, else 1883
    bind: str | None = None            # None: every address
    certfile: Path | None = None       # server certificate: the listener speaks TLS
    keyfile: Path | None = None
    cafile: Path | None = None         # CA that signs client certificates
    require_certificate: bool = False  # clients must show a certificate signed by cafile


def mosquitto_conf(listener: Listener, files_dir: str, title: str) -> str:
    port = listener.port or (8883 if listener.certfile else 1883)
    out = [f"# {title}", "# written by `callcue acl`. Debian: copy to /etc/mosquitto/conf.d/callcue.conf with",
           f"# passwd and acl in {files_dir}/ (readable by user mosquitto), then restart mosquitto.",
           "per_listener_settings false",
           "allow_anonymous false",
           f"password_file {files_dir}/passwd",
           f"acl_file {files_dir}/acl",
           "",
           f"listener {port}" + (f" {listener.bind}" if listener.bind else "")]
    if listener.certfile:
        out += [f"certfile {listener.certfile}", f"keyfile {listener.keyfile or listener.certfile}"]
        if listener.cafile:
            out.append(f"cafile {listener.cafile}")
        if listener.require_certificate:
            out.append("require_certificate true")
    out.append("")
    return "\n".join(out)


@dataclass(frozen=True)
class Central:
    """The central broker a floor broker bridges to."""

    url: str
    cafile: Path | None = None          # CA of the central broker's certificate (mqtts://)
    certfile: Path | None = None        # the bridge's client certificate, if central asks for one
    keyfile: Path | None = None

    @property
    def host(self) -> str:
        return urlparse(self.url).hostname or ""

    @property
    def tls(self) -> bool:
        return urlparse(self.url).scheme == "mqtts"

    @property
    def port(self) -> int:
        return urlparse(self.url).port or (8883 if self.tls else 1883)

    def check(self) -> None:
        u = urlparse(self.url)
        if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
            raise ConfigError(f"--central {self.url!r} must look like mqtt://host:1883 or mqtts://host:8883")
        if not self.tls and (self.cafile or self.certfile):
            raise ConfigError("--central-ca/--central-cert need an mqtts:// central broker")


def read_bridge_conf(path: Path) -> Central | None:
    """The central broker of an earlier run's bridge.conf (so a rerun keeps the bridge)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    opts: dict[str, str] = {}
    for line in lines:
        key, _, value = line.strip().partition(" ")
        if key and not key.startswith("#") and key not in opts:
            opts[key] = value.strip()
    if "address" not in opts:
        return None
    tls = "bridge_cafile" in opts or "bridge_capath" in opts
    return Central(f"{'mqtts' if tls else 'mqtt'}://{opts['address']}",
                   cafile=Path(opts["bridge_cafile"]) if "bridge_cafile" in opts else None,
                   certfile=Path(opts["bridge_certfile"]) if "bridge_certfile" in opts else None,
                   keyfile=Path(opts["bridge_keyfile"]) if "bridge_keyfile" in opts else None)


def bridge_conf(cfg, central: Central, password: str) -> str:
    r = contract.root(cfg.site, cfg.floor)
    name = f"callcue-{cfg.site}-{cfg.floor}"
    out = [f"# bridge of floor {cfg.site}/{cfg.floor} to the central broker {central.host}:{central.port},",
           "# written by `callcue acl --central`. Copy next to the floor broker's callcue.conf (conf.d/);",
           "# this file holds the bridge's password: keep it 0600, readable by user mosquitto only.",
           f"connection {name}",
           f"address {central.host}:{central.port}",
           f"remote_clientid {name}",
           f"remote_username {bridge_user(cfg.site, cfg.floor)}",
           f"remote_password {password}",
           "bridge_protocol_version mqttv311",
           "try_private true",
           # the floor keeps what it could not send while the link is down and sends it on reconnect
           "cleansession false",
           "restart_timeout 1 10",     # reconnect backoff: 1 s doubling up to 10 s
           "notifications true",
           "notifications_local_only true"]
    if central.tls:
        out.append(f"bridge_cafile {central.cafile}" if central.cafile else "bridge_capath /etc/ssl/certs")
        if central.certfile:
            out += [f"bridge_certfile {central.certfile}", f"bridge_keyfile {central.keyfile or central.certfile}"]
    out += [f"topic {r}/{t} out {qos}" for t, qos in BRIDGE_OUT]
    out.append("")
    return "\n".join(out)


# ----------------------------------------------------------------------- the whole folder

@dataclass
class Written:
    out: Path
    files: list[Path] = field(default_factory=list)
    created: list[str] = field(default_factory=list)     # users with a new password
    rotated: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)     # users of an earlier run that are gone


def _write(path: Path, text: str, mode: int) -> Path:
    """Written whole (a temp file renamed over it), with `mode` from the start."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return path


def write_acl_dir(cfg, out: Path, *, rotate: bool | set[str] = False, listener: Listener = Listener(),
                  central: Central | None = None, keep_central: bool = True,
                  install_dir: str | None = None) -> Written:
    """Write passwd, acl, mosquitto.conf, credentials.yaml (and bridge.conf, central/ with a
    central broker) into `out`. Existing passwords are kept unless `rotate` (True: all; a set:
    those users); an earlier run's bridge is kept unless `keep_central` is False."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    if central is None and keep_central:
        central = read_bridge_conf(out / "bridge.conf")
    if central is not None:
        central.check()
    files_dir = install_dir or str(out.resolve())
    creds_path = out / "credentials.yaml"
    old = read_credentials(creds_path)
    users = floor_users(cfg)
    extra = central_users(cfg) if central is not None else []
    names = list(dict.fromkeys(u.name for u in users + extra))
    if isinstance(rotate, set):
        unknown = rotate - set(names)
        if unknown:
            raise ConfigError(f"--rotate: no such user {', '.join(sorted(unknown))} (users: {', '.join(names)})")
    res = Written(out)
    passwords: dict[str, str] = {}
    for name in names:
        again = rotate is True or (isinstance(rotate, set) and name in rotate)
        if name in old and not again:
            passwords[name] = old[name]
            res.kept.append(name)
        else:
            passwords[name] = new_password()
            (res.rotated if name in old else res.created).append(name)
    res.dropped = sorted(set(old) - set(names))

    title = f"callcue broker users of site {cfg.site}, floor {cfg.floor} (box {cfg.box})"
    res.files.append(_write(out / "passwd", passwd_text(users, passwords, read_passwd(out / "passwd")), 0o600))
    res.files.append(_write(out / "acl", acl_text(users, title), 0o600))
    res.files.append(_write(out / "mosquitto.conf", mosquitto_conf(listener, files_dir, title), 0o644))
    header = (f"# broker passwords of site {cfg.site}, floor {cfg.floor}, written by `callcue acl`: hand each\n"
              f"# user its own line only. Kept on later runs unless --rotate.\n")
    res.files.append(_write(creds_path, header + yaml.safe_dump(passwords, sort_keys=False), 0o600))
    if central is not None:
        res.files.append(_write(out / "bridge.conf",
                                bridge_conf(cfg, central, passwords[bridge_user(cfg.site, cfg.floor)]), 0o600))
        cdir = out / "central"
        cdir.mkdir(exist_ok=True)
        os.chmod(cdir, 0o700)
        ctitle = f"floor {cfg.site}/{cfg.floor}'s users on the central broker {central.host}:{central.port}"
        res.files.append(_write(cdir / "passwd", passwd_text(extra, passwords, read_passwd(cdir / "passwd")), 0o600))
        res.files.append(_write(cdir / "acl", acl_text(extra, ctitle), 0o600))
    else:
        for stale in (out / "bridge.conf", out / "central" / "passwd", out / "central" / "acl"):
            stale.unlink(missing_ok=True)
    return res
