"""Errors raised by the events package."""

from __future__ import annotations

from typing import Any


class EventsError(Exception):
    """Base error of the events package."""


class EventDecodeError(EventsError):
    """A record could not be decoded into an event envelope.

    Carries the dotted path of the offending field, the value seen there and
    what was expected, so a dead-letter reason is readable on its own.
    """

    def __init__(self, field: str, value: Any, expected: str) -> None:
        self.field = field
        self.value = value
        self.expected = expected
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(
            f"cannot decode event: field {field!r} has value {shown}; "
            f"expected {expected}"
        )

    def __reduce__(self) -> tuple[type[EventDecodeError], tuple[str, Any, str]]:
        # Pickled by Ray between actors; the default would call __init__
        # with the message alone.
        return (type(self), (self.field, self.value, self.expected))


class BrokerError(EventsError):
    """The Kafka broker refused or failed an operation."""


class DeliveryError(BrokerError):
    """A record was not confirmed by the broker."""

    def __init__(self, topic: str, key: str | None, reason: str) -> None:
        self.topic = topic
        self.key = key
        self.reason = reason
        super().__init__(
            f"record for topic {topic!r} key {key!r} was not delivered: {reason}"
        )

    def __reduce__(self) -> tuple[type[DeliveryError], tuple[str, str | None, str]]:
        return (type(self), (self.topic, self.key, self.reason))


class ConfigError(EventsError):
    """Configuration is missing or invalid."""
