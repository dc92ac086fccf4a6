"""Which partition a match lives on: the same answer everywhere."""

from __future__ import annotations

import zlib

from confluent_kafka import Message


def partition_for(key: str, partitions: int) -> int:
    """CRC32 of the key modulo the partition count.

    Producers write with this explicit partition and engines own partitions
    by it, so routing never depends on a client library's default hash.
    """
    return zlib.crc32(key.encode()) % partitions


def located(message: Message) -> tuple[str, int, int]:
    """Topic, partition and offset of a consumed or delivered message."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if topic is None or partition is None or offset is None:
        raise ValueError("message has no topic, partition or offset")
    return topic, partition, offset
