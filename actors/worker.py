"""The robot worker actor: one robot instance generating for many matches."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import ray

from actors._logging import setup_logging
from actors.brains.base import Brain, Generation, MemoryBook
from actors.personas import Persona
from configs import PoolSettings
from events import decode, encode, new_event
from events.errors import EventDecodeError
from events.robot_events import (
    AnswerGenerated,
    GenerateAnswer,
    GenerateVote,
    GenerationFailed,
    VoteGenerated,
)
from game import PromptBank

logger = logging.getLogger(__name__)

RobotResult = AnswerGenerated | VoteGenerated | GenerationFailed
# What a worker hands back per command: the encoded result envelope, its
# type, the generation's latency and whether a fallback brain answered. The
# pool publishes the bytes as they are and keeps its figures from the rest,
# so a result is encoded once and never decoded on its way to Kafka.
WireResult = tuple[bytes, str, float, bool]


def make_brain(persona: Persona, prompts: PromptBank, seed: int) -> Brain:
    """The brain a persona's settings ask for; offline unless told otherwise."""
    from actors.brains.offline import OfflineBrain

    offline = OfflineBrain(prompts, seed=seed)
    if persona.brain.kind == "offline":
        return offline
    from actors.brains.bedrock import BedrockBrain
    from actors.brains.rate_limit import rate_limiter

    return BedrockBrain.from_settings(persona.brain, rate_limiter(), offline)


@ray.remote(max_restarts=0)
class RobotWorker:
    """Generates answers and votes for commands handed to it in batches.

    Many generations run at once (up to the actor's ``max_concurrency``).
    The worker keeps a short memory per match so a robot never repeats
    itself; it holds no other state, so a dead worker is simply replaced.
    """

    def __init__(
        self, worker_id: str, persona: Persona, pool: PoolSettings, prompts_file: str
    ) -> None:
        from pathlib import Path

        setup_logging()

        self.worker_id = worker_id
        self.persona = persona
        self.brain = make_brain(persona, PromptBank.load(Path(prompts_file)), pool.seed)
        self.memories = MemoryBook(pool.memory_matches)
        self.in_flight = 0
        self.generated = 0
        # The offline brain never waits: one command after the other is the
        # same work as a task per command, without the tasks.
        brain = persona.brain
        self._concurrent = brain.kind != "offline" or bool(brain.simulated_latency_s)
        self._producer = f"worker-{worker_id}"

    async def generate(self, commands: list[bytes]) -> list[WireResult | str]:
        """Results for a batch of commands, in the same order.

        Commands come as the records' bytes, as the pool consumed them, and
        results go back encoded: bytes pickle for next to nothing, pydantic
        models do not, and the pool neither decodes nor encodes anything.

        Args:
            commands: encoded ``generate_answer`` or ``generate_vote`` envelopes.

        Returns:
            Per command, the encoded result envelope (an answer, a vote, or a
            ``generation_failed`` with the reason) with its type, latency
            and fallback flag; for a record that is not a command this worker
            can read, why not (the pool dead-letters the record).
        """
        self.in_flight += len(commands)
        try:
            if self._concurrent:
                results = await asyncio.gather(*(self._one(c) for c in commands))
            else:
                results = [await self._one(c) for c in commands]
        finally:
            self.in_flight -= len(commands)
        return results

    async def ping(self) -> dict[str, Any]:
        """Health check: alive, with its load."""
        return {
            "worker_id": self.worker_id,
            "persona": self.persona.name,
            "in_flight": self.in_flight,
            "generated": self.generated,
            "memories": len(self.memories),
        }

    async def _one(self, data: bytes) -> WireResult | str:
        # The pool read only the record's head; this is its full decode.
        try:
            command = decode(data)
        except EventDecodeError as exc:
            return str(exc)
        payload = command.payload
        if not isinstance(payload, GenerateAnswer | GenerateVote):
            return f"a {payload.type} record is not a robot command"
        match_id = command.match_id
        assert match_id is not None  # commands are keyed by match
        memory = self.memories.get(match_id, payload.robot_id)
        started = time.perf_counter()
        try:
            if self.persona.brain.simulated_latency_s:
                await asyncio.sleep(self.persona.brain.simulated_latency_s)
            if isinstance(payload, GenerateAnswer):
                generation = await self.brain.answer(payload, self.persona, memory)
            else:
                generation = await self.brain.vote(payload, self.persona, memory)
            result = self._result(payload, generation, _ms_since(started))
        except Exception as exc:
            logger.warning(
                "generation failed worker_id=%s command_id=%s error=%r",
                self.worker_id,
                payload.command_id,
                exc,
            )
            result = GenerationFailed(
                command_id=payload.command_id,
                robot_id=payload.robot_id,
                seat=payload.seat,
                round=payload.round,
                reason=f"{type(exc).__name__}: {exc}"[:300],
                latency_ms=_ms_since(started),
                brain=self.brain.name,
            )
        self.generated += 1
        envelope = new_event(
            result,
            match_id=match_id,
            producer=self._producer,
            causation_id=command.event_id,
            correlation_id=command.correlation_id,
        )
        fallback = not isinstance(result, GenerationFailed) and result.fallback
        return encode(envelope), result.type, result.latency_ms, fallback

    def _result(
        self,
        command: GenerateAnswer | GenerateVote,
        generation: Generation,
        latency_ms: float,
    ) -> RobotResult:
        if isinstance(command, GenerateAnswer):
            if not generation.text:
                raise ValueError(f"{generation.brain} brain returned no answer")
            return AnswerGenerated(
                command_id=command.command_id,
                robot_id=command.robot_id,
                seat=command.seat,
                round=command.round,
                text=generation.text,
                latency_ms=latency_ms,
                brain=generation.brain,
                fallback=generation.fallback,
            )
        if not generation.target:
            raise ValueError(f"{generation.brain} brain returned no vote")
        return VoteGenerated(
            command_id=command.command_id,
            robot_id=command.robot_id,
            seat=command.seat,
            round=command.round,
            target=generation.target,
            latency_ms=latency_ms,
            brain=generation.brain,
            fallback=generation.fallback,
        )


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
