"""Consume a topic in the background during a test."""

from __future__ import annotations

import asyncio

from events.consumer import EventConsumer, Record


class Collector:
    """Consumes in the background, marking each record done."""

    def __init__(self, consumer: EventConsumer) -> None:
        self.consumer = consumer
        self.records: list[Record] = []
        self.task: asyncio.Task[None] | None = None

    async def start(self, wait_for_partitions: bool = False) -> Collector:
        await self.consumer.start()
        self.task = asyncio.create_task(self._run())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while wait_for_partitions and not self.consumer.assignment():
            if loop.time() > deadline:
                raise AssertionError("collector got no partitions in 30 s")
            await asyncio.sleep(0.05)
        return self

    async def _run(self) -> None:
        async for batch in self.consumer.batches():
            for record in batch:
                self.records.append(record)
                self.consumer.done(record)

    async def stop(self) -> None:
        await self.consumer.close()
        if self.task is not None:
            await self.task
