"""The clients' MQTT feed: 'connected' is shown only once the broker confirmed the subscriptions."""
from __future__ import annotations

import threading
import uuid

import paho.mqtt.client as mqtt

from callcue.daemon import contract
from callcue.daemon.config import BrokerConfig
from callcue.tui.mqtt import FeedClient, line_filters


def test_connected_means_subscribed_so_an_alert_sent_at_that_moment_arrives(mqtt_broker):
    host, port = mqtt_broker
    site = f"s{uuid.uuid4().hex[:6]}"
    root = contract.root(site, "f1")
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}")
    pub.connect(host, port)
    pub.loop_start()
    statuses: list[tuple[bool, str]] = []
    got = threading.Event()
    alert = contract.alert("7", "c7", "talk_over", "warning", "agent", 1.0, 2.4, "talked over", {"overlap_s": 1.4})

    def on_status(connected: bool, detail: str) -> None:
        statuses.append((connected, detail))
        if connected:       # the first instant the bar would say "connected": a live, non-retained alert
            pub.publish(f"{root}/{alert.subtopic}", alert.encode(), qos=1).wait_for_publish(5)

    feed = FeedClient(BrokerConfig(url=f"mqtt://{host}:{port}"), line_filters(site, "f1", "7"),
                      lambda topic, payload: got.set() if topic.endswith("/alert") else None, on_status)
    feed.start()
    try:
        assert got.wait(10), f"alert published when the client said connected never arrived; {statuses}"
        assert statuses[0] == (False, "subscribing")     # connected at TCP level, not yet live
        assert statuses[1] == (True, "connected")
    finally:
        feed.stop()
        pub.loop_stop()
        pub.disconnect()
