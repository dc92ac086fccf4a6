"""A robot worker reads records' bytes and hands back encoded results."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from actors.personas import PersonaBook
from actors.worker import RobotWorker
from configs import CONFIG_DIR, AppSettings, PoolSettings
from events import decode, encode, new_event
from events.match_events import PlayerJoined
from events.robot_events import (
    AnswerGenerated,
    GenerateAnswer,
    GenerateVote,
    SeatAnswer,
    VoteGenerated,
)

PERSONA = PersonaBook.load(CONFIG_DIR / "personas.yaml").personas[0]
DEADLINE = datetime.now(UTC) + timedelta(hours=1)


def worker() -> Any:
    """The actor's class itself, run in this process: no Ray needed."""
    offline = PERSONA.model_copy(
        update={"brain": PERSONA.brain.model_copy(update={"kind": "offline"})}
    )
    cls = RobotWorker.__ray_actor_class__  # type: ignore[attr-defined]
    return cls("w-test", offline, PoolSettings(), str(AppSettings().prompts_file))


def answer(match_id: str) -> bytes:
    command = GenerateAnswer(
        command_id=f"cmd-{uuid.uuid4().hex}",
        robot_id="robot-1",
        persona=PERSONA.name,
        seat="amber",
        round=1,
        prompt_id="p002",
        prompt="What would you take to a desert island?",
        max_chars=120,
        deadline=DEADLINE,
    )
    return encode(
        new_event(
            command, match_id=match_id, producer="engine", correlation_id=uuid.uuid4()
        )
    )


def vote(match_id: str) -> bytes:
    command = GenerateVote(
        command_id=f"cmd-{uuid.uuid4().hex}",
        robot_id="robot-1",
        persona=PERSONA.name,
        seat="amber",
        round=1,
        prompt="What would you take to a desert island?",
        answers=(
            SeatAnswer(seat="amber", text="a book and a knife"),
            SeatAnswer(seat="cobalt", text="lol a boat obviously"),
            SeatAnswer(seat="jade", text="Certainly a delightful hammock."),
        ),
        deadline=DEADLINE,
    )
    return encode(new_event(command, match_id=match_id, producer="engine"))


def test_worker_answers_each_command_in_order_with_its_causation() -> None:
    commands = [answer("m-1"), vote("m-1"), answer("m-2")]

    results = asyncio.run(worker().generate(commands))

    assert [r[1] for r in results] == [
        "answer_generated",
        "vote_generated",
        "answer_generated",
    ]
    for data, result in zip(commands, results, strict=True):
        assert not isinstance(result, str)
        encoded, kind, latency_ms, fallback = result
        command, envelope = decode(data), decode(encoded)
        assert envelope.type == kind
        assert envelope.match_id == command.match_id
        assert envelope.causation_id == command.event_id
        assert envelope.correlation_id == command.correlation_id
        assert isinstance(envelope.payload, AnswerGenerated | VoteGenerated)
        assert envelope.payload.command_id == command.payload.command_id  # type: ignore[union-attr]
        assert envelope.payload.latency_ms == latency_ms >= 0
        assert envelope.payload.fallback is fallback is False


def test_worker_says_why_it_cannot_take_a_record_and_answers_the_rest() -> None:
    not_a_command = encode(
        new_event(PlayerJoined(player_id="p-1"), match_id="m-3", producer="engine")
    )
    commands = [b'{"poison": true', not_a_command, answer("m-3")]

    results = asyncio.run(worker().generate(commands))

    assert isinstance(results[0], str) and "expected valid JSON" in results[0]
    assert results[1] == "a player_joined record is not a robot command"
    assert not isinstance(results[2], str) and results[2][1] == "answer_generated"
