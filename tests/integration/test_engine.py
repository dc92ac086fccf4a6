"""The match engine on a real local Ray and the real broker."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
import ray

from actors.engines import invite_engine, start_engines
from configs import AppSettings, EngineSettings
from events import Envelope
from events.broker import EmbeddedBroker
from events.match_events import (
    AnswerSubmitted,
    LateResultRecorded,
    MatchEnded,
    VoteCast,
    VotingOpened,
)
from events.reader import read_match
from events.settings import KafkaSettings
from tests.integration.players import ScriptedPlayer, fresh_player, kill_engine
from tests.integration.robots import StandInRobots

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

FAST = {"answer_timeout_s": 8.0, "vote_timeout_s": 8.0, "intermission_s": 0.2}


@pytest.fixture
async def engines(
    ray_local: None, kafka: KafkaSettings, broker: EmbeddedBroker
) -> AsyncIterator[tuple[list[Any], AppSettings]]:
    settings = AppSettings(kafka=kafka, engine=EngineSettings(engines=2))
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    handles = start_engines(settings, broker.bootstrap, namespace=namespace)
    await asyncio.gather(*(h.ready.remote() for h in handles))
    yield handles, settings
    for handle in handles:
        ray.kill(handle, no_restart=True)


@pytest.fixture
async def robots(
    kafka: KafkaSettings, broker: EmbeddedBroker
) -> AsyncIterator[StandInRobots]:
    responder = await StandInRobots(kafka, broker.bootstrap).start()
    yield responder
    await responder.stop()


def assert_log_matches(
    player: ScriptedPlayer, kafka: KafkaSettings, broker: EmbeddedBroker
) -> list[Envelope]:
    """What the player received equals the match's log in Kafka, no repeats."""
    log = read_match(kafka, broker.bootstrap, player.match_id)
    received_ids = [e.event_id for e in player.received]
    assert len(set(received_ids)) == len(received_ids), "an event was repeated"
    assert received_ids == [e.event_id for e in log], "received differs from Kafka"
    answers = Counter(
        (e.payload.round, e.payload.seat)
        for e in log
        if isinstance(e.payload, AnswerSubmitted)
    )
    votes = Counter(
        (e.payload.round, e.payload.voter)
        for e in log
        if isinstance(e.payload, VoteCast)
    )
    assert max(answers.values()) == 1 and max(votes.values(), default=1) == 1
    return log


async def test_engine_plays_a_full_classic_match(
    engines: tuple[list[Any], AppSettings],
    robots: StandInRobots,
    kafka: KafkaSettings,
    broker: EmbeddedBroker,
) -> None:
    handles, settings = engines
    alice = ScriptedPlayer(fresh_player(), handles, settings)

    created = await alice.create("classic", timings=FAST)
    state = await asyncio.wait_for(alice.play(), 120)

    assert created.ok and created.data["invite_code"] is None
    log = assert_log_matches(alice, kafka, broker)
    ended = log[-1].payload
    assert isinstance(ended, MatchEnded) and ended.reason == "completed"
    assert len(state.rounds) == 5
    assert all(len(r.answers) == 4 for r in state.rounds), "robots answered"
    assert all(len(r.votes) == 4 for r in state.rounds), "everyone voted"
    assert sorted(s.kind for s in ended.reveal) == ["human", "robot", "robot", "robot"]
    assert len({s.persona for s in ended.reveal if s.persona}) == 3


async def test_engine_plays_a_full_duo_match(
    engines: tuple[list[Any], AppSettings],
    robots: StandInRobots,
    kafka: KafkaSettings,
    broker: EmbeddedBroker,
) -> None:
    handles, settings = engines
    alice = ScriptedPlayer(fresh_player(), handles, settings)
    bob = ScriptedPlayer(fresh_player(), handles, settings)

    created = await alice.create("duo", timings=FAST)
    code = created.data["invite_code"]
    joined = await bob.call(
        handles[invite_engine(code, settings.engine.engines)],
        "join_by_code",
        code.lower(),
        bob.player_id,
    )
    bob.adopt(joined.match_id)
    states = await asyncio.wait_for(asyncio.gather(alice.play(), bob.play()), 120)

    assert joined.ok and joined.match_id == created.match_id
    assert len(code) == 6
    for player in (alice, bob):
        assert_log_matches(player, kafka, broker)
    ended = states[0].ended
    assert ended is not None and ended.reason == "completed"
    assert sorted(s.kind for s in ended.reveal) == ["human", "human", "robot", "robot"]
    assert all(len(r.answers) == 4 for r in states[0].rounds)


async def test_engine_killed_mid_round_finishes_with_nothing_lost(
    engines: tuple[list[Any], AppSettings],
    robots: StandInRobots,
    kafka: KafkaSettings,
    broker: EmbeddedBroker,
) -> None:
    handles, settings = engines
    alice = ScriptedPlayer(fresh_player(), handles, settings)
    kills: list[int] = []

    async def kill_in_round_two(player: ScriptedPlayer, event: Envelope) -> None:
        payload = event.payload
        if isinstance(payload, AnswerSubmitted) and payload.round == 2 and not kills:
            kills.append(len(player.received))
            kill_engine(player.engine_for(player.match_id))

    alice.on_event = kill_in_round_two
    await alice.create("classic", timings=FAST)
    state = await asyncio.wait_for(alice.play(), 180)

    assert kills, "the engine was killed"
    assert alice.retries > 0, "the player saw the engine go away"
    log = assert_log_matches(alice, kafka, broker)
    assert isinstance(log[-1].payload, MatchEnded)
    assert len(state.rounds) == 5


async def restarted(player: ScriptedPlayer, engine: Any, started_at: str) -> None:
    """Wait until a new instance of the engine answers (``ray.kill`` is async)."""
    for _ in range(200):
        status = await player.call(engine, "status")
        if status["started_at"] != started_at:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the engine did not restart within 20 s")


async def test_engine_killed_after_a_match_ended_still_serves_its_tail(
    engines: tuple[list[Any], AppSettings],
    robots: StandInRobots,
    kafka: KafkaSettings,
    broker: EmbeddedBroker,
) -> None:
    # A player may not yet have read a match's last events when the engine
    # dies; the rebuilt engine must still hand them out.
    handles, settings = engines
    alice = ScriptedPlayer(fresh_player(), handles, settings)
    await alice.create("classic", timings=FAST)
    await asyncio.wait_for(alice.play(), 120)
    engine = alice.engine_for(alice.match_id)
    before = await engine.status.remote()

    kill_engine(engine)
    await restarted(alice, engine, before["started_at"])
    tail = await alice.call(engine, "events_since", alice.match_id, 50)

    assert [e.event_id for e in tail] == [e.event_id for e in alice.received[50:]]
    assert isinstance(tail[-1].payload, MatchEnded)


async def test_engine_ends_a_match_whose_robots_never_answer(
    engines: tuple[list[Any], AppSettings],
    kafka: KafkaSettings,
    broker: EmbeddedBroker,
) -> None:
    handles, settings = engines
    silent = await StandInRobots(kafka, broker.bootstrap, silent=True).start()
    alice = ScriptedPlayer(fresh_player(), handles, settings)
    quick = {"answer_timeout_s": 1.0, "vote_timeout_s": 1.0, "intermission_s": 0.0}

    await alice.create("classic", timings=quick)
    state = await asyncio.wait_for(alice.play(), 60)
    await silent.stop()

    log = assert_log_matches(alice, kafka, broker)
    assert state.ended is not None and state.ended.reason == "completed"
    robot_seats = set(state.robot_seats())
    for event in log:
        if isinstance(event.payload, VotingOpened):
            assert set(event.payload.missing) == robot_seats
    commands = {e.payload.type for e in silent.commands}
    assert commands == {"generate_answer"}


async def test_engine_records_late_robot_results(
    engines: tuple[list[Any], AppSettings],
    kafka: KafkaSettings,
    broker: EmbeddedBroker,
) -> None:
    handles, settings = engines
    slow = await StandInRobots(kafka, broker.bootstrap, late_by_s=1.5).start()
    alice = ScriptedPlayer(fresh_player(), handles, settings)
    quick = {"answer_timeout_s": 1.0, "vote_timeout_s": 1.0, "intermission_s": 1.0}

    await alice.create("classic", timings={**quick, "rounds": 2})
    await asyncio.wait_for(alice.play(), 60)
    await slow.stop()

    log = assert_log_matches(alice, kafka, broker)
    late = [e for e in log if isinstance(e.payload, LateResultRecorded)]
    robot_answers = [
        e
        for e in log
        if isinstance(e.payload, AnswerSubmitted) and e.producer and e.causation_id
    ]
    assert late, "late robot results were recorded"
    assert not robot_answers, "no late robot answer was folded in"
