"""Robot workers on robot nodes, and a robot node lost in the middle of matches.

Three Ray nodes on this machine: a head with the ``gateway`` resource and two
robot nodes with ``{"robot": 4}``; the pool asks for ``{"robot": 1}`` per
worker. ``multinode_driver`` runs the cluster in a process of its own (this
pytest process may already drive the session's local Ray) and reports what
it saw; the assertions are here.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.multinode_driver import ROBOT_NODES, stop_all

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]


def run_driver(run: Path) -> dict[str, Any]:
    # Every process of the cluster needs the same auth mode and token; a
    # token of its own keeps this cluster apart from any other on the host.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "RO_"))}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tests.integration.multinode_driver", str(run)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=540,
        )
    finally:
        stop_all(run)
    assert done.returncode == 0, done.stderr[-6000:]
    result: dict[str, Any] = json.loads((run / "result.json").read_text())
    return result


def test_multinode_robot_node_lost_mid_match(tmp_path: Path) -> None:
    result = run_driver(tmp_path)

    victim = result["victim"]
    survivor = next(n for n in ROBOT_NODES if n != victim)
    before, after = result["placement_before"], result["placement_after"]
    assert all(set(nodes) <= set(ROBOT_NODES) for nodes in before.values()), before
    assert victim in {n for nodes in before.values() for n in nodes}
    assert all(nodes and set(nodes) == {survivor} for nodes in after.values()), after
    assert set(result["phases_at_kill"]) <= {"answering", "voting", "intermission"}
    for match in [*result["matches"], result["fresh_match"]]:
        assert match["phase"] == "ended", match
        assert match["seqs"] == list(range(1, len(match["seqs"]) + 1)), match
        assert match["ws_types"] == match["kafka_types"], match
    # A match begun after the loss gets every robot's answer in every round.
    assert result["fresh_match"]["answers_per_round"] == [4] * 5
    assert victim not in result["nodes_alive"]
    lost = {persona for persona, nodes in before.items() if victim in nodes}
    earlier, later = result["replaced_before"], result["replaced_after"]
    assert all(later[p] > earlier[p] for p in lost), (earlier, later)
