"""The robot pool on a real local Ray and the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml

from actors.engines import start_engines
from actors.orchestrator import start_orchestrators
from actors.personas import PersonaBook
from configs import CONFIG_DIR, AppSettings, EngineSettings, PoolSettings
from events import Envelope, encode, new_event
from events.broker import EmbeddedBroker
from events.consumer import EventConsumer
from events.match_events import AnswerSubmitted, MatchEnded, VotingOpened
from events.producer import EventProducer
from events.reader import read_match, read_partitions
from events.robot_events import (
    AnswerGenerated,
    GenerateAnswer,
    PoolScaled,
    RobotStarted,
    RobotStopped,
)
from events.settings import KafkaSettings
from events.topics import ensure_topics
from tests.integration.collect import Collector
from tests.integration.conftest import wait_for
from tests.integration.players import ScriptedPlayer, fresh_player

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PERSONA = "curious_student"


def write_personas(tmp_path: Path, **changes: Any) -> Path:
    """A personas file like the shipped one, with pool and brain changes."""
    book = PersonaBook.load(CONFIG_DIR / "personas.yaml")
    personas = []
    for persona in book.personas:
        data = persona.model_dump()
        data["pool"].update(changes.get("pool", {}))
        data["brain"].update(changes.get("brain", {}))
        personas.append(data)
    path = tmp_path / "personas.yaml"
    path.write_text(yaml.safe_dump({"personas": personas}))
    return path


def pool_settings(kafka: KafkaSettings, personas: Path, **pool: Any) -> AppSettings:
    defaults: dict[str, Any] = {
        "scale_interval_s": 0.5,
        "downscale_delay_s": 2.0,
        "health_interval_s": 1.0,
        "think_time_scale": 0.0,
        "batch_size": 25,
    }
    return AppSettings(
        kafka=kafka,
        engine=EngineSettings(engines=2),
        pool=PoolSettings(**{**defaults, **pool}),
        personas_file=personas,
    )


@pytest.fixture
async def namespace(ray_local: None) -> AsyncIterator[str]:
    """A fresh Ray namespace; every detached actor in it is killed after."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    yield name
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if actor["namespace"] == name:
            handle = ray.get_actor(actor["name"], namespace=name)
            with_shutdown = getattr(handle, "shutdown", None)
            if with_shutdown is not None:
                # A killed or restarting actor may not answer; kill it anyway.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(with_shutdown.remote(), 10)
            ray.kill(handle, no_restart=True)


async def start(
    settings: AppSettings, broker: EmbeddedBroker, namespace: str
) -> list[Any]:
    names = PersonaBook.load(settings.personas_file).names
    ensure_topics(settings.kafka, broker.bootstrap, names)
    handles = start_orchestrators(settings, broker.bootstrap, namespace=namespace)
    await asyncio.gather(*(h.ready.remote() for h in handles))
    return handles


def commands(count: int, deadline_s: float = 120) -> list[Envelope]:
    deadline = datetime.now(UTC) + timedelta(seconds=deadline_s)
    return [
        new_event(
            GenerateAnswer(
                command_id=f"cmd-{uuid.uuid4().hex}",
                robot_id=f"robot-{n % 7}",
                persona=PERSONA,
                seat="amber",
                round=1,
                prompt_id="p002",
                prompt="Describe your perfect sandwich in one sentence.",
                max_chars=280,
                deadline=deadline,
            ),
            match_id=f"m-{uuid.uuid4().hex[:12]}",
            producer="test",
        )
        for n in range(count)
    ]


async def collect(
    kafka: KafkaSettings, broker: EmbeddedBroker, topic: str, dlq: EventProducer
) -> Collector:
    chosen = getattr(kafka.topics, topic)
    consumer = EventConsumer(
        kafka, broker.bootstrap, f"watch-{uuid.uuid4().hex[:6]}", [chosen], dlq
    )
    return await Collector(consumer).start(wait_for_partitions=True)


def payloads(collector: Collector, kind: type[Any]) -> list[Any]:
    return [
        r.envelope.payload
        for r in collector.records
        if isinstance(r.envelope.payload, kind)
    ]


def answered_once(collector: Collector, sent: list[Envelope]) -> Callable[[], bool]:
    wanted = {e.payload.command_id for e in sent}  # type: ignore[union-attr]

    def check() -> bool:
        got = {p.command_id for p in payloads(collector, AnswerGenerated)}
        return wanted <= got

    return check


async def test_orchestrator_is_ready_only_with_partitions_and_answering_workers(
    kafka: KafkaSettings, broker: EmbeddedBroker, namespace: str, tmp_path: Path
) -> None:
    # A new group holds its first join for seconds and a worker process
    # takes a second or two to start: ready must wait for both, or the
    # first robot commands of a fresh deployment wait for them instead.
    personas = write_personas(tmp_path, pool={"min_workers": 1})
    settings = pool_settings(kafka, personas)
    [orchestrator] = await start(settings, broker, namespace)

    status = await orchestrator.status.remote()

    for name, persona in status["personas"].items():
        assert persona["partitions"] >= 1, name
        assert persona["workers_answered"] == persona["workers"] == 1, name


async def test_pool_scales_up_on_a_burst_and_back_to_min(
    kafka: KafkaSettings, broker: EmbeddedBroker, namespace: str, tmp_path: Path
) -> None:
    personas = write_personas(
        tmp_path,
        pool={"min_workers": 1, "max_workers": 4, "target_in_flight": 50},
        brain={"simulated_latency_s": 1.5},
    )
    # The brain's latency keeps the burst in the workers long enough for the
    # scaler to see it; four workers are more than this machine's share of
    # CPUs, so no CPU cap.
    settings = pool_settings(kafka, personas, cap_workers_to_cpus=False)
    producer = EventProducer(kafka, broker.bootstrap)
    results = await collect(kafka, broker, "robot_events", producer)
    pool_events = await collect(kafka, broker, "pool_events", producer)
    (orchestrator,) = await start(settings, broker, namespace)
    sent = commands(500)

    topic = kafka.topics.persona_commands(PERSONA)
    await producer.append_many([(topic, e) for e in sent])
    await wait_for(answered_once(results, sent), 60, "500 answers")

    def scaled(direction: int) -> bool:
        return any(
            p.persona == PERSONA
            and (p.workers_after - p.workers_before) * direction > 0
            for p in payloads(pool_events, PoolScaled)
        )

    await wait_for(lambda: scaled(+1) and scaled(-1), 60, "scale up then down")
    status = await orchestrator.status.remote()
    await results.stop()
    await pool_events.stop()
    producer.close()

    ups = [p for p in payloads(pool_events, PoolScaled) if p.persona == PERSONA]
    assert max(p.workers_after for p in ups) == 4
    assert ups[-1].workers_after == 1
    assert "lag=" in ups[1].reason and "in_flight=" in ups[1].reason
    answers = Counter(p.command_id for p in payloads(results, AnswerGenerated))
    assert max(answers.values()) == 1
    persona_status = status["personas"][PERSONA]
    assert persona_status["workers"] == 1
    assert persona_status["answered"] >= 500
    # A burst goes to the workers in chunks, not a call per command.
    assert 1 <= persona_status["worker_calls"] < persona_status["answered"] / 2
    assert persona_status["latency_ms_p99"] >= persona_status["latency_ms_p50"] > 0
    assert any(isinstance(p, RobotStarted) for p in payloads(pool_events, RobotStarted))


async def test_pool_results_waiting_out_think_time_do_not_grow_the_pool(
    kafka: KafkaSettings, broker: EmbeddedBroker, namespace: str, tmp_path: Path
) -> None:
    # Generated at once, then held for seconds of think time: the workers
    # are idle, so more of them would not help.
    personas = write_personas(
        tmp_path, pool={"min_workers": 1, "max_workers": 4, "target_in_flight": 50}
    )
    # The burst itself is lag for a moment, longer on a slow machine; only
    # demand held for 3 s grows the pool, and the think time lasts 4.5 s
    # at least, so counting it would still grow the pool.
    settings = pool_settings(
        kafka,
        personas,
        think_time_scale=1.0,
        cap_workers_to_cpus=False,
        upscale_delay_s=3.0,
    )
    producer = EventProducer(kafka, broker.bootstrap)
    results = await collect(kafka, broker, "robot_events", producer)
    pool_events = await collect(kafka, broker, "pool_events", producer)
    (orchestrator,) = await start(settings, broker, namespace)
    sent = commands(300)

    await producer.append_many(
        [(kafka.topics.persona_commands(PERSONA), e) for e in sent]
    )
    peak = 0
    for _ in range(40):
        status = (await orchestrator.status.remote())["personas"][PERSONA]
        peak = max(peak, status["thinking"])
        await asyncio.sleep(0.1)
    await wait_for(answered_once(results, sent), 60, "300 answers")
    await results.stop()
    await pool_events.stop()
    producer.close()

    assert peak > 50, "the results never waited out their think time together"
    ups = [
        p
        for p in payloads(pool_events, PoolScaled)
        if p.persona == PERSONA and p.workers_after > p.workers_before
    ]
    assert [p.workers_after for p in ups] == [1]  # starting at min_workers only


async def test_pool_dead_letters_a_command_whose_body_does_not_decode(
    kafka: KafkaSettings, broker: EmbeddedBroker, namespace: str, tmp_path: Path
) -> None:
    # The orchestrator reads only a command's head; a record whose head
    # reads but whose body does not is found by the worker's full decode.
    settings = pool_settings(kafka, write_personas(tmp_path))
    producer = EventProducer(kafka, broker.bootstrap)
    results = await collect(kafka, broker, "robot_events", producer)
    (orchestrator,) = await start(settings, broker, namespace)
    status = await orchestrator.status.remote()
    # Four CPUs for four personas: the shipped max_workers of 6 is capped.
    assert status["personas"][PERSONA]["bounds"]["max_workers"] == 1
    good = commands(10)
    (bad,) = commands(1)
    poison = encode(bad).replace(b'"max_chars":280', b'"max_chars":0')
    topic = kafka.topics.persona_commands(PERSONA)

    await producer.append_many([(topic, e) for e in good[:5]])
    await producer.append_raw(topic, bad.key.encode(), poison, [])
    await producer.append_many([(topic, e) for e in good[5:]])
    await wait_for(answered_once(results, good), 60, "the 10 good answers")

    def letters() -> list[Any]:
        entries = read_partitions(
            kafka, broker.bootstrap, kafka.topics.dead_letters, [0]
        )
        return [e for e in entries if e.headers.get("dlq.topic") == topic.name.encode()]

    await wait_for(
        lambda: bool(letters()), 30, "the poison dead-lettered", interval_s=0.5
    )
    await asyncio.sleep(1.0)  # an answer to the poison would come right behind
    await results.stop()
    producer.close()

    (letter,) = letters()
    assert letter.error is not None and letter.error.field == "payload.max_chars"
    assert b"max_chars" in letter.headers["dlq.reason"]
    answered = {p.command_id for p in payloads(results, AnswerGenerated)}
    assert bad.payload.command_id not in answered  # type: ignore[union-attr]


async def test_pool_counts_the_answers_its_fallback_brain_gave(
    kafka: KafkaSettings, broker: EmbeddedBroker, namespace: str, tmp_path: Path
) -> None:
    # A Bedrock brain with no credentials here: every call fails at once and
    # the offline brain answers, flagged as a fallback all the way through.
    personas = write_personas(
        tmp_path,
        brain={
            "kind": "bedrock",
            "model_id": "test-model",
            "region": "us-east-1",
            "max_attempts": 1,
        },
    )
    settings = pool_settings(kafka, personas)
    producer = EventProducer(kafka, broker.bootstrap)
    results = await collect(kafka, broker, "robot_events", producer)
    (orchestrator,) = await start(settings, broker, namespace)
    sent = commands(20)

    await producer.append_many(
        [(kafka.topics.persona_commands(PERSONA), e) for e in sent]
    )
    await wait_for(answered_once(results, sent), 90, "20 answers")
    status = (await orchestrator.status.remote())["personas"][PERSONA]
    await results.stop()
    producer.close()

    answers = payloads(results, AnswerGenerated)
    assert len(answers) == 20
    assert all(a.fallback and a.brain == "bedrock" for a in answers)
    assert (status["answered"], status["fallbacks"], status["failed"]) == (20, 20, 0)


async def test_pool_worker_killed_mid_command_is_answered_once(
    kafka: KafkaSettings, broker: EmbeddedBroker, namespace: str, tmp_path: Path
) -> None:
    personas = write_personas(
        tmp_path,
        pool={"min_workers": 2, "max_workers": 2},
        brain={"simulated_latency_s": 3.0},
    )
    settings = pool_settings(kafka, personas)
    producer = EventProducer(kafka, broker.bootstrap)
    results = await collect(kafka, broker, "robot_events", producer)
    pool_events = await collect(kafka, broker, "pool_events", producer)
    (orchestrator,) = await start(settings, broker, namespace)
    sent = commands(20)

    await producer.append_many(
        [(kafka.topics.persona_commands(PERSONA), e) for e in sent]
    )
    workers = (await orchestrator.workers.remote())[PERSONA]

    async def busy_worker() -> Any:
        for handle in workers:
            if (await handle.ping.remote())["in_flight"]:
                return handle
        return None

    victim = None
    for _ in range(100):
        victim = await busy_worker()
        if victim is not None:
            break
        await asyncio.sleep(0.05)
    assert victim is not None, "no worker ever held a command"
    ray.kill(victim, no_restart=True)
    await wait_for(answered_once(results, sent), 60, "all 20 answers")
    await asyncio.sleep(1.0)  # a repeat would arrive right behind the answers
    await results.stop()
    await pool_events.stop()
    producer.close()

    answers = Counter(p.command_id for p in payloads(results, AnswerGenerated))
    assert set(answers) == {e.payload.command_id for e in sent}  # type: ignore[union-attr]
    assert max(answers.values()) == 1
    stopped = payloads(pool_events, RobotStopped)
    assert any("died" in p.reason or "health" in p.reason for p in stopped)


async def test_pool_two_orchestrators_share_the_load(
    kafka: KafkaSettings, broker: EmbeddedBroker, namespace: str, tmp_path: Path
) -> None:
    personas = write_personas(tmp_path, pool={"min_workers": 1, "max_workers": 2})
    settings = pool_settings(kafka, personas, orchestrators=2)
    producer = EventProducer(kafka, broker.bootstrap)
    results = await collect(kafka, broker, "robot_events", producer)
    orchestrators = await start(settings, broker, namespace)
    sent = commands(400)

    async def both_assigned() -> bool:
        statuses = await asyncio.gather(*(o.status.remote() for o in orchestrators))
        return all(s["personas"][PERSONA]["partitions"] for s in statuses)

    await wait_for(both_assigned, 45, "both orchestrators to hold partitions")
    await producer.append_many(
        [(kafka.topics.persona_commands(PERSONA), e) for e in sent]
    )
    await wait_for(answered_once(results, sent), 60, "400 answers")
    statuses = await asyncio.gather(*(o.status.remote() for o in orchestrators))
    await results.stop()
    producer.close()

    shares = [s["personas"][PERSONA]["answered"] for s in statuses]
    assert all(share > 0 for share in shares), shares
    assert sum(shares) >= 400
    answers = Counter(p.command_id for p in payloads(results, AnswerGenerated))
    assert max(answers.values()) == 1


async def test_pool_orchestrator_killed_twice_matches_finish(
    kafka: KafkaSettings, broker: EmbeddedBroker, namespace: str, tmp_path: Path
) -> None:
    personas = write_personas(tmp_path, pool={"min_workers": 1, "max_workers": 2})
    settings = pool_settings(kafka, personas)
    (orchestrator,) = await start(settings, broker, namespace)
    engines = start_engines(settings, broker.bootstrap, namespace=namespace)
    await asyncio.gather(*(e.ready.remote() for e in engines))
    timings = {"answer_timeout_s": 25.0, "vote_timeout_s": 25.0, "intermission_s": 0.5}
    players = [ScriptedPlayer(fresh_player(), engines, settings) for _ in range(3)]
    kills: list[int] = []

    async def kill_twice(player: ScriptedPlayer, event: Envelope) -> None:
        payload = event.payload
        if player is not players[0] or not isinstance(payload, VotingOpened):
            return
        if payload.round in (2, 4) and payload.round not in kills:
            kills.append(payload.round)
            ray.kill(orchestrator, no_restart=False)

    players[0].on_event = kill_twice
    for player in players:
        await player.create("classic", timings=timings)
    states = await asyncio.wait_for(asyncio.gather(*(p.play() for p in players)), 240)

    assert kills == [2, 4]
    for player, state in zip(players, states, strict=True):
        log = read_match(kafka, broker.bootstrap, player.match_id)
        assert [e.event_id for e in log] == [e.event_id for e in player.received]
        assert isinstance(log[-1].payload, MatchEnded)
        answers = Counter(
            (e.payload.round, e.payload.seat)
            for e in log
            if isinstance(e.payload, AnswerSubmitted)
        )
        assert max(answers.values()) == 1, "a command was answered twice"
        for round_state in state.rounds:
            assert len(round_state.answers) == 4, "a robot answer was lost"
            assert len(round_state.votes) == 4, "a robot vote was lost"
