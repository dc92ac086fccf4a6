"""``serve_app`` comes up on the embedded broker and answers /healthz."""

from __future__ import annotations

import json
import urllib.request

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_healthz_names_the_broker_and_topics(serve_url: str) -> None:
    with urllib.request.urlopen(f"{serve_url}/healthz", timeout=30) as response:
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
