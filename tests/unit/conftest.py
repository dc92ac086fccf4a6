"""Unit tests run without Ray or Kafka: starting either is a test failure."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any, NoReturn

import confluent_kafka
import confluent_kafka.admin
import pytest


def _import_ray() -> ModuleType | None:
    try:
        return importlib.import_module("ray")
    except ImportError:  # ray is a dependency, but the guard must not need it
        return None


RAY = _import_ray()

OUR_PACKAGES = ("events", "game", "actors", "serve_app", "configs", "bench", "cluster")

GUARD_MESSAGE = (
    "unit tests must not start Ray or Kafka; move this test to tests/integration"
)


def _refuse(*_args: Any, **_kwargs: Any) -> NoReturn:
    raise RuntimeError(GUARD_MESSAGE)


@pytest.fixture(autouse=True)
def _no_ray_or_kafka(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make every way into Ray or Kafka raise for the length of one test."""
    if RAY is not None:
        monkeypatch.setattr(RAY, "init", _refuse)
        monkeypatch.setattr(RAY._private.worker, "init", _refuse)
    clients = {
        confluent_kafka.Producer,
        confluent_kafka.Consumer,
        confluent_kafka.admin.AdminClient,
    }
    monkeypatch.setattr(confluent_kafka, "Producer", _refuse)
    monkeypatch.setattr(confluent_kafka, "Consumer", _refuse)
    monkeypatch.setattr(confluent_kafka.admin, "AdminClient", _refuse)
    # Our modules bound the client classes at import time; refuse those too.
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(OUR_PACKAGES):
            continue
        for attr, value in list(vars(module).items()):
            if any(value is client for client in clients):
                monkeypatch.setattr(module, attr, _refuse)
    yield
