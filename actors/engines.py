"""Which engine owns a match, and handles to the engine actors."""

from __future__ import annotations

import zlib
from typing import Any

from configs import AppSettings
from events.keys import partition_for

NAMESPACE = "robot-orchestra"


def engine_name(index: int) -> str:
    """The Ray actor name of engine ``index``."""
    return f"robot-orchestra-engine-{index}"


def engine_index(match_id: str, settings: AppSettings) -> int:
    """The engine that owns a match: its partition modulo the engine count."""
    partitions = settings.kafka.topics.match_events.partitions
    return partition_for(match_id, partitions) % settings.engine.engines


def invite_engine(code: str, engines: int) -> int:
    """The engine that holds an invite code; codes are drawn to match it."""
    return zlib.crc32(code.upper().encode()) % engines


def start_engines(
    settings: AppSettings, bootstrap: str, namespace: str = NAMESPACE
) -> list[Any]:
    """Get or create every engine actor (detached, restarted on failure)."""
    from actors.engine import MatchEngine

    return [
        MatchEngine.options(  # type: ignore[attr-defined]
            name=engine_name(i),
            namespace=namespace,
            lifetime="detached",
            get_if_exists=True,
        ).remote(i, settings, bootstrap)
        for i in range(settings.engine.engines)
    ]
