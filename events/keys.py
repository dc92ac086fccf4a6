"""Which partition a match lives on: the same answer everywhere."""

from __future__ import annotations

import zlib


def partition_for(key: str, partitions: int) -> int:
    """CRC32 of the key modulo the partition count.

    Producers write with this explicit partition and engines own partitions
    by it, so routing never depends on a client library's default hash.
    """
    return zlib.crc32(key.encode()) % partitions
