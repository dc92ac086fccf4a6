"""librdkafka configuration dicts built from ``KafkaSettings``."""

from __future__ import annotations

import logging
from typing import Any

from events.msk_auth import msk_token_callback
from events.settings import KafkaSettings

_LIBRDKAFKA_LOGGER = logging.getLogger("librdkafka")


def common_config(settings: KafkaSettings, bootstrap: str) -> dict[str, Any]:
    """Connection and authentication settings shared by every client."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "client.id": settings.client_id,
        "security.protocol": settings.security_protocol,
        # librdkafka's own log lines go to Python logging, not raw stderr.
        "logger": _LIBRDKAFKA_LOGGER,
    }
    if settings.sasl_mechanism is not None:
        config["sasl.mechanisms"] = settings.sasl_mechanism
    if settings.sasl_mechanism == "OAUTHBEARER":
        assert settings.aws_region is not None
        config["oauth_cb"] = msk_token_callback(settings.aws_region)
    elif settings.sasl_mechanism is not None:
        assert settings.sasl_password is not None
        config["sasl.username"] = settings.sasl_username
        config["sasl.password"] = settings.sasl_password.get_secret_value()
    return config


def producer_config(settings: KafkaSettings, bootstrap: str) -> dict[str, Any]:
    """An idempotent producer tuned for the interactive path."""
    return {
        **common_config(settings, bootstrap),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": settings.linger_ms,
        "request.timeout.ms": settings.request_timeout_ms,
        # Keyed records must land on the partition our own hash picks, see
        # events.keys; the producer is given explicit partitions.
        "partitioner": "consistent_random",
    }


def consumer_config(
    settings: KafkaSettings, bootstrap: str, group_id: str
) -> dict[str, Any]:
    """A consumer that commits only offsets stored after processing."""
    return {
        **common_config(settings, bootstrap),
        "group.id": group_id,
        "enable.auto.commit": True,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": settings.session_timeout_ms,
        "heartbeat.interval.ms": settings.heartbeat_interval_ms,
        "max.poll.interval.ms": settings.max_poll_interval_ms,
        "partition.assignment.strategy": "cooperative-sticky",
        "fetch.wait.max.ms": settings.fetch_wait_max_ms,
    }
