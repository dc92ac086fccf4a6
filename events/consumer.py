"""A group consumer that stores an offset only after its record is processed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from confluent_kafka import Consumer, KafkaException, Message
from confluent_kafka import TopicPartition as KafkaTopicPartition

from events.client_config import consumer_config
from events.codec import decode
from events.envelope import Envelope
from events.errors import BrokerError, EventDecodeError
from events.keys import located
from events.offsets import OffsetTracker
from events.producer import EventProducer
from events.settings import KafkaSettings, TopicSettings

logger = logging.getLogger(__name__)


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Delivered(Generic[T]):
    """A decoded record, the bytes it was decoded from, and where they came from.

    ``value`` lets a record be passed on or written again without encoding
    it a second time.
    """

    envelope: T
    topic: str
    partition: int
    offset: int
    value: bytes = b""
    key: bytes | None = None


Record = Delivered[Envelope]
"""A record decoded into a whole envelope."""


class GroupConsumer(Generic[T]):
    """Consumes records in batches; ``done(record)`` makes them committable.

    Each record is read by the ``decoder`` it was given (``EventConsumer``:
    the codec's whole-envelope decode).

    A poll task of its own keeps calling the broker whatever the pace of
    processing, so slow work never exceeds ``max.poll.interval.ms``; when
    too many records wait, the assigned partitions are paused instead.
    Records that cannot be decoded go to the dead-letter topic with the
    reason, and consumption carries on. Delivery is at least once: after a
    rebalance or crash a record may come again, so handlers dedupe by id.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        bootstrap: str,
        group_id: str,
        topics: Sequence[TopicSettings],
        dead_letters: EventProducer,
        *,
        decoder: Callable[[bytes | None], T],
        partitions: Sequence[int] | None = None,
        max_batch: int = 500,
        max_buffered: int = 5000,
        poll_timeout_s: float = 0.1,
    ) -> None:
        self.group_id = group_id
        self._decoder = decoder
        self._settings = settings
        self._topics = [t.name for t in topics]
        self._partitions = list(partitions) if partitions is not None else None
        self._dead_letters = dead_letters
        self._max_batch = max_batch
        self._max_buffered = max_buffered
        self._poll_timeout_s = poll_timeout_s
        self._consumer = Consumer(consumer_config(settings, bootstrap, group_id))
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"poll-{group_id}")
        self._tracker = OffsetTracker()
        self._queue: asyncio.Queue[list[Delivered[T]]] = asyncio.Queue()
        self._buffered = 0
        self._paused = False
        self._poll_task: asyncio.Task[None] | None = None
        self._closing = False
        # Set by the poll thread once the group handed this member its
        # first assignment (possibly empty), or at once for explicit
        # partitions.
        self._assigned = threading.Event()
        self.dead_lettered = 0

    async def start(self) -> None:
        """Join the group (or take the given partitions) and begin polling.

        With explicit partitions the member takes them by ``assign``: no
        rebalance moves them, and the group's committed offsets still apply.
        """
        if self._partitions is None:
            self._consumer.subscribe(
                self._topics, on_assign=self._on_assign, on_revoke=self._on_revoke
            )
        else:
            self._assigned.set()
            self._consumer.assign(
                [
                    KafkaTopicPartition(topic, partition)
                    for topic in self._topics
                    for partition in self._partitions
                ]
            )
        self._poll_task = asyncio.create_task(self._poll_loop())

    async def assigned(self, timeout_s: float) -> bool:
        """Wait until the group gave this member its partitions.

        A new group holds its first join for about half the session
        timeout; records sent meanwhile wait that long. Returns False if
        no assignment came within ``timeout_s``.
        """
        return await asyncio.to_thread(self._assigned.wait, timeout_s)

    async def batches(self) -> AsyncIterator[list[Delivered[T]]]:
        """Yield batches of decoded records as they arrive, until closed."""
        while not self._closing:
            batch = await self._queue.get()
            if not batch:
                return
            self._buffered -= len(batch)
            yield batch

    def done(self, record: Delivered[T]) -> None:
        """Mark a record processed; its offset is stored once all before it are."""
        position = self._tracker.done((record.topic, record.partition), record.offset)
        if position is not None:
            self._store(record.topic, record.partition, position)

    def done_many(self, records: Sequence[Delivered[T]]) -> None:
        """Mark records processed; one offset store per partition that moved."""
        moved: dict[tuple[str, int], int] = {}
        for record in records:
            where = (record.topic, record.partition)
            position = self._tracker.done(where, record.offset)
            if position is not None:
                moved[where] = position
        if moved:
            self._store_many(moved)

    def assignment(self) -> list[tuple[str, int]]:
        """The topic partitions this member holds now."""
        return [(tp.topic, tp.partition) for tp in self._consumer.assignment()]

    def in_flight(self) -> int:
        """Records handed out and not yet marked done."""
        return self._tracker.in_flight()

    def lag(self) -> int:
        """Records on the assigned partitions not yet consumed."""
        total = 0
        with contextlib.suppress(KafkaException):
            for tp in self._consumer.assignment():
                _, high = self._consumer.get_watermark_offsets(
                    tp, timeout=1, cached=True
                )
                position = self._consumer.position([tp])[0].offset
                if high >= 0 and position >= 0:
                    total += max(0, high - position)
        return total + self._buffered

    async def close(self) -> None:
        """Stop polling, commit stored offsets and leave the group."""
        self._closing = True
        if self._poll_task is not None:
            await self._poll_task
        self._queue.put_nowait([])
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._consumer.close)
        self._executor.shutdown(wait=True)

    async def _poll_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closing:
            try:
                messages = await loop.run_in_executor(self._executor, self._fetch)
            except KafkaException as exc:
                logger.warning("poll failed group=%s error=%s", self.group_id, exc)
                await asyncio.sleep(0.5)
                continue
            batch: list[Delivered[T]] = []
            poison: list[tuple[Message, str]] = []
            for message in messages:
                record = self._accept(message, poison)
                if record is not None:
                    batch.append(record)
            for message, reason in poison:
                await self._dead_letter(message, reason)
            if batch:
                self._buffered += len(batch)
                self._queue.put_nowait(batch)
            self._apply_backpressure()

    def _fetch(self) -> list[Message]:
        # consume(n, timeout) waits for the whole timeout unless n records
        # arrive, adding up to poll_timeout_s to every hop; poll() returns
        # with the first record, then consume(n, 0) takes what is queued.
        first = self._consumer.poll(self._poll_timeout_s)
        if first is None:
            return []
        return [first, *self._consumer.consume(self._max_batch - 1, 0)]

    def _accept(
        self, message: Message, poison: list[tuple[Message, str]]
    ) -> Delivered[T] | None:
        # Not a coroutine: a batch of hundreds of records is read without a
        # coroutine per record; what does not decode waits in ``poison``.
        error = message.error()
        if error is not None:
            if error.fatal():
                raise BrokerError(f"consumer group={self.group_id}: {error}")
            logger.debug("consumer event group=%s error=%s", self.group_id, error)
            return None
        topic, partition, offset = located(message)
        self._tracker.add((topic, partition), offset)
        # The decoders (the codec's decode, decode_command_head) raise nothing
        # but EventDecodeError, whatever the record holds (nesting too deep for
        # the parser included), so no record ends this task.
        value = message.value()
        try:
            decoded = self._decoder(value)
        except EventDecodeError as exc:
            poison.append((message, str(exc)))
            return None
        key = message.key()
        return Delivered(
            decoded,
            topic,
            partition,
            offset,
            value or b"",
            key.encode() if isinstance(key, str) else key,
        )

    async def dead_letter(self, record: Delivered[T], reason: str) -> None:
        """Set aside a record found bad after it was handed out, and mark it done."""
        await self._write_dead_letter(
            record.topic,
            record.partition,
            record.offset,
            record.key,
            record.value,
            reason,
        )

    async def _dead_letter(self, message: Message, reason: str) -> None:
        topic, partition, offset = located(message)
        key = message.key()
        await self._write_dead_letter(
            topic,
            partition,
            offset,
            key.encode() if isinstance(key, str) else key,
            message.value(),
            reason,
        )

    async def _write_dead_letter(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        reason: str,
    ) -> None:
        headers: list[tuple[str, str | bytes | None]] = [
            ("dlq.reason", reason.encode()),
            ("dlq.topic", topic.encode()),
            ("dlq.partition", str(partition).encode()),
            ("dlq.offset", str(offset).encode()),
            ("dlq.group", self.group_id.encode()),
        ]
        await self._dead_letters.append_raw(
            self._settings.topics.dead_letters, key, value, headers
        )
        self.dead_lettered += 1
        logger.warning(
            "record dead-lettered topic=%s partition=%d offset=%d reason=%s",
            topic,
            partition,
            offset,
            reason,
        )
        position = self._tracker.done((topic, partition), offset)
        if position is not None:
            self._store(topic, partition, position)

    def _apply_backpressure(self) -> None:
        try:
            if not self._paused and self._buffered > self._max_buffered:
                self._consumer.pause(self._consumer.assignment())
                self._paused = True
            elif self._paused and self._buffered < self._max_buffered // 2:
                self._consumer.resume(self._consumer.assignment())
                self._paused = False
        except KafkaException as exc:
            logger.warning("pause/resume failed group=%s error=%s", self.group_id, exc)

    def _store(self, topic: str, partition: int, position: int) -> None:
        self._store_many({(topic, partition): position})

    def _store_many(self, positions: dict[tuple[str, int], int]) -> None:
        offsets = [KafkaTopicPartition(t, p, o) for (t, p), o in positions.items()]
        try:
            self._consumer.store_offsets(offsets=offsets)
        except KafkaException as exc:
            # The partition moved to another member in a rebalance; that member
            # resumes from the last commit and may process the record again.
            logger.debug("offsets not stored %s error=%s", positions, exc)

    def _on_assign(
        self, _consumer: Consumer, partitions: list[KafkaTopicPartition]
    ) -> None:
        self._assigned.set()
        logger.info(
            "partitions assigned group=%s partitions=%s",
            self.group_id,
            [(tp.topic, tp.partition) for tp in partitions],
        )

    def _on_revoke(
        self, _consumer: Consumer, partitions: list[KafkaTopicPartition]
    ) -> None:
        for tp in partitions:
            self._tracker.forget((tp.topic, tp.partition))
        logger.info(
            "partitions revoked group=%s partitions=%s",
            self.group_id,
            [(tp.topic, tp.partition) for tp in partitions],
        )


class EventConsumer(GroupConsumer[Envelope]):
    """A group consumer whose records are decoded into whole envelopes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, decoder=decode, **kwargs)
