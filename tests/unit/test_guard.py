"""The autouse guard of conftest.py keeps Ray and Kafka out of unit tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import confluent_kafka
import confluent_kafka.admin
import pytest


def _ray_init() -> Any:
    ray = pytest.importorskip("ray")
    return ray.init(num_cpus=1)


@pytest.mark.parametrize(
    "start",
    [
        pytest.param(_ray_init, id="ray.init"),
        pytest.param(
            lambda: confluent_kafka.Producer({"bootstrap.servers": "localhost:1"}),
            id="Producer",
        ),
        pytest.param(
            lambda: confluent_kafka.Consumer(
                {"bootstrap.servers": "localhost:1", "group.id": "g"}
            ),
            id="Consumer",
        ),
        pytest.param(
            lambda: confluent_kafka.admin.AdminClient(
                {"bootstrap.servers": "localhost:1"}
            ),
            id="AdminClient",
        ),
    ],
)
def test_guard_refuses_to_start(start: Callable[[], Any]) -> None:
    with pytest.raises(RuntimeError, match="move this test to tests/integration"):
        start()


def test_guard_refuses_our_producer() -> None:
    from events.producer import EventProducer
    from events.settings import KafkaSettings

    with pytest.raises(RuntimeError, match="must not start Ray or Kafka"):
        EventProducer(KafkaSettings(bootstrap_servers="127.0.0.1:1"), "127.0.0.1:1")
