"""Fixtures for tests on the real broker and a real local Ray."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest

from events.broker import EmbeddedBroker
from events.settings import KafkaSettings, Topics, TopicSettings
from events.topics import ensure_topics

T = TypeVar("T")

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """One embedded broker for the whole session; tests use fresh topics."""
    with EmbeddedBroker() as running:
        yield running


PERSONAS = ("curious_student", "skeptical_scientist", "creative_artist")


def fresh_topics(prefix: str = "t") -> Topics:
    """Topic names no other test uses."""
    tag = f"{prefix}-{uuid.uuid4().hex[:8]}"
    return Topics(
        match_events=TopicSettings(name=f"{tag}-match-events", partitions=4),
        robot_commands=TopicSettings(name=f"{tag}-robot-commands", partitions=4),
        robot_events=TopicSettings(name=f"{tag}-robot-events", partitions=4),
        pool_events=TopicSettings(name=f"{tag}-pool-events", partitions=2),
        dead_letters=TopicSettings(name=f"{tag}-dead-letters", partitions=1),
    )


@pytest.fixture
def kafka(broker: EmbeddedBroker) -> KafkaSettings:
    """Settings pointing at the session broker, with this test's own topics."""
    settings = KafkaSettings(
        bootstrap_servers=broker.bootstrap,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        topics=fresh_topics(),
    )
    ensure_topics(settings, broker.bootstrap, PERSONAS)
    return settings


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]],
    timeout_s: float,
    what: str,
    interval_s: float = 0.05,
) -> None:
    """Poll a condition until it holds; fail with ``what`` after the timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(interval_s)


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """A real local Ray, small enough for a 2-core machine."""
    import ray

    ray.init(
        num_cpus=4,
        include_dashboard=False,
        configure_logging=False,
        log_to_driver=False,
    )
    yield
    ray.shutdown()
