"""WebSocket round trips per second: our gateway against bare echo servers.

What it measures: ``--clients C`` WebSocket clients (the ``websockets``
package, asyncio, one process of their own) each send a frame and wait for
the answer in a loop; after a one-second warm-up, round trips are counted
for ``--seconds S`` and their latency taken (p50/p99). The servers, one
after the other in the same run:

- ``uvicorn``: a bare Starlette echo app under uvicorn, in a subprocess;
- ``serve_echo``: the same echo app under ``@serve.ingress`` on Ray Serve;
- ``gateway``: the real application (``serve_app.build_app``) on Serve, with
  ``{"type": "ping"}`` frames answered by ``{"type": "pong", ...}``; its
  per-connection frame limit is raised so it measures the path, not the
  limiter;
- ``gateway_haproxy`` and ``serve_echo_haproxy``: the same two with
  ``RAY_SERVE_ENABLE_HA_PROXY=1``, in a Ray cluster started with it.

Each Serve mode runs in a fresh process with a Ray of its own, because the
proxy mode is read from the environment when Ray's processes start.

What limits it: clients and servers share the machine (2 cores here), so a
server's figure is also bounded by the clients' own CPU; compare servers
within one run. Clients keep websockets' defaults (permessage-deflate on),
as browsers do. ``--clients`` stays modest (100) for the same reason.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import yaml
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bench._common import (
    BenchError,
    local_ray,
    note,
    percentile,
    rate,
    table,
    wait_until_quiet,
    write_json,
)
from events.broker import free_port

PING = '{"type":"ping"}'
WARMUP_S = 1.0
# The real app, with the per-socket frame limiter out of the way.
GATEWAY_CONFIG: dict[str, Any] = {
    "serve": {"frames_per_s": 100_000, "frame_burst": 100_000},
}


# The echo servers


def echo_app() -> Starlette:
    """A bare Starlette app that echoes every text frame on ``/ws``."""
    return Starlette(routes=[WebSocketRoute("/ws", _echo)])


async def _echo(websocket: WebSocket) -> None:
    await websocket.accept()
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await websocket.send_text(await websocket.receive_text())


class EchoIngress:
    """The echo app as a Serve ingress deployment."""

    def __serve_build_asgi_app__(self) -> Starlette:
        return echo_app()


def _wait_listening(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        time.sleep(0.05)
    raise BenchError(f"nothing listened on port {port} within {timeout_s} s")


@contextlib.contextmanager
def uvicorn_echo() -> Iterator[str]:
    """The echo app under uvicorn in a subprocess; yields its ``/ws`` URL."""
    port = free_port()
    code = (
        "import uvicorn; uvicorn.run('bench.gateway:echo_app', factory=True, "
        f"host='127.0.0.1', port={port}, log_level='warning')"
    )
    process = subprocess.Popen([sys.executable, "-c", code])
    try:
        _wait_listening(port)
        yield f"ws://127.0.0.1:{port}/ws"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


# The clients


def run_clients(url: str, clients: int, seconds: float) -> dict[str, Any]:
    """Drive ``url`` from a fresh process; its figures as a dict."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(drive, url, clients, seconds).result()


def drive(url: str, clients: int, seconds: float) -> dict[str, Any]:
    """Round trips of ``clients`` sockets for ``seconds`` after a warm-up."""
    return asyncio.run(_drive(url, clients, seconds))


async def _drive(url: str, clients: int, seconds: float) -> dict[str, Any]:
    import websockets

    sockets = []
    for first in range(0, clients, 20):
        sockets += await asyncio.gather(
            *(
                websockets.connect(url, open_timeout=60, max_size=2**20)
                for _ in range(first, min(clients, first + 20))
            )
        )
    counted_from = time.perf_counter() + WARMUP_S
    until = counted_from + seconds
    try:
        per_client = await asyncio.gather(
            *(_ping_loop(ws, counted_from, until) for ws in sockets)
        )
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    latencies = [ms for found, _ in per_client for ms in found]
    return {
        "round_trips": len(latencies),
        "rt_per_s": rate(len(latencies), seconds),
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "errors": sum(errors for _, errors in per_client),
    }


async def _ping_loop(
    ws: Any, counted_from: float, until: float
) -> tuple[list[float], int]:
    found: list[float] = []
    errors = 0
    clock = time.perf_counter
    while (sent := clock()) < until:
        await ws.send(PING)
        reply = await ws.recv()
        if sent >= counted_from:
            found.append((clock() - sent) * 1000)
            errors += '"error"' in reply
    return found, errors


# Serve


def serve_session(
    clients: int, seconds: float, env: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """In this (fresh) process: a local Ray and Serve; echo, then the gateway."""
    from ray import serve

    from bench import gateway as module  # by reference, not as __main__

    port = free_port()
    url = f"ws://127.0.0.1:{port}/ws"
    results: dict[str, dict[str, Any]] = {}
    with local_ray(num_cpus=4, **env):
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        echo = serve.deployment(
            serve.ingress()(module.EchoIngress),
            name="Echo",
            max_ongoing_requests=10_000,
            # Under HAProxy the closed sockets held the default 20 s drain.
            graceful_shutdown_timeout_s=1,
        )
        serve.run(echo.bind(), name="echo", route_prefix="/")  # type: ignore[attr-defined]
        results["serve_echo"] = run_clients(url, clients, seconds)
        serve.delete("echo")
        with serving_gateway() as _:
            results["gateway"] = run_clients(url, clients, seconds)
        serve.shutdown()  # type: ignore[no-untyped-call]
    return results


@contextlib.contextmanager
def serving_gateway(overrides: dict[str, Any] | None = None) -> Iterator[str]:
    """The real app on the running Serve at ``/``; yields its Ray namespace.

    Every actor of the namespace (broker keeper, engines, pool, projector)
    is killed on exit.
    """
    import ray
    from ray import serve

    from serve_app import build_app

    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "app.yaml"
        config.write_text(yaml.safe_dump(overrides or GATEWAY_CONFIG))
        serve.run(
            build_app(str(config), namespace), name="robot-orchestra", route_prefix="/"
        )
        try:
            yield namespace
        finally:
            serve.delete("robot-orchestra")
            for actor in ray.util.list_named_actors(all_namespaces=True):
                if actor["namespace"] == namespace:
                    handle = ray.get_actor(actor["name"], namespace=namespace)
                    ray.kill(handle, no_restart=True)


def haproxy_env(folder: Path) -> dict[str, str]:
    """Environment of a Ray whose Serve proxy is HAProxy, with private files.

    HAProxy's config, admin socket and state default to /tmp/haproxy-serve,
    which another Ray on the same machine would share, and its metrics and
    stats listen on fixed ports (9101, 8404), which a running `make run`
    holds: this Ray gets free ones.
    """
    return {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(folder / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(folder / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(folder),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(folder / "server-state"),
    }


def in_fresh_process(
    clients: int, seconds: float, env: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """``serve_session`` in a new interpreter that starts with ``env``."""
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            return pool.submit(serve_session, clients, seconds, env).result()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# Report


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Measure every server in turn; print and return the results."""
    options = parse_args(argv)
    load = wait_until_quiet()
    figures: dict[str, dict[str, Any]] = {}
    note("uvicorn echo")
    with uvicorn_echo() as url:
        figures["uvicorn"] = run_clients(url, options.clients, options.seconds)
    note("serve echo and gateway, default proxy")
    figures.update(in_fresh_process(options.clients, options.seconds, {}))
    results: dict[str, Any] = {}
    if options.haproxy:
        note("serve echo and gateway, RAY_SERVE_ENABLE_HA_PROXY=1")
        with tempfile.TemporaryDirectory() as folder:
            try:
                haproxy = in_fresh_process(
                    options.clients, options.seconds, haproxy_env(Path(folder))
                )
            except Exception as exc:
                results["haproxy_error"] = f"{type(exc).__name__}: {exc}"[:500]
                haproxy = {}
        figures.update({f"{k}_haproxy": v for k, v in haproxy.items()})
    for name, figure in figures.items():
        results[f"{name}_rt_per_s"] = figure["rt_per_s"]
        results[f"{name}_p50_ms"] = figure["p50_ms"]
        results[f"{name}_p99_ms"] = figure["p99_ms"]
        results[f"{name}_errors"] = figure["errors"]
    results.update(clients=options.clients, seconds=options.seconds, load_before=load)
    print(summary(figures, options))
    if options.json:
        write_json(options.json, results)
    return results


def summary(figures: dict[str, dict[str, Any]], options: argparse.Namespace) -> str:
    """The table printed at the end."""
    rows = [{"server": name, **figure} for name, figure in figures.items()]
    head = (
        f"WebSocket ping round trips: {options.clients} clients for "
        f"{options.seconds:g} s each; clients and servers share "
        f"{os.cpu_count()} cores, so keep the client count modest"
    )
    columns = ["server", "rt_per_s", "p50_ms", "p99_ms", "round_trips", "errors"]
    return head + "\n" + table(rows, columns)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.gateway")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--no-haproxy",
        dest="haproxy",
        action="store_false",
        help="skip the RAY_SERVE_ENABLE_HA_PROXY=1 runs",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
