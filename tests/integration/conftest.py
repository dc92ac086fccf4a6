"""Fixtures for tests on the real broker and a real local Ray."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from configs import load_settings
from events.broker import EmbeddedBroker, free_port
from events.settings import KafkaSettings, Topics, TopicSettings
from events.topics import ensure_topics

T = TypeVar("T")

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """One embedded broker for the whole session; tests use fresh topics."""
    with EmbeddedBroker() as running:
        yield running


PERSONAS = load_settings().persona_names()


def fresh_topics(prefix: str = "t") -> Topics:
    """Topic names no other test uses."""
    tag = f"{prefix}-{uuid.uuid4().hex[:8]}"
    return Topics(
        match_events=TopicSettings(name=f"{tag}-match-events", partitions=4),
        robot_commands=TopicSettings(name=f"{tag}-robot-commands", partitions=4),
        robot_events=TopicSettings(name=f"{tag}-robot-events", partitions=4),
        pool_events=TopicSettings(name=f"{tag}-pool-events", partitions=2),
        dead_letters=TopicSettings(name=f"{tag}-dead-letters", partitions=1),
    )


@pytest.fixture
def kafka(broker: EmbeddedBroker) -> KafkaSettings:
    """Settings pointing at the session broker, with this test's own topics."""
    settings = KafkaSettings(
        bootstrap_servers=broker.bootstrap,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        topics=fresh_topics(),
    )
    ensure_topics(settings, broker.bootstrap, PERSONAS)
    return settings


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]],
    timeout_s: float,
    what: str,
    interval_s: float = 0.05,
) -> None:
    """Poll a condition until it holds; fail with ``what`` after the timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(interval_s)


METRICS_PORT = free_port()


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """A real local Ray, small enough for a 2-core machine."""
    import ray

    from bench.gateway import haproxy_env

    # The app runs behind Serve's HAProxy mode, as `make run` starts it; its
    # files go to a folder of this session's (short: HAProxy refuses an
    # admin socket path over 97 bytes, and Ray adds a 56-character node id).
    folder = Path(tempfile.mkdtemp(prefix="ro-"))
    os.environ.update(haproxy_env(folder))
    ray.init(
        num_cpus=4,
        include_dashboard=False,
        configure_logging=False,
        log_to_driver=False,
        _metrics_export_port=METRICS_PORT,
    )
    yield
    ray.shutdown()
    shutil.rmtree(folder, ignore_errors=True)


APP_CONFIG = {
    "game": {
        "timings": {
            "answer_timeout_s": 10.0,
            "vote_timeout_s": 10.0,
            "intermission_s": 0.3,
        }
    },
    "pool": {"think_time_scale": 0.02, "health_interval_s": 2.0},
    "serve": {"allowed_origins": ["https://play.robot-orchestra.example"]},
}


@dataclass(frozen=True)
class AppEnv:
    """The running app: its base URL and the Ray namespace of its actors."""

    url: str
    namespace: str


@pytest.fixture(scope="session")
def serve_url(app_env: AppEnv) -> str:
    """The base URL of the running app."""
    return app_env.url


@pytest.fixture(scope="session")
def app_env(
    ray_local: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AppEnv]:
    """The whole app on Serve: broker, engines, pool, projector, gateway."""
    import ray
    import yaml
    from ray import serve

    from events.broker import free_port
    from serve_app import build_app

    config = tmp_path_factory.mktemp("app") / "app.yaml"
    config.write_text(yaml.safe_dump(APP_CONFIG))
    namespace = f"app-{uuid.uuid4().hex[:8]}"
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(
        build_app(str(config), namespace), name="robot-orchestra", route_prefix="/"
    )
    yield AppEnv(f"http://127.0.0.1:{port}", namespace)
    serve.shutdown()
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if actor["namespace"] == namespace:
            ray.kill(ray.get_actor(actor["name"], namespace=namespace), no_restart=True)
