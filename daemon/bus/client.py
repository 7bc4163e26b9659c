"""The box's MQTT connection (paho-mqtt 2.x): status with last will, QoS 1 through a
persistent outbox, subscriptions restored on every reconnect.

Threads: paho's network thread runs the callbacks; one sender thread hands outbox
rows to paho, at most ``window`` unacknowledged at a time. paho calls on_publish with
its own message lock held, so the ack path never takes ``_send_lock`` (which is held
around client.publish); it only touches leaf locks.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import paho.mqtt.client as mqtt

from .. import contract
from . import tls
from .outbox import DEFAULT_MAX_ROWS, Outbox

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes], None]


@dataclass(frozen=True)
class BrokerAddress:
    """Where and how to connect. ``BrokerAddress.of`` also takes a config.BrokerConfig."""

    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: bool = False
    keepalive: int = 30
    ca_file: Path | None = None
    certfile: Path | None = None    # client certificate (and keyfile) for brokers that ask for one
    keyfile: Path | None = None

    @classmethod
    def of(cls, broker: Any) -> "BrokerAddress":
        if isinstance(broker, cls):
            return broker
        keepalive = getattr(broker, "keepalive", None) or getattr(broker, "keepalive_s", 30)
        username = getattr(broker, "username", None)
        password = getattr(broker, "password", None)
        creds = getattr(broker, "credentials_file", None)
        if creds is not None and password is None:
            from .acl import password_of
            password = password_of(creds, username)
        return cls(host=broker.host, port=broker.port, username=username,
                   password=password, tls=bool(getattr(broker, "tls", False)),
                   keepalive=int(keepalive), ca_file=getattr(broker, "ca_file", None),
                   certfile=getattr(broker, "certfile", None), keyfile=getattr(broker, "keyfile", None))

    def describe_failure(self, error) -> str:
        return tls.explain(error, host=self.host, port=self.port, tls=self.tls, certfile=self.certfile,
                           ca_file=self.ca_file)


def set_nodelay(client: mqtt.Client) -> None:
    """paho leaves Nagle on; with QoS 0 and QoS 1 traffic mixed, small PUBACKs and commands
    then wait for the peer's delayed ACK (measured: +12-22 ms p50, +40-60 ms p95 per hop)."""
    sock = client.socket()
    if sock is None:
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError) as exc:
        log.debug("TCP_NODELAY not set: %s", exc)


def _check_subtopic(subtopic: str) -> None:
    if not subtopic or subtopic.startswith("/") or any(c in subtopic for c in "+#\0"):
        raise ValueError(f"invalid subtopic {subtopic!r}: must be non-empty, relative to the root, "
                         f"without wildcards or NUL")


class Bus:
    """One MQTT session for one box under ``topic_root``.

    Never raises because the broker is down: QoS 0 messages are dropped (and counted)
    while disconnected, QoS >= 1 messages wait in the outbox until acknowledged.
    Subscription handlers run on paho's network thread and must return quickly.
    """

    RECONNECT_MIN_S = 1
    RECONNECT_MAX_S = 30

    def __init__(self, topic_root: str, box: str, broker: Any, outbox_path: Path | None,
                 client_id: str, *, window: int = 100, outbox_max_rows: int = DEFAULT_MAX_ROWS,
                 persistent: bool = False):
        self.root = topic_root.rstrip("/")
        self.box = box
        self.broker = BrokerAddress.of(broker)
        self.client_id = client_id
        self.window = window
        self._status_topic = f"{self.root}/{contract.box_status(box, True).subtopic}"
        self._outbox = Outbox(outbox_path, outbox_max_rows)

        self._send_lock = threading.Lock()        # around client.publish/subscribe and the epoch reset
        self._ack_cond = threading.Condition()    # leaf: in-flight map, counters
        self._wake = threading.Event()            # sender: new rows, acks, (re)connect
        self._stopping = threading.Event()
        self._connected = False
        self._inflight: dict[int, int | None] = {}  # mid -> outbox row id (None: status message)
        self._early_acks: set[int] = set()          # PUBACK seen before the mid was registered
        self._registering = False
        self._sent_upto = 0                         # highest outbox id handed to paho this connection
        self._subs: list[tuple[str, Handler]] = []
        self._connects = 0
        self._published = 0
        self._dropped_qos0 = 0
        self._handler_errors = 0
        self._started = False
        self._sender: threading.Thread | None = None

        # persistent: the broker keeps this client id's subscriptions and queues its QoS 1
        # messages while it is away (clean_session false); an incoming message is acknowledged
        # only after its handler took it (a handler returning False leaves it to the next session)
        self.persistent = persistent
        self._connect_hooks: list[Callable[[], None]] = []
        c = tls.DiagClient(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent,
                           protocol=mqtt.MQTTv311)
        if persistent:
            c.manual_ack_set(True)
        if self.broker.username is not None:
            c.username_pw_set(self.broker.username, self.broker.password)
        if self.broker.tls:
            tls.configure_tls(c, self.broker.ca_file, self.broker.certfile, self.broker.keyfile)
        c.will_set(self._status_topic, "offline", qos=1, retain=True)
        c.reconnect_delay_set(self.RECONNECT_MIN_S, self.RECONNECT_MAX_S)
        c.max_inflight_messages_set(0)  # our window bounds it; paho must not hold a second queue
        c.on_connect = self._on_connect
        c.on_connect_fail = self._on_connect_fail
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_message = self._on_message
        self._client = c
        self._fail_logged: str | None = None   # the failure last logged; logged again only when it changes
        self._refused = False
        self._connect_failures = 0             # attempts that did not get connected (any reason)

    # -- public API ---------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; reconnects with 1..30 s backoff forever."""
        if self._started:
            raise RuntimeError("Bus.start() called twice; a stopped Bus cannot be restarted, make a new one")
        self._started = True
        self._client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive)
        self._client.loop_start()
        self._sender = threading.Thread(target=self._sender_main, name=f"bus-sender-{self.box}", daemon=True)
        self._sender.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Publish 'offline', wait up to ``timeout`` for outstanding acks, disconnect.

        Messages not acknowledged by then stay in the outbox for the next start.
        """
        if not self._started or self._stopping.is_set():
            self._stopping.set()
            self._outbox.close()
            return
        deadline = time.monotonic() + timeout
        if self._connected:
            self.flush(max(0.0, deadline - time.monotonic()))
            info = self._publish_status(online=False)
            while info is not None and not info.is_published() and self._connected and time.monotonic() < deadline:
                time.sleep(0.01)
        self._stopping.set()
        self._wake.set()
        if self._sender is not None:
            self._sender.join(timeout=5)
        self._client.disconnect()
        self._client.loop_stop()
        self._connected = False
        self._outbox.close()

    def publish(self, msg: contract.Message) -> None:
        """Send one contract message (``msg.subtopic`` relative to the root). Thread-safe."""
        _check_subtopic(msg.subtopic)
        if msg.qos not in (0, 1, 2):
            raise ValueError(f"invalid QoS {msg.qos} for {msg.subtopic}")
        topic = f"{self.root}/{msg.subtopic}"
        payload = msg.encode()
        if msg.qos == 0:
            ok = False
            if self._connected:
                ok = self._client.publish(topic, payload, qos=0, retain=msg.retain).rc == mqtt.MQTT_ERR_SUCCESS
            with self._ack_cond:
                if ok:
                    self._published += 1
                else:
                    self._dropped_qos0 += 1
            return
        if self._stopping.is_set():
            raise RuntimeError(f"Bus is stopped; cannot publish to {topic}")
        self._outbox.put(topic, payload, msg.qos, msg.retain)
        self._wake.set()

    def subscribe(self, filter_rel: str, handler: Handler) -> None:
        """Call ``handler(subtopic, payload)`` for messages matching ``filter_rel`` (relative
        to the root; wildcards allowed). Restored on every reconnect."""
        if not filter_rel or filter_rel.startswith("/"):
            raise ValueError(f"invalid topic filter {filter_rel!r}: must be non-empty and relative to the root")
        full = f"{self.root}/{filter_rel}"
        # validates the filter the same way paho and the broker will
        mqtt.topic_matches_sub(full, f"{self.root}/x")
        with self._send_lock:
            self._subs.append((full, handler))
            if self._connected:
                self._client.subscribe(full, qos=1)

    def on_connect(self, hook: Callable[[], None]) -> None:
        """Call ``hook()`` on paho's thread after every (re)connect, once the status is out
        (the daemon publishes its retained state again there). It must return quickly."""
        self._connect_hooks.append(hook)

    def flush(self, timeout: float) -> bool:
        """Wait until every queued QoS >= 1 message is acknowledged; False on timeout."""
        with self._ack_cond:
            return self._ack_cond.wait_for(lambda: self._outbox.depth == 0, timeout)

    @property
    def connected(self) -> bool:
        return self._connected

    def stats(self) -> dict[str, Any]:
        with self._ack_cond:
            return {
                "connected": self._connected,
                "outbox_depth": self._outbox.depth,
                "inflight": sum(1 for v in self._inflight.values() if v is not None),
                "published": self._published,
                "dropped_qos0": self._dropped_qos0,
                "outbox_dropped": self._outbox.dropped,
                "reconnects": max(0, self._connects - 1),
                "connect_failures": self._connect_failures,
                "handler_errors": self._handler_errors,
            }

    # -- sending ------------------------------------------------------------------

    def _send_tracked(self, topic: str, payload: bytes, qos: int, retain: bool,
                      row_id: int | None) -> mqtt.MQTTMessageInfo:
        """client.publish and remember its mid. Caller holds _send_lock, so only one
        registration is ever pending; a PUBACK that beats it is parked in _early_acks."""
        with self._ack_cond:
            self._early_acks.clear()
            self._registering = True
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        with self._ack_cond:
            self._registering = False
            early = info.mid in self._early_acks
            self._early_acks.clear()
            if info.rc == mqtt.MQTT_ERR_SUCCESS and not early:
                self._inflight[info.mid] = row_id
        if early:
            self._acked(row_id)
        return info

    def _publish_status(self, online: bool) -> mqtt.MQTTMessageInfo | None:
        msg = contract.box_status(self.box, online)
        with self._send_lock:
            info = self._send_tracked(self._status_topic, msg.encode(), msg.qos, msg.retain, None)
        return info if info.rc == mqtt.MQTT_ERR_SUCCESS else None

    def _pump(self) -> None:
        """Hand the next outbox rows to paho while the window has room."""
        with self._send_lock:
            while self._connected and not self._stopping.is_set():
                with self._ack_cond:
                    room = self.window - sum(1 for v in self._inflight.values() if v is not None)
                if room <= 0:
                    return
                rows = self._outbox.after(self._sent_upto, room)
                if not rows:
                    return
                for row in rows:
                    info = self._send_tracked(row.topic, row.payload, row.qos, row.retain, row.id)
                    if info.rc != mqtt.MQTT_ERR_SUCCESS:
                        return  # connection lost: the next on_connect resends from the oldest row
                    self._sent_upto = row.id

    def _sender_main(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            try:
                self._pump()
            except Exception:
                # keep the sender alive; the row stays in the outbox and is retried
                log.exception("bus: sending from the outbox failed; retrying in 1 s")
                self._stopping.wait(1.0)

    def _acked(self, row_id: int | None) -> None:
        if row_id is not None:
            self._outbox.delete(row_id)
        with self._ack_cond:
            if row_id is not None:
                self._published += 1
            self._ack_cond.notify_all()
        self._wake.set()

    # -- paho callbacks (network thread) --------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._refused = True    # the disconnect that follows needs no second log line
            self._log_failure(tls.refused(reason_code, host=self.broker.host, port=self.broker.port,
                                          username=self.broker.username))
            return
        try:
            set_nodelay(client)
            with self._send_lock:
                # unacked messages are resent from the outbox in order; paho's own copies would come first
                client.drop_out_messages()
                with self._ack_cond:
                    self._inflight.clear()
                    self._early_acks.clear()
                    self._connects += 1
                self._sent_upto = 0
                self._connected = True
                self._fail_logged = None
                client.last_error = None
                for full, _ in self._subs:
                    client.subscribe(full, qos=1)
            self._publish_status(online=True)
            for hook in list(self._connect_hooks):
                hook()
            log.info("bus: connected to %s:%d as %s%s", self.broker.host, self.broker.port, self.client_id,
                     f" (reconnect #{self._connects - 1})" if self._connects > 1 else "")
        except Exception:
            log.exception("bus: setting up the connection failed")
        self._wake.set()

    def _log_failure(self, why: str) -> None:
        """A failed connection attempt: logged when its reason is new (TLS and refusals as errors)."""
        with self._ack_cond:
            self._connect_failures += 1
        if why == self._fail_logged or self._stopping.is_set():
            return
        self._fail_logged = why
        level = logging.WARNING if why.startswith("cannot reach") else logging.ERROR
        log.log(level, "bus: %s; retrying every %d-%d s, QoS 1 messages wait in the outbox",
                why, self.RECONNECT_MIN_S, self.RECONNECT_MAX_S)

    def _on_connect_fail(self, client, userdata) -> None:
        self._log_failure(self.broker.describe_failure(client.last_error))
        client.last_error = None

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        was = self._connected
        self._connected = False
        if was and not self._stopping.is_set():
            log.warning("bus: lost broker %s:%d (%s); reconnecting", self.broker.host, self.broker.port, reason_code)
        elif self._refused:
            self._refused = False
        elif not was and not flags.is_disconnect_packet_from_server:
            # dropped after TCP/TLS but before CONNACK: e.g. a client certificate the broker refused
            self._log_failure(self.broker.describe_failure(client.last_error))
            client.last_error = None

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        try:
            with self._ack_cond:
                if mid not in self._inflight:
                    # QoS 0 sends report here too; only a pending registration cares
                    if self._registering:
                        self._early_acks.add(mid)
                    return
                row_id = self._inflight.pop(mid)
            self._acked(row_id)
        except Exception:
            log.exception("bus: handling the acknowledgement of mid %d failed", mid)

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        topic = message.topic
        taken = True
        if topic.startswith(self.root + "/"):
            rel = topic[len(self.root) + 1:]
            for full, handler in list(self._subs):
                if mqtt.topic_matches_sub(full, topic):
                    try:
                        taken = handler(rel, message.payload) is not False and taken
                    except Exception:
                        with self._ack_cond:
                            self._handler_errors += 1
                        log.exception("bus: handler %r for %s failed on %s", handler, full, topic)
        if self.persistent and taken:
            client.ack(message.mid, message.qos)
