"""A stand-in robot responder: answers robot commands straight from Kafka."""

from __future__ import annotations

import asyncio
import uuid

from events import Envelope, new_event
from events.consumer import EventConsumer
from events.producer import EventProducer
from events.robot_events import (
    AnswerGenerated,
    GenerateAnswer,
    GenerateVote,
    VoteGenerated,
)
from events.settings import KafkaSettings
from tests.integration.conftest import PERSONAS


class StandInRobots:
    """Consumes ``robot-commands`` and replies at once on ``robot-events``.

    With ``silent=True`` it consumes and never replies, like a pool that
    is down. ``late_by_s`` holds every reply back to test late results.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        bootstrap: str,
        *,
        silent: bool = False,
        late_by_s: float = 0.0,
    ) -> None:
        self.kafka = kafka
        self.silent = silent
        self.late_by_s = late_by_s
        self.producer = EventProducer(kafka, bootstrap)
        self.consumer = EventConsumer(
            kafka,
            bootstrap,
            f"stand-in-robots-{uuid.uuid4().hex[:6]}",
            [kafka.topics.persona_commands(p) for p in PERSONAS],
            self.producer,
        )
        self.commands: list[Envelope] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> StandInRobots:
        """Join the group and wait until it holds partitions."""
        await self.consumer.start()
        self._task = asyncio.create_task(self._run())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not self.consumer.assignment():
            if loop.time() > deadline:
                raise AssertionError("stand-in robots got no partitions in 30 s")
            await asyncio.sleep(0.05)
        return self

    async def stop(self) -> None:
        await self.consumer.close()
        if self._task is not None:
            await self._task
        self.producer.close()

    async def _run(self) -> None:
        async for batch in self.consumer.batches():
            replies = []
            for record in batch:
                self.commands.append(record.envelope)
                reply = self.reply(record.envelope)
                if reply is not None and not self.silent:
                    replies.append((self.kafka.topics.robot_events, reply))
            if self.late_by_s:
                await asyncio.sleep(self.late_by_s)
            if replies:
                await self.producer.append_many(replies)
            for record in batch:
                self.consumer.done(record)

    @staticmethod
    def reply(command: Envelope) -> Envelope | None:
        payload = command.payload
        if isinstance(payload, GenerateAnswer):
            result: AnswerGenerated | VoteGenerated = AnswerGenerated(
                command_id=payload.command_id,
                robot_id=payload.robot_id,
                seat=payload.seat,
                round=payload.round,
                text=f"{payload.persona} thinks about {payload.prompt[:30]}",
                latency_ms=1.0,
                brain="stand-in",
            )
        elif isinstance(payload, GenerateVote):
            others = [a.seat for a in payload.answers if a.seat != payload.seat]
            result = VoteGenerated(
                command_id=payload.command_id,
                robot_id=payload.robot_id,
                seat=payload.seat,
                round=payload.round,
                target=others[0],
                latency_ms=1.0,
                brain="stand-in",
            )
        else:
            return None
        return new_event(
            result,
            match_id=command.match_id,
            producer="stand-in-robots",
            causation_id=command.event_id,
        )
