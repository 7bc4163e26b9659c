"""MQTT bus: the box's broker connection, persistent outbox, embedded broker, inbound commands
(and their roles), broker users and ACLs (acl.py), TLS set-up and failure reasons (tls.py)."""
from .broker import BrokerError, EmbeddedBroker, port_is_open
from .client import BrokerAddress, Bus
from .commands import (AckAlert, CallEnd, CallStart, Command, CommandError, Flag, IvrContext, RoleError,
                       parse_command)
from .outbox import Outbox, OutboxError, OutboxRow

__all__ = [
    "Bus", "BrokerAddress", "EmbeddedBroker", "BrokerError", "port_is_open", "Outbox", "OutboxError", "OutboxRow",
    "Command", "CommandError", "RoleError", "parse_command", "CallStart", "CallEnd", "IvrContext", "AckAlert", "Flag",
]
