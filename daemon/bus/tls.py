"""TLS and authentication for every MQTT client of callcue (daemon, TUI, desk, status),
and plain-words reasons when a connection fails.

paho-mqtt swallows the exception of a failed (re)connect and only logs, at error level,
a socket error that ends a connection before the broker's CONNACK. `DiagClient` keeps
both, and `explain` turns them into what an operator has to fix: the broker's
certificate is not trusted, the broker wants a client certificate, it rejected ours,
the port does not speak TLS, nothing listens there.
"""
from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from ..yamlfile import ConfigError


class TlsSetupError(ConfigError):
    """A certificate, key or CA file cannot be used; the message names the file and why."""


def configure_tls(client: mqtt.Client, ca_file: Path | str | None, certfile: Path | str | None,
                  keyfile: Path | str | None) -> None:
    """client.tls_set with our files; TlsSetupError naming the file that is missing or bad."""
    for what, path in (("CA file", ca_file), ("client certificate", certfile), ("client key", keyfile)):
        if path is not None and not Path(path).is_file():
            raise TlsSetupError(f"broker {what} {path} does not exist or is not a file")
    try:
        client.tls_set(ca_certs=str(ca_file) if ca_file else None,
                       certfile=str(certfile) if certfile else None,
                       keyfile=str(keyfile) if keyfile else None)
    except ssl.SSLError as exc:
        which = f"client certificate {certfile} / key {keyfile or certfile}" if certfile else f"CA file {ca_file}"
        raise TlsSetupError(f"cannot load the {which}: {exc.reason or exc}") from None
    except OSError as exc:
        raise TlsSetupError(f"cannot read a TLS file: {exc}") from None


class DiagClient(mqtt.Client):
    """paho's Client that remembers why the last connection attempt failed
    (`last_error`: the exception of a failed connect, or paho's error text)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_error: BaseException | str | None = None
        self.on_log = self._capture_log

    def reconnect(self) -> mqtt.MQTTErrorCode:
        try:
            return super().reconnect()
        except OSError as exc:   # ssl.SSLError, ConnectionRefusedError, timeouts, DNS: all OSError
            self.last_error = exc
            raise

    def _capture_log(self, client, userdata, level: int, text: str) -> None:
        if level == mqtt.MQTT_LOG_ERR:
            self.last_error = text


# OpenSSL alert texts a client sees when the broker refuses its certificate (TLS 1.2: in
# the handshake; TLS 1.3: on the first read after it)
_CERT_REQUIRED = ("alert certificate required", "peer did not return a certificate")
_CERT_REJECTED = ("alert unknown ca", "alert bad certificate", "alert certificate unknown",
                  "alert certificate expired", "alert certificate revoked", "alert unsupported certificate",
                  "alert decrypt error", "alert access denied", "alert handshake failure")


def explain(error: BaseException | str | None, *, host: str, port: int, tls: bool,
            certfile: Path | str | None = None, ca_file: Path | str | None = None) -> str:
    """One sentence: why connecting to host:port failed and what to check."""
    where = f"broker {host}:{port}"
    if error is None:
        return f"{where} closed the connection before answering" + (
            "" if tls else " (does it expect TLS? use mqtts://)")
    text = str(error)
    low = text.lower()
    if isinstance(error, ssl.SSLCertVerificationError) or "certificate verify failed" in low:
        detail = getattr(error, "verify_message", None) or text
        return (f"TLS: {where}'s certificate is not trusted ({detail}); check broker.ca_file "
                f"({ca_file or 'system CAs'}) and that the certificate names {host}")
    if "hostname" in low and "match" in low:
        return f"TLS: {where}'s certificate does not name {host} ({text})"
    if any(s in low for s in _CERT_REQUIRED):
        return (f"TLS: {where} requires a client certificate and none was sent; set broker.certfile and "
                f"broker.keyfile")
    if any(s in low for s in _CERT_REJECTED):
        alert = next(s for s in _CERT_REJECTED if s in low).removeprefix("alert ")
        return (f"TLS: {where} rejected our client certificate {certfile or '(none)'} ({alert}); it must be "
                f"signed by a CA the broker trusts (its cafile) and be valid")
    if "wrong version number" in low or "record layer failure" in low or "packet length too long" in low:
        return f"TLS: {where} does not speak TLS on that port (use mqtt://, or the broker's TLS port)"
    if isinstance(error, ConnectionRefusedError) or "connection refused" in low:
        return f"cannot reach {where}: connection refused (is the broker running, and on that port?)"
    if isinstance(error, (TimeoutError, ssl.SSLError)) or "timed out" in low:
        return f"cannot reach {where}: {text}" if not isinstance(error, ssl.SSLError) else f"TLS with {where} failed: {text}"
    if isinstance(error, OSError):
        return f"cannot reach {where}: {error.strerror or text}"
    # paho's text of a socket error after the TCP/TLS connection ("failed to receive on socket: ...")
    return f"{where} dropped the connection before accepting it: {text}"


def refused(reason_code: Any, *, host: str, port: int, username: str | None) -> str:
    """CONNACK refusals in words (bad password, unknown user, not authorised)."""
    who = f"user {username!r}" if username else "anonymous clients (no username given)"
    text = str(reason_code)
    low = text.lower()
    if "not authori" in low or "bad user" in low or "username or password" in low:
        return (f"broker {host}:{port} refused {who}: {text} (check broker.username and the password; "
                f"`callcue acl` writes them to credentials.yaml)")
    return f"broker {host}:{port} refused the connection: {text}"
