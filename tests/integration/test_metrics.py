"""The pool, engine and gateway metrics reach Ray's Prometheus endpoint."""

from __future__ import annotations

import asyncio
import time
import urllib.request

import pytest

from tests.integration.conftest import METRICS_PORT
from tests.integration.ws_client import WsPlayer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

EXPECTED = (
    "ray_robot_orchestra_pool_workers",
    "ray_robot_orchestra_pool_lag",
    "ray_robot_orchestra_pool_in_flight",
    "ray_robot_orchestra_generation_latency_ms_bucket",
    "ray_robot_orchestra_active_matches",
    "ray_robot_orchestra_open_sockets",
)


def scrape() -> str:
    url = f"http://127.0.0.1:{METRICS_PORT}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


async def test_metrics_are_exported_in_prometheus_format(serve_url: str) -> None:
    player = await WsPlayer(serve_url).connect()
    await player.create("classic")
    await player.play_round(1)

    text = ""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        text = await asyncio.to_thread(scrape)
        if all(name in text for name in EXPECTED):
            break
        await asyncio.sleep(2)  # Ray's agent exports on an interval
    await player.close()

    missing = [name for name in EXPECTED if name not in text]
    assert not missing, missing
    assert 'persona="curious_student"' in text
