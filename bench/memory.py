"""Memory of the moving parts: per robot worker, per active match, per socket.

What it measures, on one local Ray and an embedded broker:

- ``worker_rss_mb`` / ``worker_pss_mb``: a robot worker actor's resident and
  proportional set size after ``--commands`` commands went through a pool of
  ``--workers`` (its per-match memory filled), next to an empty actor's
  (``idle_actor_rss_mb``), which is Ray's own share;
- ``engine_kb_per_match``: a match engine's RSS growth per active match,
  after ``--matches`` classic matches were created and started (round 1
  open, deadlines far away);
- ``gateway_kb_per_socket``: the Serve replica's RSS growth per open
  WebSocket that has done a ping, over ``--sockets`` sockets, and the same
  for Serve's proxy process (``proxy_kb_per_socket``); clients offer
  permessage-deflate as browsers do, and the ``_no_deflate`` figures are the
  same sockets without it.

What limits it: RSS grows in steps (allocator arenas, pages), so per-item
figures need hundreds of items and still carry a few KiB of noise; RSS
counts shared pages (libraries, Ray's object store mappings) in every
process, PSS splits them. The gateway's sockets are idle: a socket following
a match also holds that match's feed, shared by its players.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray

from bench._common import (
    local_ray,
    note,
    pids_named,
    pss_kb,
    rss_kb,
    wait_until_quiet,
    write_json,
)
from bench.pipeline import (
    CommandWriter,
    ResultReader,
    kafka_settings,
    running_pool,
    write_personas,
)
from configs import AppSettings, EngineSettings
from events.broker import EmbeddedBroker, free_port
from events.topics import ensure_topics

SETTLE_S = 2.0
LONG_S = 3600.0


def _pid(_actor: Any) -> int:
    return os.getpid()


def _collect(_actor: Any) -> int:
    return gc.collect()


@ray.remote(num_cpus=0)
class Idle:
    """An actor that does nothing: Ray's own footprint per actor process."""

    def pid(self) -> int:
        """Its process id."""
        return os.getpid()


def workers(bootstrap: str, count: int, commands: int, folder: str) -> dict[str, Any]:
    """RSS and PSS of pool workers after real commands, and of an idle actor."""
    kafka = kafka_settings(bootstrap, f"mem-{uuid.uuid4().hex[:6]}")
    personas_file, persona = write_personas(Path(folder), count)
    ensure_topics(kafka, bootstrap, [persona])
    writer = CommandWriter(kafka, bootstrap, persona)
    with running_pool(bootstrap, kafka, personas_file, persona, 50) as target:
        reader = ResultReader(bootstrap, target.results)
        sent = writer.encode(commands)
        writer.write(target.commands, sent)
        reader.read({c.event_id for c in sent}, timeout_s=300)
        reader.close()
        time.sleep(SETTLE_S)
        rss = [rss_kb(p) / 1024 for p in target.worker_pids]
        pss = [pss_kb(p) / 1024 for p in target.worker_pids]
    idle = Idle.remote()  # type: ignore[attr-defined]
    idle_pid = ray.get(idle.pid.remote())
    time.sleep(SETTLE_S)
    figures = {
        "worker_rss_mb": round(sum(rss) / len(rss), 1),
        "worker_pss_mb": round(sum(pss) / len(pss), 1),
        "idle_actor_rss_mb": round(rss_kb(idle_pid) / 1024, 1),
        "idle_actor_pss_mb": round(pss_kb(idle_pid) / 1024, 1),
        "workers": count,
        "worker_commands": commands,
    }
    ray.kill(idle)
    return figures


def engine(bootstrap: str, matches: int) -> dict[str, Any]:
    """RSS growth of one match engine per active classic match."""
    from actors.engines import start_engines

    kafka = kafka_settings(bootstrap, f"mem-{uuid.uuid4().hex[:6]}")
    settings = AppSettings(kafka=kafka, engine=EngineSettings(engines=1))
    ensure_topics(kafka, bootstrap, settings.persona_names())
    namespace = f"mem-{uuid.uuid4().hex[:8]}"
    (handle,) = start_engines(settings, bootstrap, namespace)
    try:
        ray.get(handle.ready.remote(), timeout=120)
        pid = ray.get(handle.__ray_call__.remote(_pid))
        before = _settled_rss(handle, pid)
        timings = {"answer_timeout_s": LONG_S, "vote_timeout_s": LONG_S}
        for first in range(0, matches, 100):
            calls = [
                handle.create_match.remote(
                    "classic", f"p-{uuid.uuid4().hex[:16]}", timings=timings
                )
                for _ in range(first, min(matches, first + 100))
            ]
            outcomes = ray.get(calls, timeout=300)
            refused = [o for o in outcomes if not o.ok]
            if refused:
                raise RuntimeError(f"create_match refused: {refused[0]}")
        after = _settled_rss(handle, pid)
        status = ray.get(handle.status.remote())
    finally:
        ray.get(handle.shutdown.remote(), timeout=30)
        ray.kill(handle, no_restart=True)
    return {
        "engine_kb_per_match": round((after - before) / matches, 1),
        "engine_rss_mb_before": round(before / 1024, 1),
        "engine_rss_mb_after": round(after / 1024, 1),
        "matches": matches,
        "engine_status": status,
    }


def _settled_rss(handle: Any, pid: int) -> int:
    time.sleep(SETTLE_S)
    ray.get(handle.__ray_call__.remote(_collect))
    return rss_kb(pid)


def gateway(sockets: int) -> dict[str, Any]:
    """RSS growth of the gateway replica and of Serve's proxy per open socket."""
    from ray import serve

    from bench.gateway import serving_gateway

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        with serving_gateway():
            (replica,) = pids_named("ServeReplica:robot-orchestra:Gateway")
            proxies = pids_named("ProxyActor")
            pids = [replica, *proxies]
            figures = {"gateway_rss_mb_before": round(rss_kb(replica) / 1024, 1)}
            for deflate, suffix in ((True, ""), (False, "_no_deflate")):
                before = [rss_kb(p) for p in pids]
                after = asyncio.run(_hold_sockets(port, sockets, pids, deflate))
                grown = [(a - b) / sockets for a, b in zip(after, before, strict=True)]
                figures[f"gateway_kb_per_socket{suffix}"] = round(grown[0], 1)
                figures[f"proxy_kb_per_socket{suffix}"] = round(sum(grown[1:]), 1)
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
    return {**figures, "sockets": sockets}


async def _hold_sockets(
    port: int, count: int, pids: list[int], deflate: bool
) -> list[int]:
    import websockets

    url = f"ws://127.0.0.1:{port}/ws"
    opened = []
    try:
        for first in range(0, count, 50):
            batch = range(first, min(count, first + 50))
            opened += await asyncio.gather(
                *(
                    websockets.connect(
                        url,
                        open_timeout=60,
                        compression="deflate" if deflate else None,
                    )
                    for _ in batch
                )
            )
        for ws in opened:
            await ws.send('{"type":"ping"}')
        for ws in opened:
            await ws.recv()
        await asyncio.sleep(SETTLE_S)
        return [rss_kb(pid) for pid in pids]
    finally:
        await asyncio.gather(*(ws.close() for ws in opened), return_exceptions=True)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Measure workers, the engine and the gateway; print and return figures."""
    options = parse_args(argv)
    results: dict[str, Any] = {"load_before": wait_until_quiet()}
    with (
        tempfile.TemporaryDirectory() as folder,
        EmbeddedBroker() as broker,
        local_ray(num_cpus=4),
    ):
        note(f"workers: {options.workers} after {options.commands} commands")
        results.update(
            workers(broker.bootstrap, options.workers, options.commands, folder)
        )
        note(f"engine: {options.matches} matches")
        results.update(engine(broker.bootstrap, options.matches))
        note(f"gateway: {options.sockets} sockets")
        results.update(gateway(options.sockets))
    for key in ("worker_rss_mb", "engine_kb_per_match", "gateway_kb_per_socket"):
        print(f"{key:24} {results[key]}")
    print(
        f"(worker PSS {results['worker_pss_mb']} MB; an idle Ray actor "
        f"{results['idle_actor_rss_mb']} MB RSS; per socket: proxy "
        f"{results['proxy_kb_per_socket']} KiB, without permessage-deflate "
        f"gateway {results['gateway_kb_per_socket_no_deflate']} KiB and proxy "
        f"{results['proxy_kb_per_socket_no_deflate']} KiB)"
    )
    if options.json:
        write_json(options.json, results)
    return results


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.memory")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--commands", type=int, default=5000)
    parser.add_argument("--matches", type=int, default=1000)
    parser.add_argument("--sockets", type=int, default=500)
    parser.add_argument("--json", type=Path, help="write the results here")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
