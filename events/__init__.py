"""Event schemas and the Kafka backbone of robot-orchestra."""

from events.codec import decode, encode
from events.envelope import SCHEMA_VERSION, Envelope, Payload, new_event
from events.errors import (
    BrokerError,
    ConfigError,
    DeliveryError,
    EventDecodeError,
    EventsError,
)

__all__ = [
    "SCHEMA_VERSION",
    "BrokerError",
    "ConfigError",
    "DeliveryError",
    "Envelope",
    "EventDecodeError",
    "EventsError",
    "Payload",
    "decode",
    "encode",
    "new_event",
]
