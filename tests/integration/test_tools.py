"""``events.populate`` and ``events.replay`` against the real broker."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from events.broker import EmbeddedBroker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=120
    )


def test_populate_then_replay_shows_five_rounds(broker: EmbeddedBroker) -> None:
    populated = run_tool(
        "events.populate", "--matches", "6", "--bootstrap", broker.bootstrap,
        "--seed", "11",
    )  # fmt: skip
    assert populated.returncode == 0, populated.stderr
    summary = json.loads(populated.stdout.strip().splitlines()[-1])
    match_id = summary["match_ids"][-1]

    timeline = run_tool("events.replay", match_id, "--bootstrap", broker.bootstrap)
    final = run_tool(
        "events.replay", match_id, "--bootstrap", broker.bootstrap, "--json"
    )

    assert summary["matches"] == 6
    assert len(summary["match_ids"]) == 6
    assert timeline.returncode == 0, timeline.stderr
    for n in range(1, 6):
        assert f"round {n} started" in timeline.stdout
        assert f"round {n} scored" in timeline.stdout
    assert "ended (completed)" in timeline.stdout
    state = json.loads(final.stdout)
    assert state["phase"] == "ended"
    assert [r["round"] for r in state["rounds"]] == [1, 2, 3, 4, 5]
    kinds = sorted(seat["kind"] for seat in state["reveal"])
    assert kinds == ["human", "robot", "robot", "robot"]
    personas = {seat["persona"] for seat in state["reveal"] if seat["persona"]}
    assert len(personas) == 3
    assert summary["events"] >= 6 * state["events"] * 0.8


def test_replay_unknown_match_exits_2(broker: EmbeddedBroker) -> None:
    result = run_tool(
        "events.replay", "m-does-not-exist", "--bootstrap", broker.bootstrap
    )

    assert result.returncode == 2
    assert "unknown match 'm-does-not-exist'" in result.stderr


def test_populate_without_broker_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "events.populate", "--matches", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "RO_KAFKA__BOOTSTRAP_SERVERS": ""},
    )

    assert result.returncode == 2
    assert "no broker" in result.stderr
