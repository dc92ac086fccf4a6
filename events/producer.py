"""An idempotent producer whose appends complete on broker confirmation."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from events.client_config import producer_config
from events.codec import encode
from events.envelope import Envelope
from events.errors import DeliveryError
from events.keys import located, partition_for
from events.settings import KafkaSettings, TopicSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Appended:
    """Where the broker stored a record."""

    topic: str
    partition: int
    offset: int


class EventProducer:
    """Writes envelopes keyed by match id, one confirmation per record.

    A background thread serves librdkafka's delivery callbacks, so an
    awaited ``append`` returns within a few milliseconds of the broker's
    acknowledgement instead of waiting for a batch timer.
    """

    def __init__(self, settings: KafkaSettings, bootstrap: str) -> None:
        self._producer = Producer(producer_config(settings, bootstrap))
        self._closed = threading.Event()
        self._poller = threading.Thread(
            target=self._serve_callbacks, name="producer-callbacks", daemon=True
        )
        self._poller.start()

    def _serve_callbacks(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0.05)

    async def append(self, topic: TopicSettings, envelope: Envelope) -> Appended:
        """Write one envelope and wait until the broker confirmed it.

        Raises:
            DeliveryError: the broker did not confirm the record.
        """
        return (await self.append_many([(topic, envelope)]))[0]

    async def append_many(
        self, records: Sequence[tuple[TopicSettings, Envelope]]
    ) -> list[Appended]:
        """Write several envelopes in order and wait for every confirmation."""
        loop = asyncio.get_running_loop()
        futures = []
        for topic, envelope in records:
            future: asyncio.Future[Appended] = loop.create_future()
            self._produce(
                topic.name,
                envelope.key,
                encode(envelope),
                partition_for(envelope.key, topic.partitions),
                _resolver(loop, future),
            )
            futures.append(future)
        return list(await asyncio.gather(*futures))

    def append_nowait(
        self, topic: TopicSettings, envelope: Envelope, on_done: Any = None
    ) -> None:
        """Queue an envelope; ``flush`` or ``on_done(err, msg)`` confirms it."""
        self._produce(
            topic.name,
            envelope.key,
            encode(envelope),
            partition_for(envelope.key, topic.partitions),
            on_done,
        )

    async def append_raw(
        self,
        topic: TopicSettings,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, str | bytes | None]],
    ) -> Appended:
        """Write bytes as they are (dead letters keep the original record)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Appended] = loop.create_future()
        text_key = key.decode("utf-8", "replace") if key else ""
        self._produce(
            topic.name,
            key,
            value,
            partition_for(text_key, topic.partitions),
            _resolver(loop, future),
            headers,
        )
        return await future

    def _produce(
        self,
        topic: str,
        key: str | bytes | None,
        value: bytes | None,
        partition: int,
        on_delivery: Any,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> None:
        while True:
            try:
                self._producer.produce(
                    topic,
                    value=value,
                    key=key,
                    partition=partition,
                    headers=headers,
                    on_delivery=on_delivery,
                )
                return
            except BufferError:
                # The local queue is full (queue.buffering.max.messages):
                # let deliveries drain, then try again.
                logger.warning("producer queue full topic=%s; waiting", topic)
                self._producer.flush(0.1)

    def flush(self, timeout_s: float = 30.0) -> int:
        """Wait for every queued record; returns how many are still queued."""
        return int(self._producer.flush(timeout_s))

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued, then stop the callback thread."""
        left = self.flush(timeout_s)
        if left:
            logger.warning("producer closed with undelivered=%d", left)
        self._closed.set()
        self._poller.join(timeout=2)


def _resolver(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Appended]) -> Any:
    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            topic = msg.topic() or "?"
            error: BaseException = DeliveryError(topic, _key(msg), str(err))
            loop.call_soon_threadsafe(_set_exception, future, error)
        else:
            done = Appended(*located(msg))
            loop.call_soon_threadsafe(_set_result, future, done)

    return on_delivery


def _key(msg: Message) -> str | None:
    key = msg.key()
    return key.decode("utf-8", "replace") if isinstance(key, bytes) else key


def _set_result(future: asyncio.Future[Appended], value: Appended) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future[Appended], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
