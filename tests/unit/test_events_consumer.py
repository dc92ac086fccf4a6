"""The consumer dead-letters a record it cannot decode and carries on."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from events import consumer as consumer_module
from events import encode, new_event
from events.consumer import EventConsumer, Record
from events.match_events import PlayerJoined
from events.producer import EventProducer
from events.settings import KafkaSettings, TopicSettings

TOPIC = "match-events"


class FakeMessage:
    """A consumed record as confluent_kafka hands it out."""

    def __init__(self, value: bytes, offset: int) -> None:
        self._value, self._offset = value, offset

    def error(self) -> None:
        return None

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes:
        return b"match-1"

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


class FakeConsumer:
    """Hands out the queued messages once, then polls empty like a quiet broker."""

    def __init__(self, messages: list[FakeMessage]) -> None:
        self._pending = list(messages)
        self._idle = threading.Event()
        self.stored: list[tuple[str, int, int]] = []

    def subscribe(
        self,
        topics: list[str],
        on_assign: Callable[..., None],
        on_revoke: Callable[..., None],
    ) -> None:
        assert topics == [TOPIC] and callable(on_assign) and callable(on_revoke)

    def poll(self, timeout: float) -> FakeMessage | None:
        if self._pending:
            return self._pending.pop(0)
        self._idle.wait(timeout)  # a broker holds an empty poll for its timeout
        return None

    def consume(self, count: int, _timeout: float) -> list[FakeMessage]:
        taken, self._pending = self._pending[:count], self._pending[count:]
        return taken

    def assignment(self) -> list[Any]:
        return []

    def store_offsets(self, offsets: list[Any]) -> None:
        self.stored += [(tp.topic, tp.partition, tp.offset) for tp in offsets]

    def close(self) -> None:
        self._idle.set()


class FakeDeadLetters:
    """Collects dead-lettered records instead of producing them."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, dict[str, str]]] = []

    async def append_raw(
        self,
        topic: TopicSettings,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, str | bytes | None]],
    ) -> None:
        shown = {name: cast(bytes, raw).decode() for name, raw in headers}
        self.records.append((value, shown))


def _valid_record() -> bytes:
    event = new_event(
        PlayerJoined(player_id="player-1"),
        match_id="match-1",
        producer="unit-test",
        occurred_at=datetime(2030, 1, 1, tzinfo=UTC),
    )
    return encode(event)


@dataclass
class Consumed:
    """What one run of the consumer produced."""

    batch: list[Record]
    dead_lettered: int
    dead_letters: FakeDeadLetters
    broker: FakeConsumer


async def _consume_first_batch(
    monkeypatch: pytest.MonkeyPatch, values: list[bytes]
) -> Consumed:
    broker = FakeConsumer(
        [FakeMessage(value, offset) for offset, value in enumerate(values)]
    )
    monkeypatch.setattr(consumer_module, "Consumer", lambda _config: broker)
    dead_letters = FakeDeadLetters()
    consumer = EventConsumer(
        KafkaSettings(),
        "127.0.0.1:1",
        f"group-{uuid.uuid4().hex[:8]}",
        [TopicSettings(name=TOPIC)],
        cast(EventProducer, dead_letters),
        poll_timeout_s=0.01,
    )

    await consumer.start()
    try:
        batches = consumer.batches()
        batch = await asyncio.wait_for(anext(batches), timeout=5)
    finally:
        await consumer.close()
    return Consumed(batch, consumer.dead_lettered, dead_letters, broker)


@pytest.mark.parametrize(
    "hostile",
    [
        pytest.param(b"[" * 5000 + b"]" * 5000, id="array-5000-deep"),
        pytest.param(b'{"a":' * 5000 + b"1" + b"}" * 5000, id="object-5000-deep"),
        pytest.param(b"\xff{not json", id="not-json"),
    ],
)
async def test_events_consumer_dead_letters_undecodable_record_and_carries_on(
    monkeypatch: pytest.MonkeyPatch, hostile: bytes
) -> None:
    valid = _valid_record()

    consumed = await _consume_first_batch(monkeypatch, [hostile, valid])

    assert [record.offset for record in consumed.batch] == [1]
    assert consumed.batch[0].envelope.payload == PlayerJoined(player_id="player-1")
    assert consumed.dead_lettered == 1
    [(value, headers)] = consumed.dead_letters.records
    assert value == hostile
    assert headers["dlq.reason"].startswith("cannot decode event: field '<record>'")
    assert "the record is not valid JSON" in headers["dlq.reason"]
    assert headers["dlq.offset"] == "0"
    # The dead-lettered record is committed past, so it never comes back.
    assert consumed.broker.stored == [(TOPIC, 0, 1)]
