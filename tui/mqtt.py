"""MQTT side of the supervisor and desk clients (paho-mqtt 2.x).

paho's network thread reconnects by itself (1..10 s back-off); every connect
re-subscribes. MQTT 5 with a short session expiry: the broker keeps our subscription
and QoS 1 alerts through a network blip (reconnects resume the session) but forgets
the session soon after the terminal is closed, so no sessions pile up on the broker.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any, Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from callcue.daemon import contract
from callcue.daemon.bus import tls
from callcue.daemon.bus.client import BrokerAddress, set_nodelay
from callcue.daemon.config import BrokerConfig

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 300
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 10

OnMessage = Callable[[str, bytes], None]
OnStatus = Callable[[bool, str], None]
OnReply = Callable[[dict[str, Any] | None], None]
REQUESTS_MAX = 64            # look-back requests awaiting their answer


def floor_filters(site: str | None, floor: str | None, all_floors: bool) -> list[str]:
    """Topic filters for one floor, one site, or every floor on the broker."""
    if all_floors or (site is None and floor is None):
        return [f"callcue/{contract.VERSION}/+/+/#"]
    return [f"callcue/{contract.VERSION}/{site or '+'}/{floor or '+'}/#"]


def line_filters(site: str, floor: str, line: str) -> list[str]:
    root = contract.root(site, floor)
    return [f"{root}/line/{line}/#"]


def default_user() -> str:
    try:
        import getpass
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "supervisor"
    return f"{user}@{socket.gethostname()}"


class FeedClient:
    """Subscribes to contract topics and hands every message to `on_message` on paho's thread.

    `on_message` must be quick and must not raise (its exceptions are logged and
    counted in `handler_errors`, because an exception would end paho's loop).
    """

    def __init__(self, broker: BrokerConfig, filters: list[str], on_message: OnMessage,
                 on_status: OnStatus | None = None, client_prefix: str = "callcue-tui",
                 cmd_role: str = "supervisor"):
        assert cmd_role in contract.CMD_ROLES, cmd_role
        self.broker = broker
        self.cmd_role = cmd_role        # commands go to line/{line}/cmd/{cmd_role}; the broker's ACL checks it
        self.refused = 0                # commands the broker refused (PUBACK "not authorised")
        self.on_refused: Callable[[str], None] | None = None   # told why, on paho's thread
        self._connack = False           # the broker accepted this connection (paho's thread only)
        self._refused_connack = False
        self.filters = list(filters)
        self.on_message = on_message
        self.on_status = on_status
        self.connected = False
        self.status_detail = "connecting"
        self.changed_at = time.time()
        self.connects = 0
        self.failures = 0
        self.handler_errors = 0
        self._lock = threading.Lock()
        self._acked: dict[int, Callable[[], None]] = {}
        self._early: set[int] = set()
        self._pending_subs: set[int] = set()   # SUBACKs still due; only paho's network thread touches it
        # look-back requests (contract: box/{box}/query, MQTT 5 response topic + correlation data):
        # answers come on box/{box}/reply/{reply_token}; correlation data -> (deadline, callback)
        self.reply_token = uuid.uuid4().hex
        self._requests: dict[bytes, tuple[float, OnReply]] = {}
        client_id = f"{client_prefix}-{socket.gethostname()[:20]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._address = BrokerAddress.of(broker)   # the password of a credentials_file, TLS files
        c = tls.DiagClient(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if self._address.username is not None:
            c.username_pw_set(self._address.username, self._address.password)
        if broker.tls:
            tls.configure_tls(c, broker.ca_file, broker.certfile, broker.keyfile)
        c.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        c.max_queued_messages_set(100)    # commands issued while a publish is in flight; bounded
        c.on_connect = self._on_connect
        c.on_connect_fail = self._on_connect_fail
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_publish = self._on_publish
        c.on_subscribe = self._on_subscribe
        self._client = c

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self._client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s,
                                   clean_start=mqtt.MQTT_CLEAN_START_FIRST_ONLY, properties=props)
        self._client.loop_start()

    def stop(self) -> None:
        # expire the session at once: nobody will resume it
        props = Properties(PacketTypes.DISCONNECT)
        props.SessionExpiryInterval = 0
        try:
            self._client.disconnect(properties=props)
        finally:
            self._client.loop_stop()

    # ---------------------------------------------------------------- commands
    def publish_cmd(self, site: str, floor: str, line: str, body: dict[str, Any],
                    on_acked: Callable[[], None] | None = None) -> bool:
        """Publish a command on line/{line}/cmd/{cmd_role} at QoS 1. False (nothing sent) when
        disconnected, so the caller can tell the user instead of queueing a stale acknowledgement.
        `on_acked` runs on the broker's PUBACK, not when the broker refuses the command."""
        if not self.connected:
            return False
        topic = f"{contract.root(site, floor)}/{contract.cmd_topic(line, self.cmd_role)}"
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        # not under self._lock: paho runs on_publish holding its own lock (lock order)
        info = self._client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            log.warning("publish to %s failed: %s", topic, mqtt.error_string(info.rc))
            return False
        cb = on_acked or (lambda: None)
        with self._lock:
            early = info.mid in self._early
            self._early.discard(info.mid)
            if not early:
                self._acked[info.mid] = cb
                while len(self._acked) > 1000:     # PUBACKs lost with a dropped session
                    self._acked.pop(next(iter(self._acked)))
        if early:
            cb()
        return True

    # ---------------------------------------------------------------- look-back requests
    def request(self, site: str, floor: str, box: str, body: dict[str, Any], on_reply: OnReply,
                timeout: float = 10.0) -> bool:
        """Ask a box about its stored calls (`{"op": "calls", ...}` or `{"op": "call", "call_id": ...}`).
        `on_reply(answer)` runs on paho's thread with the box's answer, or with None when none
        came within `timeout` (checked at every later message and request). False when
        disconnected (nothing sent)."""
        if not self.connected:
            return False
        now = time.monotonic()
        self._expire(now)
        root = contract.root(site, floor)
        corr = uuid.uuid4().bytes
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = f"{root}/{contract.reply_prefix(box)}{self.reply_token}"
        props.CorrelationData = corr
        with self._lock:
            if len(self._requests) >= REQUESTS_MAX:
                return False
            self._requests[corr] = (now + timeout, on_reply)
        info = self._client.publish(f"{root}/{contract.query_topic(box)}",
                                    json.dumps(body, ensure_ascii=False, separators=(",", ":")), qos=1,
                                    properties=props)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            with self._lock:
                self._requests.pop(corr, None)
            return False
        return True

    def _expire(self, now: float) -> None:
        with self._lock:
            late = [(c, cb) for c, (deadline, cb) in self._requests.items() if deadline < now]
            for c, _ in late:
                del self._requests[c]
        for _, cb in late:
            cb(None)

    def _reply(self, msg) -> bool:
        """A message on our reply topic: hand it to its request's callback. True when it was one."""
        if not msg.topic.endswith(f"/reply/{self.reply_token}"):
            return False
        corr = getattr(getattr(msg, "properties", None), "CorrelationData", None)
        with self._lock:
            entry = self._requests.pop(bytes(corr), None) if corr is not None else None
        if entry is not None:
            try:
                answer = json.loads(msg.payload)
            except ValueError:
                answer = {"ok": False, "error": "the box's answer is not JSON"}
            entry[1](answer if isinstance(answer, dict) else {"ok": False, "error": "bad answer"})
        return True

    # ---------------------------------------------------------------- callbacks
    def _set(self, connected: bool, detail: str) -> None:
        changed = connected != self.connected or detail != self.status_detail
        self.connected = connected
        self.status_detail = detail
        if changed:
            self.changed_at = time.time()
            if self.on_status is not None:
                self.on_status(connected, detail)

    def _on_connect(self, client, userdata, flags, reason, props) -> None:
        if reason.is_failure:
            self.failures += 1
            why = tls.refused(reason, host=self.broker.host, port=self.broker.port, username=self._address.username)
            if why != self.status_detail:
                log.error("%s", why)
            self._refused_connack = True
            self._set(False, why)
            return
        client.last_error = None
        self._connack = True
        self.connects += 1
        set_nodelay(client)
        # "connected" only once the broker has acknowledged every subscription: before that,
        # alerts published to the floor would not reach this client, so the bar must not say live.
        self._pending_subs.clear()
        for f in self.filters:     # a supervisor's floor filters (.../#) also bring look-back answers
            rc, mid = client.subscribe(f, qos=1)
            if rc == mqtt.MQTT_ERR_SUCCESS:
                self._pending_subs.add(mid)
            else:
                log.warning("subscribe %s failed: %s", f, mqtt.error_string(rc))
        done = not self._pending_subs
        self._set(done, "connected" if done else "subscribing")

    def _on_subscribe(self, client, userdata, mid, reason_codes, props) -> None:
        refused = [str(r) for r in reason_codes if r.is_failure]
        if refused:
            # e.g. an ACL on the broker: say so instead of showing a silent, empty board
            log.error("broker refused subscription (mid %s): %s", mid, ", ".join(refused))
            self._set(False, f"subscription refused: {', '.join(refused)}")
            return
        self._pending_subs.discard(mid)
        if not self._pending_subs:
            self._set(True, "connected")

    def _failed(self, client) -> None:
        """A connection attempt that ended before the broker accepted it: say why (TLS trust,
        client certificate, nothing listening), logged once per distinct reason."""
        self.failures += 1
        why = self._address.describe_failure(client.last_error)
        client.last_error = None
        if why != self.status_detail:
            log.log(logging.ERROR if why.startswith("TLS") else logging.WARNING, "%s", why)
        self._set(False, why)

    def _on_connect_fail(self, client, userdata) -> None:
        self._failed(client)

    def _on_disconnect(self, client, userdata, flags, reason, props) -> None:
        if self._refused_connack:
            self._refused_connack = False      # on_connect has said why
        elif not self._connack:
            self._failed(client)               # dropped before the broker's CONNACK
        else:
            self._set(False, f"disconnected ({reason})")
        self._connack = False

    def _on_publish(self, client, userdata, mid, reason, props) -> None:
        if reason is not None and reason.is_failure:
            # MQTT 5: the broker took the PUBLISH but its ACL refused it (e.g. a role's topic)
            with self._lock:
                self._acked.pop(mid, None)
                self.refused += 1
            log.error("broker %s:%d refused a command as %s: %s", self.broker.host, self.broker.port,
                      self._address.username or "anonymous", reason)
            if self.on_refused is not None:
                self.on_refused(str(reason))
            return
        with self._lock:
            cb = self._acked.pop(mid, None)
            if cb is None:
                self._early.add(mid)      # PUBACK before publish_cmd registered the callback
        if cb is not None:
            cb()

    def _on_message(self, client, userdata, msg) -> None:
        try:
            if self._requests:
                self._expire(time.monotonic())
            if self._reply(msg):
                return
            self.on_message(msg.topic, bytes(msg.payload))
        except Exception:
            # the loop thread must survive a bug in one handler; the UI shows the count
            self.handler_errors += 1
            log.exception("handling %s failed", msg.topic)


def parse_broker(url: str, username: str | None = None, password: str | None = None,
                 ca_file: str | None = None, certfile: str | None = None, keyfile: str | None = None,
                 credentials_file: str | None = None) -> BrokerConfig:
    """BrokerConfig from the command line; ValueError with the reason when the URL is wrong."""
    from pydantic import ValidationError
    try:
        return BrokerConfig(url=url, username=username, password=None if credentials_file else password,
                            ca_file=ca_file, certfile=certfile, keyfile=keyfile,
                            credentials_file=credentials_file, keepalive_s=10)
    except ValidationError as exc:
        raise ValueError("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None
