"""sd_notify(3) without libsystemd: tell systemd we are ready, alive, stopping.

systemd passes NOTIFY_SOCKET (a unix datagram socket; a leading '@' means the
Linux abstract namespace) to Type=notify services. Each message is one datagram of
newline-separated VAR=value assignments. Outside systemd (tests, a shell) the
variable is unset and every call is a no-op that returns False.

Errors are raised (NotifyError), not hidden: a unit with WatchdogSec kills a
daemon whose pings do not arrive, and the log should say why. Callers that ping
from a loop may log and carry on.
"""
from __future__ import annotations

import os
import socket

__all__ = ["NotifyError", "notify", "ready", "status", "watchdog", "stopping", "reloading",
           "extend_timeout", "watchdog_interval"]


class NotifyError(OSError):
    """NOTIFY_SOCKET is set but the message could not be sent."""


def _address(raw: str) -> str:
    if raw.startswith("@"):
        return "\0" + raw[1:]
    if not raw.startswith("/"):
        raise NotifyError(f"NOTIFY_SOCKET={raw!r}: expected an absolute path or '@name' "
                          "(vsock addresses are not supported)")
    return raw


def notify(*assignments: str) -> bool:
    """Send one datagram of VAR=value lines. False when not run under systemd."""
    raw = os.environ.get("NOTIFY_SOCKET")
    if not raw:
        return False
    for a in assignments:
        if "=" not in a or "\n" in a:
            raise ValueError(f"sd_notify assignment {a!r} must be VAR=value on one line")
    message = "\n".join(assignments).encode("utf-8")
    addr = _address(raw)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(addr)
            sock.sendall(message)
    except OSError as exc:
        raise NotifyError(exc.errno, f"sd_notify to NOTIFY_SOCKET={raw!r} failed: {exc.strerror or exc}") from None
    return True


def ready(status_text: str | None = None) -> bool:
    """Start-up done: systemd marks the unit started (Type=notify)."""
    return notify("READY=1", *([f"STATUS={_one_line(status_text)}"] if status_text else []))


def status(text: str) -> bool:
    """Free-form status shown by `systemctl status`."""
    return notify(f"STATUS={_one_line(text)}")


def watchdog() -> bool:
    """Liveness ping; send it at least every watchdog_interval() / 2."""
    return notify("WATCHDOG=1")


def stopping() -> bool:
    """Shutdown begun: systemd will not treat the exit as a failure to start."""
    return notify("STOPPING=1")


def reloading() -> bool:
    return notify("RELOADING=1")


def extend_timeout(seconds: float) -> bool:
    """Ask for more time for the current start-up/shutdown step (e.g. loading models)."""
    if seconds <= 0:
        raise ValueError(f"extend_timeout needs a positive time, got {seconds}")
    return notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")


def watchdog_interval() -> float | None:
    """Seconds of WatchdogSec when the watchdog applies to this process, else None.

    Same rule as sd_watchdog_enabled(3): WATCHDOG_USEC must be a positive integer,
    and WATCHDOG_PID, when set, must be our pid (a child that inherited the
    environment must not think the watchdog is its business).
    """
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    try:
        value = int(usec)
    except ValueError:
        raise NotifyError(f"WATCHDOG_USEC={usec!r} is not an integer") from None
    if value <= 0:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            raise NotifyError(f"WATCHDOG_PID={pid!r} is not an integer") from None
    return value / 1_000_000


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
