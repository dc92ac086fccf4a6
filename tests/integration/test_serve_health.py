"""``serve_app:app`` comes up on the embedded broker and answers /healthz."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pytest

from events.broker import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
def serve_port(ray_local: None) -> Iterator[int]:
    import ray
    from ray import serve

    from actors.broker_keeper import BROKER_ACTOR_NAME, NAMESPACE
    from serve_app import app

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(app, name="health", route_prefix="/")
    yield port
    serve.shutdown()
    keeper = ray.get_actor(BROKER_ACTOR_NAME, namespace=NAMESPACE)
    ray.get(keeper.stop.remote())
    ray.kill(keeper)


def test_healthz_names_the_broker_and_topics(serve_port: int) -> None:
    url = f"http://127.0.0.1:{serve_port}/healthz"

    with urllib.request.urlopen(url, timeout=30) as response:
        body = json.loads(response.read())

    assert response.status == 200
    assert body["status"] == "ok"
    assert body["embedded_broker"] is True
    host, _, port = body["broker"].partition(":")
    assert host == "127.0.0.1" and int(port) > 0
    assert body["topics"] == [
        "match-events",
        "robot-events",
        "pool-events",
        "dead-letters",
    ]
    assert "robot-commands.curious_student" in body["robot_command_topics"]
