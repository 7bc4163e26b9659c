"""Shared fixtures: a real MQTT broker and a subscriber that collects what it hears.

`mqtt_broker` reuses the Mosquitto on 127.0.0.1:1883 when one answers, otherwise it
starts an embedded one on a free port, so CI without a system broker still runs.
Other test files: use the `mqtt_broker`, `private_broker` and `collector` fixtures,
or `from conftest import collect` for a Collector of your own.

Also here: `wait_until` (wait for a condition instead of sleeping and hoping), and what
the tests need that hardware/provision.sh installs: `@pytest.mark.needs_models(...)`,
`@pytest.mark.needs_packages(...)`, `needs_demo_calls()` and `missing(...)` skip a test on
a machine without the speech or embedding models (or the tools that build them, or the
rendered demo calls), and fail it when CALLCUE_REQUIRE_MODELS=1 (`hardware/provision.sh
test`, so CI, sets it).
Plain helpers (synthetic calls, WAV files, a content pack) are in helpers.py.
"""
from __future__ import annotations

import importlib.util
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, NoReturn

import paho.mqtt.client as mqtt
import pytest

from callcue.daemon.bus.broker import EmbeddedBroker, free_port, port_is_open
from helpers import DEMO_CALLS


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory) -> tuple[str, int]:
    """(host, port) of a running broker shared by the whole session."""
    if port_is_open("127.0.0.1", 1883):
        yield ("127.0.0.1", 1883)
        return
    with EmbeddedBroker("127.0.0.1", free_port(), tmp_path_factory.mktemp("mosquitto")) as broker:
        yield (broker.host, broker.port)


@pytest.fixture
def private_broker(tmp_path) -> EmbeddedBroker:
    """A broker of this test's own (.host, .port); .stop() and .start() it for outage tests."""
    broker = EmbeddedBroker("127.0.0.1", free_port(), tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.stop()


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8")


@dataclass
class Collector:
    """A real paho subscriber that records every message it receives."""

    client: mqtt.Client
    messages: list[Received] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def _add(self, msg: Received) -> None:
        with self._cond:
            self.messages.append(msg)
            self._cond.notify_all()

    def snapshot(self) -> list[Received]:
        with self._cond:
            return list(self.messages)

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 5.0) -> list[Received]:
        """Wait until predicate(messages so far) is true; returns them, or fails the test
        listing what did arrive."""
        with self._cond:
            if self._cond.wait_for(lambda: predicate(self.messages), timeout):
                return list(self.messages)
            got = [(m.topic, m.payload[:80], m.retain) for m in self.messages]
        raise AssertionError(f"condition not met within {timeout} s; received {len(got)} message(s): {got[-20:]}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def collect(host: str, port: int, topic_filter: str, *, timeout: float = 5.0,
            client_id: str | None = None, clean_session: bool = True) -> Collector:
    """Subscribe to topic_filter (QoS 1) and return once the broker confirmed it.

    With a fixed client_id and clean_session=False the broker keeps the subscription
    and queues messages while the collector or the broker is away.
    """
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"test-{uuid.uuid4().hex[:10]}",
                    clean_session=clean_session, protocol=mqtt.MQTTv311)
    c.reconnect_delay_set(1, 1)
    col = Collector(c)
    subscribed = threading.Event()

    def on_connect(client, userdata, flags, rc, props):
        if not rc.is_failure:
            client.subscribe(topic_filter, qos=1)

    c.on_connect = on_connect
    c.on_subscribe = lambda *a: subscribed.set()
    c.on_message = lambda client, userdata, m: col._add(Received(m.topic, bytes(m.payload), bool(m.retain)))
    c.connect_async(host, port, keepalive=10)
    c.loop_start()
    if not subscribed.wait(timeout):
        col.close()
        raise AssertionError(f"could not subscribe to {topic_filter!r} on {host}:{port} within {timeout} s")
    return col


@pytest.fixture
def collector():
    """Factory: collector(host, port, topic_filter, **kw) -> Collector, closed after the test."""
    made: list[Collector] = []

    def make(host: str, port: int, topic_filter: str, **kw) -> Collector:
        col = collect(host, port, topic_filter, **kw)
        made.append(col)
        return col

    yield make
    for col in made:
        col.close()


def clear_retained(host: str, port: int, topic_filter: str, settle: float = 0.3) -> int:
    """Delete every retained message under topic_filter (publish empty retained); returns how many."""
    col = collect(host, port, topic_filter)
    try:
        time.sleep(settle)  # retained messages arrive right after the SUBACK
        topics = {m.topic for m in col.snapshot() if m.retain and m.payload}
        for t in topics:
            col.client.publish(t, b"", qos=1, retain=True).wait_for_publish(5)
        return len(topics)
    finally:
        col.close()


@pytest.fixture
def mqtt_root(mqtt_broker) -> str:
    """A topic root of this test's own on the shared broker; its retained messages are cleared after."""
    root = f"callcue/v1/t{uuid.uuid4().hex[:10]}/f1"
    yield root
    clear_retained(*mqtt_broker, f"{root}/#")


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition",
               detail: Callable[[], Any] | None = None) -> Any:
    """Poll predicate() until it is true and return its value, or fail naming what was
    awaited (and detail(), when given: the state that was seen instead).

    The one way tests wait for something another thread or process does: never a
    fixed sleep followed by an exact assertion."""
    deadline = time.monotonic() + timeout
    while not (got := predicate()):
        if time.monotonic() > deadline:
            seen = f"; seen: {detail()}" if detail is not None else ""
            raise AssertionError(f"{what}: not reached within {timeout} s{seen}")
        time.sleep(0.02)
    return got


# ---------------------------------------------------------------- what provision.sh installs

REQUIRE_MODELS = os.environ.get("CALLCUE_REQUIRE_MODELS", "").strip() not in ("", "0")


def missing(what: str) -> NoReturn:
    """This test cannot run here because `what` is not installed: skip it on a developer's
    machine; fail it when CALLCUE_REQUIRE_MODELS=1 (CI), where provision.sh has built
    everything and a missing model means the build broke, not that tests may pass."""
    if REQUIRE_MODELS:
        pytest.fail(f"{what}; CALLCUE_REQUIRE_MODELS=1 makes this a failure, not a skip", pytrace=False)
    pytest.skip(what)


def needs_demo_calls() -> None:
    """The demo calls are rendered by provision.sh (flows/demo/calls/*.wav)."""
    if not list(DEMO_CALLS.glob("*.wav")):
        missing("demo calls not rendered (hardware/provision.sh renders them)")


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "needs_models(*names): installed models the test needs; a missing one "
                                       "skips it, or fails it when CALLCUE_REQUIRE_MODELS=1")
    config.addinivalue_line("markers", "needs_packages(*modules, hint=...): Python packages the test needs (the "
                                       "model build tools); a missing one skips it, or fails it when "
                                       "CALLCUE_REQUIRE_MODELS=1")


def pytest_report_header(config) -> str:
    return ("callcue: CALLCUE_REQUIRE_MODELS=1, a missing model fails its tests" if REQUIRE_MODELS
            else "callcue: a missing model skips its tests (CALLCUE_REQUIRE_MODELS=1 fails them)")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item) -> None:
    """Before any fixture of the test is set up (a session fixture may build a model)."""
    names = [n for mark in item.iter_markers("needs_models") for n in mark.args]
    if names:
        from callcue.models.installed import installed_names
        lacking = sorted(set(names) - set(installed_names()))
        if lacking:
            missing(f"model(s) not installed: {', '.join(lacking)} (hardware/provision.sh builds them)")
    for mark in item.iter_markers("needs_packages"):
        lacking = [m for m in mark.args if importlib.util.find_spec(m) is None]
        if lacking:
            hint = f" ({mark.kwargs['hint']})" if "hint" in mark.kwargs else ""
            missing(f"not installed: {', '.join(lacking)}{hint}")


__all__ = ["collect", "Collector", "Received", "free_port", "wait_until", "clear_retained", "missing",
           "needs_demo_calls", "REQUIRE_MODELS"]
