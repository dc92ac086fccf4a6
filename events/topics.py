"""Create the configured topics when they are missing."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    NewTopic,
)

from events.client_config import common_config
from events.errors import BrokerError, ConfigError
from events.settings import KafkaSettings

logger = logging.getLogger(__name__)


def ensure_topics(
    settings: KafkaSettings,
    bootstrap: str,
    personas: Sequence[str] = (),
    timeout_s: float = 15.0,
) -> dict[str, int]:
    """Create missing topics and check the partition counts of existing ones.

    ``personas`` adds each persona's command topic.

    Returns:
        Each topic name with its partition count.

    Raises:
        BrokerError: the broker could not be reached or refused a topic.
        ConfigError: an existing topic's partition count differs from config
            (match routing hashes over the configured count).
    """
    admin = AdminClient(common_config(settings, bootstrap))
    try:
        existing = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        raise BrokerError(f"cannot list topics on {bootstrap}: {exc}") from exc

    wanted = settings.topics.all()
    wanted += [settings.topics.persona_commands(p) for p in personas]
    missing = [
        NewTopic(t.name, t.partitions, settings.replication_factor)
        for t in wanted
        if t.name not in existing
    ]
    if missing:
        futures = admin.create_topics(missing, request_timeout=timeout_s)
        for name, future in futures.items():
            try:
                future.result(timeout=timeout_s)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise BrokerError(f"cannot create topic {name!r}: {exc}") from exc
            logger.info("topic created topic=%s", name)
        existing = admin.list_topics(timeout=timeout_s).topics

    counts = {t.name: len(existing[t.name].partitions) for t in wanted}
    for topic in wanted:
        if counts[topic.name] != topic.partitions:
            raise ConfigError(
                f"topic {topic.name!r} has {counts[topic.name]} partitions but the "
                f"config says {topic.partitions}; set the config to match or "
                "recreate the topic"
            )
    return counts
