"""Read partitions from the beginning without joining a consumer group."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
)
from confluent_kafka import TopicPartition as KafkaTopicPartition

from events.client_config import common_config
from events.codec import decode
from events.envelope import Envelope
from events.errors import BrokerError, EventDecodeError
from events.keys import located, partition_for
from events.settings import KafkaSettings, TopicSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogEntry:
    """One record of a partition: its offset and envelope, or why it is bad."""

    partition: int
    offset: int
    envelope: Envelope | None
    error: EventDecodeError | None = None
    headers: dict[str, bytes] = field(default_factory=dict)


def read_partitions(
    settings: KafkaSettings,
    bootstrap: str,
    topic: TopicSettings,
    partitions: list[int],
    timeout_s: float = 30.0,
) -> Iterator[LogEntry]:
    """Every record of the given partitions up to their end at call time."""
    consumer = Consumer(
        {
            **common_config(settings, bootstrap),
            "group.id": "robot-orchestra-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": settings.fetch_wait_max_ms,
        }
    )
    try:
        consumer.assign(
            [KafkaTopicPartition(topic.name, p, OFFSET_BEGINNING) for p in partitions]
        )
        yield from _drain(consumer, set(partitions), timeout_s)
    except KafkaException as exc:
        raise BrokerError(f"cannot read {topic.name} from {bootstrap}: {exc}") from exc
    finally:
        consumer.close()


def _drain(
    consumer: Consumer, partitions: set[int], timeout_s: float
) -> Iterator[LogEntry]:
    # The end of a partition is found from the fetch responses' high
    # watermark (partition EOF), not from ListOffsets: the embedded broker
    # answers ListOffsets(latest) with a wrong offset (seen with Tansu 0.6.0).
    remaining = set(partitions)
    deadline = time.monotonic() + timeout_s
    while remaining:
        if time.monotonic() > deadline:
            raise BrokerError(f"timed out reading partitions {sorted(remaining)}")
        for message in consumer.consume(1000, 0.2):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    remaining.discard(message.partition() or 0)
                continue
            _, partition, offset = located(message)
            deadline = time.monotonic() + timeout_s
            headers = _headers(message)
            try:
                envelope = decode(message.value())
            except EventDecodeError as exc:
                yield LogEntry(partition, offset, None, exc, headers)
            else:
                yield LogEntry(partition, offset, envelope, None, headers)


def _headers(message: Message) -> dict[str, bytes]:
    raw = message.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return {
        str(key): value.encode() if isinstance(value, str) else value or b""
        for key, value in pairs
    }


def read_match(
    settings: KafkaSettings, bootstrap: str, match_id: str
) -> list[Envelope]:
    """A match's events in log order, read from its one partition."""
    topic = settings.topics.match_events
    partition = partition_for(match_id, topic.partitions)
    return [
        entry.envelope
        for entry in read_partitions(settings, bootstrap, topic, [partition])
        if entry.envelope is not None and entry.envelope.match_id == match_id
    ]
