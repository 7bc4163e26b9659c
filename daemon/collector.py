"""`callcue collect`: every floor's call summaries from the central broker into the central
store (daemon/warehouse), losing none across a restart of the collector or the broker.

- A persistent MQTT 5 session: a fixed client id, clean_start False and a long session
  expiry (default 7 days), so the broker keeps the subscription and queues summaries while
  the collector is away; QoS 1 on `callcue/v1/+/+/line/+/summary`, subscribed again on every
  connect (a broker restarted without its persistence file has forgotten the session).
- A summary is acknowledged (manual PUBACK) only after its row is committed (synchronous
  FULL), so a crash between the two means a redelivery, never a loss; the store ignores
  the second copy (idempotent on call_id).
- A summary that cannot be stored because it is malformed (not JSON, no call_id) is logged,
  counted and acknowledged: a redelivery would not mend it. A store failure (disk full)
  stops the collector unacknowledged (exit 1; systemd restarts it and the broker redelivers).
The central broker needs `persistence true` (sessions and queued messages survive its
restart) and a `max_queued_messages` that holds the longest outage to ride out.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from . import contract
from .bus import tls
from .bus.client import BrokerAddress
from .warehouse.records import parse_topic, rows_from_summary
from .warehouse.store import Warehouse

log = logging.getLogger(__name__)

SUMMARY_FILTER = f"{contract.root('+', '+')}/line/+/summary"
DEFAULT_CLIENT_ID = "callcue-collector"
DEFAULT_SESSION_S = 7 * 24 * 3600


class Collector:
    def __init__(self, broker: Any, store: Path, client_id: str = DEFAULT_CLIENT_ID,
                 session_expiry_s: int = DEFAULT_SESSION_S, on_stored: Callable[[str, bool], None] | None = None):
        self.address = BrokerAddress.of(broker)
        self.store = Warehouse(store, synchronous="FULL")
        self.client_id = client_id
        self.session_expiry_s = session_expiry_s
        self.on_stored = on_stored
        self.stats = {"stored": 0, "duplicates": 0, "rejected": 0, "connects": 0}
        self.failed: BaseException | None = None
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.stopped = threading.Event()
        c = tls.DiagClient(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if self.address.username is not None:
            c.username_pw_set(self.address.username, self.address.password)
        if self.address.tls:
            tls.configure_tls(c, self.address.ca_file, self.address.certfile, self.address.keyfile)
        c.manual_ack_set(True)
        c.reconnect_delay_set(1, 10)
        c.on_connect = self._on_connect
        c.on_connect_fail = self._on_connect_fail
        c.on_disconnect = self._on_disconnect
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        self.client = c
        self._fail_logged: str | None = None

    # ---- lifecycle ----
    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry_s
        self.client.connect_async(self.address.host, self.address.port, keepalive=self.address.keepalive,
                                  clean_start=False, properties=props)
        self.client.loop_start()

    def stop(self) -> None:
        """Disconnect keeping the session (the broker queues summaries until the next start)."""
        self.stopped.set()
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
            self.store.close()

    def run(self, stop: threading.Event, report_every_s: float = 60.0) -> int:
        self.start()
        last = time.monotonic()
        try:
            while not stop.wait(0.5):
                if self.failed is not None:
                    log.error("collect: the store failed (%s); stopping without acknowledging, the broker will "
                              "deliver the summary again", self.failed)
                    return 1
                if time.monotonic() - last >= report_every_s:
                    last = time.monotonic()
                    log.info("collect: %(stored)d stored, %(duplicates)d duplicates, %(rejected)d rejected", self.stats)
        finally:
            self.stop()
        return 0

    # ---- paho callbacks (network thread) ----
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._log_failure(tls.refused(reason_code, host=self.address.host, port=self.address.port,
                                          username=self.address.username))
            return
        self.stats["connects"] += 1
        self._fail_logged = None
        log.info("collect: connected to %s:%d as %s (session %s)", self.address.host, self.address.port,
                 self.client_id, "resumed" if flags.session_present else "new")
        client.subscribe(SUMMARY_FILTER, qos=1)
        self.connected.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        bad = [rc for rc in reason_codes if rc.is_failure]
        if bad:
            log.error("collect: the broker refused the subscription to %s: %s (the user needs the collector role: "
                      "callcue acl)", SUMMARY_FILTER, bad[0])
            return
        log.info("collect: subscribed to %s (QoS 1)", SUMMARY_FILTER)
        self.subscribed.set()

    def _log_failure(self, why: str) -> None:
        if why != self._fail_logged and not self.stopped.is_set():
            self._fail_logged = why
            log.warning("collect: %s; retrying", why)

    def _on_connect_fail(self, client, userdata) -> None:
        self._log_failure(self.address.describe_failure(client.last_error))
        client.last_error = None

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        self.subscribed.clear()
        if not self.stopped.is_set():
            log.warning("collect: lost the broker (%s); reconnecting, the session keeps what arrives", reason_code)

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        if self.failed is not None:
            return                       # stopping: leave it unacknowledged
        where = parse_topic(msg.topic)
        try:
            if where is None:
                raise ValueError("not a line summary topic")
            payload = json.loads(msg.payload)
            rows = rows_from_summary(payload, site=where[0], floor=where[1], line=where[2], source="collect",
                                     received=datetime.now().isoformat(sep=" ", timespec="seconds"))
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            self.stats["rejected"] += 1
            log.warning("collect: %s: not stored: %s", msg.topic, exc)
            client.ack(msg.mid, msg.qos)
            return
        try:
            new = self.store.ingest(rows)
        except Exception as exc:         # the store: never acknowledge what is not written
            self.failed = exc
            return
        self.stats["stored" if new else "duplicates"] += 1
        client.ack(msg.mid, msg.qos)
        if self.on_stored is not None:
            self.on_stored(rows.call["call_id"], new)
