"""Look-back requests to a box over MQTT 5 (contract: "Look back at a call").

A client (the supervisor TUI) publishes a request on ``box/{box}/query`` with the MQTT 5
properties *response topic* and *correlation data*; the box answers on that response
topic with the correlation data echoed. The broker's ACL lets only supervisors publish
requests; the box answers only on ``box/{box}/reply/<token>`` (one level, the asker's
own token), so a request can never make the box publish anywhere else.

The box runs this on a second, MQTT 5 session of its own broker user (the main one,
bus/client.py, is MQTT 3.1.1 with a persistent outbox for the live outputs): answers are
not queued while the broker is away (the asker times out and asks again), and a big
timeline never waits behind, or holds up, alerts.

    {"op": "calls", "line": "7", "agent": null, "since": "2026-03-10T08:00:00+00:00", "limit": 200}
    {"op": "call", "call_id": "c-123"}
"""
from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass
from typing import Annotated, Callable, Literal, Union

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import Field, TypeAdapter, ValidationError

from .. import contract
from ..schema import Strict
from . import tls
from .client import BrokerAddress, set_nodelay

log = logging.getLogger(__name__)

MAX_REQUEST = 4096
MAX_LIMIT = 1000
TOKEN_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class QueryError(ValueError):
    """A request the box does not answer (or answers with an error); the message says why."""


class CallsQuery(Strict):
    """The calls a box stored, newest first."""

    op: Literal["calls"] = Field(description="request name")
    line: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(None, description="only this line")
    agent: Annotated[str, Field(min_length=1, max_length=128)] | None = Field(None, description="only this agent")
    since: Annotated[str, Field(max_length=40)] | None = Field(None, description="started at or after (ISO time)")
    limit: int = Field(200, ge=1, le=MAX_LIMIT, description="at most this many calls")


class CallQuery(Strict):
    """One call's timeline."""

    op: Literal["call"] = Field(description="request name")
    call_id: Annotated[str, Field(min_length=1, max_length=128)] = Field(description="the call's id")


Query = Annotated[Union[CallsQuery, CallQuery], Field(discriminator="op")]
_ADAPTER: TypeAdapter[Query] = TypeAdapter(Query)


def parse_query(payload: bytes) -> CallsQuery | CallQuery:
    if len(payload) > MAX_REQUEST:
        raise QueryError(f"request is {len(payload)} bytes, more than {MAX_REQUEST}")
    try:
        obj = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise QueryError(f"request is not JSON: {exc}") from None
    if not isinstance(obj, dict) or obj.get("op") not in contract.QUERY_OPS:
        raise QueryError(f"request needs op, one of {', '.join(contract.QUERY_OPS)}")
    try:
        return _ADAPTER.validate_python(obj)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'request'}: {e['msg']}" for e in exc.errors())
        raise QueryError(problems) from None


def reply_allowed(topic_root: str, box: str, response_topic: str | None) -> bool:
    """Whether the box answers on this response topic: its own reply prefix plus one token."""
    if not response_topic:
        return False
    prefix = f"{topic_root}/{contract.reply_prefix(box)}"
    return response_topic.startswith(prefix) and bool(TOKEN_RE.match(response_topic[len(prefix):]))


@dataclass(frozen=True)
class Request:
    payload: bytes
    response_topic: str
    correlation: bytes | None


class QueryBus:
    """The box's MQTT 5 session for look-back requests. `on_request(Request)` runs on
    paho's thread and must only queue the work."""

    RECONNECT_MIN_S = 1
    RECONNECT_MAX_S = 30

    def __init__(self, topic_root: str, box: str, broker: BrokerAddress, client_id: str,
                 on_request: Callable[[Request], None]):
        self.root = topic_root.rstrip("/")
        self.box = box
        self.broker = BrokerAddress.of(broker)
        self.on_request = on_request
        self.topic = f"{self.root}/{contract.query_topic(box)}"
        self.refused = 0          # requests without an allowed response topic (not answered)
        self.answered = 0
        self.connected = False
        self._lock = threading.Lock()
        c = tls.DiagClient(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if self.broker.username is not None:
            c.username_pw_set(self.broker.username, self.broker.password)
        if self.broker.tls:
            tls.configure_tls(c, self.broker.ca_file, self.broker.certfile, self.broker.keyfile)
        c.reconnect_delay_set(self.RECONNECT_MIN_S, self.RECONNECT_MAX_S)
        c.max_queued_messages_set(200)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        self._client = c

    def start(self) -> None:
        self._client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive,
                                   clean_start=True)
        self._client.loop_start()

    def stop(self) -> None:
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()
        self.connected = False

    def reply(self, req: Request, body: dict) -> bool:
        """Answer a request (any thread). False when it could not be handed to paho."""
        props = Properties(PacketTypes.PUBLISH)
        if req.correlation is not None:
            props.CorrelationData = req.correlation
        props.ContentType = "application/json"
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        info = self._client.publish(req.response_topic, payload, qos=1, properties=props)
        ok = info.rc == mqtt.MQTT_ERR_SUCCESS
        if ok:
            with self._lock:
                self.answered += 1
        else:
            log.warning("query: answer to %s not sent: %s", req.response_topic, mqtt.error_string(info.rc))
        return ok

    def stats(self) -> dict:
        with self._lock:
            return {"connected": self.connected, "answered": self.answered, "refused": self.refused}

    # paho's thread
    def _on_connect(self, client, userdata, flags, reason, props) -> None:
        if reason.is_failure:
            log.error("query: %s", tls.refused(reason, host=self.broker.host, port=self.broker.port,
                                               username=self.broker.username))
            return
        set_nodelay(client)
        self.connected = True
        client.subscribe(self.topic, qos=1)

    def _on_disconnect(self, client, userdata, flags, reason, props) -> None:
        self.connected = False

    def _on_message(self, client, userdata, msg) -> None:
        props = getattr(msg, "properties", None)
        topic = getattr(props, "ResponseTopic", None) if props is not None else None
        corr = getattr(props, "CorrelationData", None) if props is not None else None
        if not reply_allowed(self.root, self.box, topic):
            with self._lock:
                self.refused += 1
            log.warning("query on %s refused: response topic %r is not %s<token>", msg.topic, topic,
                        f"{self.root}/{contract.reply_prefix(self.box)}")
            return
        try:
            self.on_request(Request(bytes(msg.payload), topic, bytes(corr) if corr is not None else None))
        except Exception:
            log.exception("query: handing the request over failed")
