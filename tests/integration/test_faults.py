"""Faults injected while many matches play: nothing lost, nothing repeated.

Each test runs the load test's simulated humans against the whole app and
injects one fault while the matches are in flight. Every match must finish,
and the events each player saw must equal the match's events in Kafka. The
longest gap between two frames any player saw is reported as the time to
recover. Figures go to ``tests/artifacts/reliability.json``; the soak
variants (``-m soak``) run the same faults over more matches.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import ray

from actors.broker_keeper import BROKER_ACTOR_NAME
from actors.engines import engine_name
from actors.orchestrator import orchestrator_name
from bench.loadtest import Figures, run
from configs import load_settings
from events.producer import EventProducer
from events.reader import read_partitions
from tests.integration.conftest import AppEnv
from tests.integration.figures import record_figures

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

Injector = Callable[[AppEnv], Awaitable[str]]


def actor(env: AppEnv, name: str) -> Any:
    return ray.get_actor(name, namespace=env.namespace)


async def kill_workers(env: AppEnv) -> str:
    orchestrator = actor(env, orchestrator_name(0))
    mid_command = 0
    for _ in range(3):
        await asyncio.sleep(2.0)
        # Offline generation takes milliseconds: look for a worker caught
        # with a chunk in flight for a while, then take any worker.
        busy: list[Any] = []
        give_up = time.monotonic() + 2.0
        while not busy and time.monotonic() < give_up:
            workers = await orchestrator.workers.remote(busy_only=True)
            busy = [h for hs in workers.values() for h in hs]
        if busy:
            mid_command += 1
        else:
            workers = await orchestrator.workers.remote()
            busy = [h for hs in workers.values() for h in hs]
        ray.kill(random.choice(busy), no_restart=True)
    return f"3 robot workers killed 2 s apart, {mid_command} of them mid-command"


async def kill_orchestrator(env: AppEnv) -> str:
    for delay in (2.0, 8.0):
        await asyncio.sleep(delay)
        ray.kill(actor(env, orchestrator_name(0)), no_restart=False)
    return "orchestrator killed twice"


async def kill_engines(env: AppEnv) -> str:
    for index, delay in ((0, 2.0), (1, 5.0)):
        await asyncio.sleep(delay)
        ray.kill(actor(env, engine_name(index)), no_restart=False)
    return "engine 0 then engine 1 killed mid-round"


async def kill_replica(env: AppEnv) -> str:
    await asyncio.sleep(3.0)
    replicas = [
        a for a in ray.util.list_named_actors(all_namespaces=True)
        if a["name"].startswith("SERVE_REPLICA::robot-orchestra#Gateway")
    ]  # fmt: skip
    assert replicas, "no gateway replica found to kill"
    for replica in replicas:
        handle = ray.get_actor(replica["name"], namespace=replica["namespace"])
        ray.kill(handle, no_restart=False)
    return f"{len(replicas)} gateway replica(s) killed; clients resumed"


async def pause_broker(env: AppEnv) -> str:
    await asyncio.sleep(2.0)
    keeper = actor(env, BROKER_ACTOR_NAME)
    await keeper.pause.remote()
    await asyncio.sleep(5.0)
    await keeper.resume.remote()
    return "broker paused 5 s (SIGSTOP, then SIGCONT)"


async def poison_topics(env: AppEnv) -> str:
    settings = load_settings()
    topics = settings.kafka.topics
    broker = await broker_address(env)
    producer = EventProducer(settings.kafka, broker)
    targets = [
        topics.match_events,
        topics.robot_events,
        *(topics.persona_commands(p) for p in settings.persona_names()),
    ]
    await asyncio.sleep(2.0)
    for topic in targets:
        for key in (b"m-poison", b"m-other"):
            await producer.append_raw(topic, key, b'{"poison": true', [])
    producer.close()
    return f"poison records on {len(targets)} topics"


async def broker_address(env: AppEnv) -> str:
    keeper = actor(env, BROKER_ACTOR_NAME)
    address: str = await keeper.bootstrap.remote()
    return address


async def play_with_fault(env: AppEnv, fault: Injector, matches: int) -> dict[str, Any]:
    args = argparse.Namespace(
        url=env.url.replace("http://", "ws://"),
        matches=matches,
        concurrency=matches,
        template="classic",
        timeout_s=120.0,
    )
    started = time.monotonic()
    results, note = await asyncio.gather(run(args, Figures()), fault(env))
    results["fault"] = note
    results["wall_s"] = round(time.monotonic() - started, 1)
    return results


def record(name: str, results: dict[str, Any]) -> None:
    figures = {
        key: results[key]
        for key in (
            "fault", "matches", "matches_completed", "matches_failed",
            "lost_events", "duplicate_events", "phantom_events", "kafka_events",
            "reconnects", "longest_stall_s", "wall_s", "errors", "stuck",
        )
    }  # fmt: skip
    record_figures(f"fault-{name}", figures)


def assert_nothing_lost(results: dict[str, Any], matches: int, fault: Injector) -> None:
    assert results["matches_completed"] == matches, (
        results["errors"],
        results["stuck"],
    )
    assert results["matches_failed"] == 0
    assert results["lost_events"] == 0
    assert results["duplicate_events"] == 0
    assert results["phantom_events"] == 0
    assert results["kafka_events"] > 0
    if fault is kill_replica:
        assert results["reconnects"] >= 1, "no client lost its socket"


FAULTS = [
    pytest.param(kill_workers, id="worker-killed"),
    pytest.param(kill_orchestrator, id="orchestrator-killed-twice"),
    pytest.param(kill_engines, id="engine-killed"),
    pytest.param(kill_replica, id="replica-killed"),
    pytest.param(pause_broker, id="broker-paused"),
    pytest.param(poison_topics, id="poison-records"),
]


@pytest.mark.parametrize("fault", FAULTS)
async def test_fault_matches_finish_with_nothing_lost(
    app_env: AppEnv, fault: Injector, request: pytest.FixtureRequest
) -> None:
    matches = 10

    results = await play_with_fault(app_env, fault, matches)
    record(request.node.callspec.id, results)

    assert_nothing_lost(results, matches, fault)


async def test_fault_poison_records_reach_dead_letters(app_env: AppEnv) -> None:
    settings = load_settings()
    broker = await broker_address(app_env)

    await poison_topics(app_env)

    async def letters() -> list[Any]:
        topic = settings.kafka.topics.dead_letters
        entries = await asyncio.to_thread(
            lambda: list(read_partitions(settings.kafka, broker, topic, [0]))
        )
        return [e for e in entries if e.headers.get("dlq.reason")]

    found: list[Any] = []
    for _ in range(60):
        found = await letters()
        sources = {e.headers["dlq.topic"].decode() for e in found}
        if {"match-events", "robot-events"} <= sources and any(
            s.startswith("robot-commands.") for s in sources
        ):
            break
        await asyncio.sleep(0.5)
    sources = {e.headers["dlq.topic"].decode() for e in found}
    assert {"match-events", "robot-events"} <= sources
    assert any(s.startswith("robot-commands.") for s in sources)
    assert all(b"expected valid JSON" in e.headers["dlq.reason"] for e in found)


@pytest.mark.soak
@pytest.mark.parametrize("fault", FAULTS)
async def test_fault_soak_many_matches(
    app_env: AppEnv, fault: Injector, request: pytest.FixtureRequest
) -> None:
    matches = 40

    results = await play_with_fault(app_env, fault, matches)
    record(f"soak-{request.node.callspec.id}", results)

    assert_nothing_lost(results, matches, fault)
