"""Read partitions from the beginning without joining a consumer group."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException
from confluent_kafka import TopicPartition as KafkaTopicPartition

from events.client_config import common_config
from events.codec import decode
from events.envelope import Envelope
from events.errors import BrokerError, EventDecodeError
from events.keys import partition_for
from events.settings import KafkaSettings, TopicSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogEntry:
    """One record of a partition: its offset and envelope, or why it is bad."""

    partition: int
    offset: int
    envelope: Envelope | None
    error: EventDecodeError | None = None


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
        }
    )
    try:
        ends = {}
        for p in partitions:
            _, high = consumer.get_watermark_offsets(
                KafkaTopicPartition(topic.name, p), timeout=timeout_s
            )
            if high > 0:
                ends[p] = high
        if not ends:
            return
        consumer.assign(
            [KafkaTopicPartition(topic.name, p, OFFSET_BEGINNING) for p in ends]
        )
        yield from _drain(consumer, ends, timeout_s)
    except KafkaException as exc:
        raise BrokerError(f"cannot read {topic.name} from {bootstrap}: {exc}") from exc
    finally:
        consumer.close()


def _drain(
    consumer: Consumer, ends: dict[int, int], timeout_s: float
) -> Iterator[LogEntry]:
    remaining = dict(ends)
    idle_polls = 0
    while remaining:
        messages = consumer.consume(1000, 0.5)
        if not messages:
            idle_polls += 1
            if idle_polls * 0.5 > timeout_s:
                raise BrokerError(f"timed out reading partitions {sorted(remaining)}")
            continue
        idle_polls = 0
        for message in messages:
            if message.error() is not None:
                continue
            partition, offset = message.partition(), message.offset()
            if partition not in remaining or offset >= remaining[partition]:
                continue
            if offset == remaining[partition] - 1:
                del remaining[partition]
            try:
                yield LogEntry(partition, offset, decode(message.value()))
            except EventDecodeError as exc:
                yield LogEntry(partition, offset, None, exc)


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
