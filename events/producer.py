"""An idempotent producer whose appends complete on broker confirmation."""

from __future__ import annotations

import asyncio
import contextlib
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

_Settled = tuple[
    asyncio.AbstractEventLoop, "asyncio.Future[Appended]", "Appended | BaseException"
]


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
        self._settled: list[_Settled] = []
        self._settled_lock = threading.Lock()
        self._closed = threading.Event()
        self._poller = threading.Thread(
            target=self._serve_callbacks, name="producer-callbacks", daemon=True
        )
        self._poller.start()

    def _serve_callbacks(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0.05)
            self._hand_over()

    def _hand_over(self) -> None:
        # One wake-up of each waiting event loop per poll, not one per record:
        # call_soon_threadsafe writes to the loop's self-pipe every time.
        with self._settled_lock:
            settled, self._settled = self._settled, []
        by_loop: dict[asyncio.AbstractEventLoop, list[_Settled]] = {}
        for item in settled:
            by_loop.setdefault(item[0], []).append(item)
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop was closed
                loop.call_soon_threadsafe(_settle_all, items)

    def _resolver(
        self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Appended]
    ) -> Any:
        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            outcome: Appended | BaseException
            if err is not None:
                outcome = DeliveryError(msg.topic() or "?", _key(msg), str(err))
            else:
                outcome = Appended(*located(msg))
            with self._settled_lock:
                self._settled.append((loop, future, outcome))

        return on_delivery

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
                self._resolver(loop, future),
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

    def append_encoded_nowait(
        self, topic: TopicSettings, key: str, value: bytes, on_done: Any = None
    ) -> None:
        """Queue a record the codec already encoded, keyed like its envelope.

        For results that arrive encoded: writing them as they are spares a
        decode and an encode per record.
        """
        self._produce(
            topic.name, key, value, partition_for(key, topic.partitions), on_done
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
            self._resolver(loop, future),
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
                self._hand_over()

    def flush(self, timeout_s: float = 30.0) -> int:
        """Wait for every queued record; returns how many are still queued."""
        left = int(self._producer.flush(timeout_s))
        self._hand_over()
        return left

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued, then stop the callback thread."""
        left = self.flush(timeout_s)
        if left:
            logger.warning("producer closed with undelivered=%d", left)
        self._closed.set()
        self._poller.join(timeout=2)


def _key(msg: Message) -> str | None:
    key = msg.key()
    return key.decode("utf-8", "replace") if isinstance(key, bytes) else key


def _settle_all(items: list[_Settled]) -> None:
    for _loop, future, outcome in items:
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
