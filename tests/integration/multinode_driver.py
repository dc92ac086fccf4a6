"""A Ray cluster of three nodes on this machine, for ``test_multinode``.

``python -m tests.integration.multinode_driver RUN_DIR`` starts a head and two
robot nodes, deploys the app on Serve, plays matches over the WebSocket, stops
one robot node mid-match, and writes what it saw to ``RUN_DIR/result.json``
for the test to judge. It runs in a process of its own because a pytest
process may already be the driver of the session's local Ray.

Each node is one ``ray start`` in a session of its own, so the node's daemons
share one process group; its actors' processes (the raylet gives each its
own group) are its raylet's children. Stopping a node kills exactly that
group and its descendants: ``ray stop`` would stop every node on the machine.
Each process group is written to ``RUN_DIR/nodes.json`` as soon as it exists,
so the test stops them even when this driver is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml

from events.broker import free_port

RAY_CLI = str(Path(sys.executable).with_name("ray"))
ROBOT_NODES = ("robot-a", "robot-b")
MATCHES = 3
APP_CONFIG = {
    "engine": {"engines": 1},
    "game": {
        "timings": {
            "answer_timeout_s": 10.0,
            "vote_timeout_s": 10.0,
            # Long enough that the node is stopped while matches are in flight.
            "intermission_s": 1.0,
        }
    },
    "pool": {
        "worker_resources": {"robot": 1},
        "think_time_scale": 0.02,
        "health_interval_s": 1.0,
    },
}


# Nodes: start one, stop one


def start_nodes(nodes: dict[str, list[str]], run: Path, temp_dir: Path) -> None:
    """``ray start`` each node in a session of its own, one after the other.

    Two ``ray start`` at once on one machine picked the same free port and
    one raylet died on ``bind: Address already in use``. Each process group
    is registered before it is waited on, so a start that hangs is still
    stopped by ``stop_all``.
    """
    for name, args in nodes.items():
        command = [
            RAY_CLI,
            "start",
            *args,
            f"--node-name={name}",
            f"--temp-dir={temp_dir}",
            "--object-store-memory=100000000",
            "--disable-usage-stats",
        ]
        process = subprocess.Popen(
            command,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        register_node(run, name, process.pid, str(temp_dir))
        output, _ = process.communicate(timeout=180)
        if process.returncode != 0:
            raise RuntimeError(f"ray start of node {name} failed:\n{output}")


def register_node(run: Path, name: str, pgid: int, marker: str) -> None:
    path = run / "nodes.json"
    nodes = json.loads(path.read_text()) if path.exists() else []
    nodes.append({"name": name, "pgid": pgid, "marker": marker})
    path.write_text(json.dumps(nodes))


def registered_nodes(run: Path) -> list[dict[str, Any]]:
    """The nodes a run started, in the order it started them."""
    path = run / "nodes.json"
    return list(json.loads(path.read_text())) if path.exists() else []


def stop_node(pgid: int, marker: str) -> int:
    """SIGKILL a node's process group and every descendant; return how many.

    A group is only touched when one of its processes names ``marker`` (the
    run's temp dir) on its command line, so a recycled group id is left alone.
    Everything is stopped (SIGSTOP) before anything is killed: a raylet that
    forks a worker while its siblings die would leave an orphan behind.
    """
    frozen: set[int] = set()
    while True:
        table = _process_table()
        group = {pid for pid, (_, group_id, _) in table.items() if group_id == pgid}
        if not frozen and not any(marker in table[pid][2] for pid in group):
            return 0
        found = _with_descendants(group | (frozen & set(table)), table)
        fresh = found - frozen
        if not fresh:
            break
        _signal(fresh, signal.SIGSTOP)
        frozen |= fresh
    _signal(frozen, signal.SIGKILL)
    return len(frozen)


def _with_descendants(
    roots: set[int], table: dict[int, tuple[int, int, str]]
) -> set[int]:
    found = set(roots)
    frontier = list(roots)
    while frontier:
        parent = frontier.pop()
        children = {pid for pid, (ppid, _, _) in table.items() if ppid == parent}
        frontier.extend(children - found)
        found |= children
    return found


def _signal(pids: set[int], signum: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def stop_all(run: Path) -> None:
    """Stop every node a run registered, the head last."""
    for node in reversed(registered_nodes(run)):
        stop_node(node["pgid"], node["marker"])


def _process_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, process group, command line), read from /proc."""
    table: dict[int, tuple[int, int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes().decode(errors="replace")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        # The command name in field 2 may hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2 :].split()
        command = cmdline.decode(errors="replace")
        table[int(entry.name)] = (int(fields[1]), int(fields[2]), command)
    return table


# The cluster as the app sees it


def node_names() -> dict[str, str]:
    """Node id -> node name, for the nodes alive now."""
    import ray

    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    return {n["NodeID"]: n["NodeName"] for n in nodes if n["Alive"]}


async def placement(orchestrator: Any) -> dict[str, list[str]]:
    """Per persona, the node name of each of the pool's workers."""
    import ray

    names = node_names()
    workers = await orchestrator.workers.remote()
    placed: dict[str, list[str]] = {}
    for persona, handles in workers.items():
        calls = [
            h.__ray_call__.remote(lambda _: ray.get_runtime_context().get_node_id())
            for h in handles
        ]
        node_ids = await asyncio.wait_for(asyncio.gather(*calls), 5)
        placed[persona] = [names.get(n, f"gone:{n[:8]}") for n in node_ids]
    return placed


async def placed_on(
    orchestrator: Any, nodes: set[str], timeout_s: float
) -> dict[str, list[str]]:
    """Wait until every persona has workers, all of them on ``nodes``."""
    last: dict[str, list[str]] = {}

    async def settled() -> bool:
        nonlocal last
        try:
            last = await placement(orchestrator)
        except Exception:  # a worker starting, dying or being replaced
            return False
        return all(last.values()) and all(
            set(where) <= nodes for where in last.values()
        )

    await wait_for(settled, timeout_s, f"pool workers on {sorted(nodes)}: {last}")
    return last


async def wait_for(
    condition: Callable[[], Awaitable[bool]], timeout_s: float, what: str
) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.5)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def kafka_public_types(config: Path, bootstrap: str, match_id: str) -> list[str]:
    from configs import load_settings
    from events.reader import read_match
    from serve_app.views import is_public

    log = read_match(load_settings(config).kafka, bootstrap, match_id)
    return [e.payload.type for e in log if is_public(e)]


# The run


class Run:
    """One cluster: its nodes, the app on it, and the figures it reports."""

    def __init__(self, run_dir: Path, temp_dir: Path) -> None:
        self.dir = run_dir
        self.temp_dir = temp_dir
        self.config = run_dir / "app.yaml"
        self.namespace = f"mn-{uuid.uuid4().hex[:8]}"
        self.gcs_port = free_port()
        self.url = ""
        self.timings_s: dict[str, float] = {}
        self._started = time.monotonic()

    def mark(self, step: str) -> None:
        """Note how long the run took to reach ``step``."""
        self.timings_s[step] = round(time.monotonic() - self._started, 1)

    def start_head(self) -> None:
        """Start the head (CPUs, the ``gateway`` resource) and connect to it."""
        import ray

        args = [
            "--head",
            f"--port={self.gcs_port}",
            "--num-cpus=2",
            '--resources={"gateway": 1}',
            "--include-dashboard=false",
            f"--ray-client-server-port={free_port()}",
        ]
        start_nodes({"head": args}, self.dir, self.temp_dir)
        ray.init(
            address=f"127.0.0.1:{self.gcs_port}",
            configure_logging=False,
            log_to_driver=False,
        )
        self.mark("head_started")

    def deploy(self) -> None:
        """Run the app on Serve, its one proxy on the head."""
        from ray import serve

        from serve_app import build_app

        self.config.write_text(yaml.safe_dump(APP_CONFIG))
        http_port = free_port()
        serve.start(
            proxy_location="HeadOnly",
            http_options={"host": "127.0.0.1", "port": http_port},
        )
        serve.run(build_app(str(self.config), self.namespace), name="robot-orchestra")
        self.url = f"http://127.0.0.1:{http_port}"
        self.mark("app_deployed")

    def start_robot_nodes(self) -> None:
        """Join the robot nodes, each with ``{"robot": 4}``."""
        args = [
            f"--address=127.0.0.1:{self.gcs_port}",
            "--num-cpus=1",
            '--resources={"robot": 4}',
        ]
        start_nodes({name: args for name in ROBOT_NODES}, self.dir, self.temp_dir)
        self.mark("robot_nodes_started")

    def stop(self, name: str) -> int:
        """Stop one node the hard way, as if its machine were lost."""
        node = next(n for n in registered_nodes(self.dir) if n["name"] == name)
        killed = stop_node(node["pgid"], node["marker"])
        self.mark("node_stopped")
        return killed

    async def replaced_per_persona(self) -> dict[str, int]:
        """How many workers each persona's pool has replaced so far."""
        pool = await asyncio.to_thread(get_json, f"{self.url}/api/pool")
        personas = pool["orchestrators"][0]["personas"]
        return {name: figures["replaced"] for name, figures in personas.items()}

    def report(self, player: Any) -> dict[str, Any]:
        """What a player saw of its match, next to the match's Kafka log."""
        bootstrap = get_json(f"{self.url}/healthz")["broker"]
        return {
            "match_id": player.match_id,
            "phase": player.view.get("phase"),
            "seqs": player.seqs(),
            "ws_types": [e["type"] for e in player.events],
            "kafka_types": kafka_public_types(self.config, bootstrap, player.match_id),
            "answers_per_round": [len(r["answers"]) for r in player.view["results"]],
        }


async def lose_a_robot_node(run: Run) -> dict[str, Any]:
    """Place the pool, stop a robot node mid-match, see every match through."""
    import ray

    from actors.orchestrator import orchestrator_name
    from tests.integration.ws_client import WsPlayer

    orchestrator = ray.get_actor(orchestrator_name(0), namespace=run.namespace)
    before = await placed_on(orchestrator, set(ROBOT_NODES), 180)
    run.mark("workers_placed")
    players = [await WsPlayer(run.url).connect() for _ in range(MATCHES)]
    for player in players:
        await player.create("classic")
    games = [asyncio.create_task(p.play_match()) for p in players]

    async def all_in_round_two() -> bool:
        return all(p.view.get("round", 0) >= 2 for p in players)

    await wait_for(all_in_round_two, 90, "every match in round 2")
    replaced_before = await run.replaced_per_persona()
    victim = max(ROBOT_NODES, key=lambda n: sum(w.count(n) for w in before.values()))
    killed = run.stop(victim)
    phases_at_kill = [p.view.get("phase") for p in players]
    survivors = set(ROBOT_NODES) - {victim}
    after = await placed_on(orchestrator, survivors, 120)
    run.mark("workers_replaced")
    await asyncio.wait_for(asyncio.gather(*games), 240)
    run.mark("matches_ended")

    fresh = await WsPlayer(run.url).connect()
    await fresh.create("classic")
    await asyncio.wait_for(fresh.play_match(), 120)
    run.mark("fresh_match_ended")
    for player in [*players, fresh]:
        await player.close()
    return {
        "victim": victim,
        "processes_killed": killed,
        "phases_at_kill": phases_at_kill,
        "placement_before": before,
        "placement_after": after,
        "replaced_before": replaced_before,
        "replaced_after": await run.replaced_per_persona(),
        "nodes_alive": sorted(node_names().values()),
        "matches": [run.report(p) for p in players],
        "fresh_match": run.report(fresh),
    }


async def play(run_dir: Path, temp_dir: Path) -> dict[str, Any]:
    """Bring the cluster up in the order that keeps robot nodes for robots."""
    run = Run(run_dir, temp_dir)
    run.start_head()
    # Deployed before the robot nodes exist: actors that ask for no
    # resources (engines, orchestrator, broker keeper, projector) go to a
    # random node, and this keeps them on the head, so the node stopped
    # later holds robot workers only.
    run.deploy()
    run.start_robot_nodes()
    result = await lose_a_robot_node(run)
    return {**result, "timings_s": run.timings_s}


def main() -> None:
    run_dir = Path(sys.argv[1])
    # Every process of the cluster inherits these; see FIELD-NOTES on Ray.
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    os.environ.setdefault("RAY_AUTH_TOKEN", uuid.uuid4().hex + uuid.uuid4().hex)
    # Short: Ray's socket paths live under it and must fit in 107 bytes.
    temp_dir = Path(tempfile.mkdtemp(prefix="romn-", dir="/tmp"))
    ok = False
    try:
        result = asyncio.run(play(run_dir, temp_dir))
        (run_dir / "result.json").write_text(json.dumps(result, indent=2))
        ok = True
    finally:
        import ray

        ray.shutdown()
        stop_all(run_dir)
        if ok:
            shutil.rmtree(temp_dir, ignore_errors=True)
        else:
            print(f"ray logs kept in {temp_dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
