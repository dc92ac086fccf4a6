"""Load test: simulated humans play whole matches over the match WebSocket.

Usage::

    python -m bench.loadtest --url ws://HOST:PORT --matches N --concurrency C
        --template classic|duo [--json FILE]
    python -m bench.loadtest --start-app configs/load.yaml --matches N ...

With ``--start-app`` (and no ``--url``) it starts a local Ray and the whole
app on Serve with that config on a free port, and stops them at the end.

Each simulated human connects, creates (or joins) a match, answers every
prompt and votes, exactly as the web page does. At the end the events each
player saw are compared with the match's events in Kafka: ``lost_events``
and ``duplicate_events`` must both be 0. Latencies: ``connect`` (socket
open), ``answer_to_robots`` (a human's answer sent until every seat's
answer is in), ``vote_to_scored`` (a vote sent until the round is scored),
each also by round (``latency_by_round_ms``).

By default every human acts the moment it can, so all matches move in step
and the run is a closed loop: each phase waits on the whole backlog, and a
phase's latency is about the number of waiting players divided by the
actions finished per second. ``--think-s T`` makes each human wait a random
0.5 T to 1.5 T seconds before each answer and each vote, as people reading
and typing do; latencies are still measured from the moment an action is
sent, so they show what a player waits for once they act.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets
from tqdm import tqdm

from actors._figures import percentile
from configs import load_settings
from events.reader import read_partitions
from serve_app.views import is_public

# Error codes that ask the client to try again (docs/protocol.md).
_RETRYABLE = {"unavailable", "engine_unavailable"}


@dataclass
class Figures:
    """What the run measured."""

    completed: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latency_ms: dict[str, list[float]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # The same latencies by round number, so the first round, where every
    # match is created at once, can be told from the rounds after it.
    by_round: dict[str, dict[int, list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    seen: dict[str, list[list[tuple[int, str]]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    public_events: int = 0
    reconnects: int = 0
    longest_stall_s: float = 0.0
    frames: list[dict[str, Any]] = field(default_factory=list)
    record_frames: bool = False
    stuck: list[dict[str, Any]] = field(default_factory=list)

    def record(self, name: str, number: int, ms: float) -> None:
        """A latency of round ``number``, overall and by round."""
        self.latency_ms[name].append(ms)
        self.by_round[name][number].append(ms)


class Human:
    """One simulated human on one socket."""

    def __init__(
        self,
        url: str,
        figures: Figures,
        timeout_s: float,
        think_s: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        self.url, self.figures, self.timeout_s = url, figures, timeout_s
        self.think_s = think_s
        self.rng = rng or random.Random(0)
        self.ws: Any = None
        self.view: dict[str, Any] = {}
        self.events: list[tuple[int, str]] = []
        self.seq = 0
        self.match_id = ""
        self.token = ""
        self.invite_code: str | None = None
        self.last_frame_at = time.monotonic()

    async def connect(self) -> None:
        started = time.perf_counter()
        self.ws = await websockets.connect(self.url, open_timeout=60, max_size=2**20)
        self.figures.latency_ms["connect"].append(_ms(started))

    async def reconnect(self) -> None:
        """A new socket after a dropped one; resume from the last seq seen."""
        self.figures.reconnects += 1
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                await self.connect()
                break
            except (OSError, websockets.WebSocketException):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        if self.match_id:
            await self.ws.send(
                json.dumps(
                    {
                        "type": "resume",
                        "match_id": self.match_id,
                        "token": self.token,
                        "last_seq": self.seq,
                    }
                )
            )

    async def send(self, frame: dict[str, Any]) -> None:
        """Send a frame; after a dropped socket, resume and send it again.

        Actions carry command ids, so a repeat of one that landed is harmless.
        """
        try:
            await self.ws.send(json.dumps(frame))
        except websockets.ConnectionClosed:
            await self.reconnect()
            await self.ws.send(json.dumps(frame))

    async def recv(self) -> dict[str, Any]:
        while True:
            try:
                raw = await asyncio.wait_for(self.ws.recv(), self.timeout_s)
                break
            except websockets.ConnectionClosed:
                await self.reconnect()
        now = time.monotonic()
        stall = now - self.last_frame_at
        self.figures.longest_stall_s = max(self.figures.longest_stall_s, stall)
        self.last_frame_at = now
        frame: dict[str, Any] = json.loads(raw)
        if self.figures.record_frames:
            self.figures.frames.append(frame)
        kind = frame["type"]
        if kind == "joined":
            self.match_id, self.token = frame["match_id"], frame["token"]
            self.invite_code = frame["invite_code"]
        elif kind == "update":
            self.events += [(e["seq"], e["type"]) for e in frame["events"]]
            self.view, self.seq = frame["view"], frame["seq"]
        elif kind == "error":
            self.figures.errors[frame["code"]] += 1
        return frame

    async def take_seat(self, frame: dict[str, Any]) -> None:
        """Create or join, as a person would: again after ``unavailable``.

        A create or join whose socket dropped, or that a restarting backend
        refused, is sent again; a repeat after a lost ``joined`` frame leaves
        an empty match behind, which its deadlines end.
        """
        await self.send(frame)
        dropped_at = self.figures.reconnects
        while not self.match_id:
            reply = await self.recv()
            retry = reply["type"] == "error" and reply["code"] in _RETRYABLE
            if retry or self.figures.reconnects != dropped_at:
                dropped_at = self.figures.reconnects
                await asyncio.sleep(0.5)
                await self.send(frame)

    async def until(self, done: Any) -> None:
        while not (self.view and done(self.view)):
            await self.recv()

    async def play(self) -> None:
        """Answer and vote in every round until the reveal."""
        for number in range(1, 100):
            await self.until(
                lambda v, n=number: (
                    v["phase"] == "ended"
                    or (v["round"] >= n and v["phase"] in ("answering", "voting"))
                )
            )
            if self.view["phase"] == "ended":
                return
            await self.answer(number)
            await self.vote(number)

    async def think(self) -> None:
        """Wait as a person would before acting (``--think-s``)."""
        if self.think_s <= 0:
            return
        await asyncio.sleep(self.think_s * self.rng.uniform(0.5, 1.5))
        # Not reading while thinking is not a stall of the server's.
        self.last_frame_at = time.monotonic()

    async def answer(self, number: int) -> None:
        if self.view["phase"] != "answering" or self.view["round"] != number:
            return
        await self.think()
        if self.view["phase"] != "answering" or self.view["round"] != number:
            return
        started = time.perf_counter()
        await self.send(
            {"type": "answer", "token": self.token, "command_id": f"a{number}",
             "text": f"honestly round {number} makes me think of snacks"}
        )  # fmt: skip
        seats = len(self.view["seats"])
        await self.until(
            lambda v: (
                v["round"] != number
                or v["phase"] != "answering"
                or v["answered"] >= seats
            )
        )
        self.figures.record("answer_to_robots", number, _ms(started))

    async def vote(self, number: int) -> None:
        await self.until(lambda v: v["round"] != number or v["phase"] != "answering")
        view = self.view
        if view["phase"] != "voting" or view["round"] != number:
            return
        ballot = [a["seat"] for a in view["answers"]]
        others = [s for s in ballot if s != view["you"]]
        if view["you"] not in ballot or not others:
            return
        await self.think()
        started = time.perf_counter()
        await self.send(
            {"type": "vote", "token": self.token, "seat": others[0],
             "command_id": f"v{number}"}
        )  # fmt: skip
        await self.until(lambda v: v["round"] != number or v["phase"] != "voting")
        self.figures.record("vote_to_scored", number, _ms(started))


async def play_match(
    url: str,
    template: str,
    figures: Figures,
    timeout_s: float,
    think_s: float = 0.0,
    rng: random.Random | None = None,
) -> None:
    """One whole match: one human (classic) or two (duo)."""
    count = 2 if template == "duo" else 1
    humans = [Human(url, figures, timeout_s, think_s, rng) for _ in range(count)]
    try:
        for human in humans:
            await human.connect()
        first = humans[0]
        await first.take_seat({"type": "create", "template": template})
        for other in humans[1:]:
            await other.take_seat({"type": "join", "code": first.invite_code})
        await asyncio.gather(*(h.play() for h in humans))
        figures.completed += 1
    except Exception as exc:
        figures.failed += 1
        figures.errors[f"client:{type(exc).__name__}"] += 1
        # Where each player of a failed match stood, to find the stall.
        figures.stuck += [
            {
                "match_id": h.match_id,
                "seq": h.seq,
                "phase": h.view.get("phase"),
                "round": h.view.get("round"),
                "error": repr(exc)[:200],
            }
            for h in humans
        ]
    finally:
        for human in humans:
            if human.ws is not None:
                await human.ws.close()
            if human.match_id:
                figures.seen[human.match_id].append(human.events)
                figures.public_events += len(human.events)


def compare_with_kafka(http_url: str, figures: Figures) -> dict[str, int]:
    """What players saw against the Kafka log, event by event.

    ``lost``: in Kafka, not seen by a player; ``duplicate``: seen twice;
    ``phantom``: seen but not in Kafka (or of another type there).
    """
    broker = _get_json(f"{http_url}/healthz")["broker"]
    kafka = load_settings().kafka
    topic = kafka.topics.match_events
    logs: dict[str, list[str]] = defaultdict(list)
    for entry in read_partitions(kafka, broker, topic, list(range(topic.partitions))):
        event = entry.envelope
        if event is not None and event.match_id in figures.seen and is_public(event):
            logs[event.match_id].append(event.payload.type)
    totals = Counter(kafka_events=sum(len(log) for log in logs.values()))
    for match_id, players in figures.seen.items():
        expected = dict(enumerate(logs.get(match_id, []), 1))
        for seen in players:
            counts = Counter(seq for seq, _ in seen)
            totals["duplicate"] += sum(n - 1 for n in counts.values())
            got = dict(seen)
            totals["lost"] += sum(1 for n, k in expected.items() if got.get(n) != k)
            totals["phantom"] += sum(1 for n, k in got.items() if expected.get(n) != k)
    return dict(totals)


async def run(
    args: argparse.Namespace, figures: Figures | None = None
) -> dict[str, Any]:
    """Play the matches with bounded concurrency and gather the figures."""
    figures = figures or Figures()
    gate = asyncio.Semaphore(args.concurrency)
    progress = tqdm(total=args.matches, desc="matches", unit="match", file=sys.stderr)
    ws_url = args.url.rstrip("/") + "/ws"
    think_s = getattr(args, "think_s", 0.0)
    rng = random.Random(getattr(args, "seed", 0))

    async def one() -> None:
        async with gate:
            await play_match(
                ws_url, args.template, figures, args.timeout_s, think_s, rng
            )
            progress.update()

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(args.matches)))
    elapsed_s = time.perf_counter() - started
    progress.close()
    http_url = args.url.replace("ws://", "http://").replace("wss://", "https://")
    compared = await asyncio.to_thread(compare_with_kafka, http_url, figures)
    pool = await asyncio.to_thread(_get_json, f"{http_url}/api/pool")
    return {
        "template": args.template,
        "matches": args.matches,
        "concurrency": args.concurrency,
        "think_s": think_s,
        "matches_completed": figures.completed,
        "matches_failed": figures.failed,
        "lost_events": compared.get("lost", 0),
        "duplicate_events": compared.get("duplicate", 0),
        "phantom_events": compared.get("phantom", 0),
        "kafka_events": compared.get("kafka_events", 0),
        "reconnects": figures.reconnects,
        "longest_stall_s": round(figures.longest_stall_s, 2),
        "errors": dict(figures.errors),
        "stuck": figures.stuck,
        "elapsed_s": round(elapsed_s, 2),
        "matches_per_min": round(figures.completed / elapsed_s * 60, 2),
        "events_per_s": round(figures.public_events / elapsed_s, 2),
        "latency_ms": {
            name: {
                "p50": percentile(values, 0.50),
                "p90": percentile(values, 0.90),
                "p99": percentile(values, 0.99),
                "count": len(values),
            }
            for name, values in sorted(figures.latency_ms.items())
        },
        "latency_by_round_ms": {
            name: {
                str(number): {
                    "p50": percentile(values, 0.50),
                    "p99": percentile(values, 0.99),
                }
                for number, values in sorted(rounds.items())
            }
            for name, rounds in sorted(figures.by_round.items())
        },
        "pool": pool,
    }


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print and write the results."""
    parser = argparse.ArgumentParser(prog="python -m bench.loadtest")
    parser.add_argument("--url", help="ws://HOST:PORT of a running app")
    parser.add_argument("--start-app", metavar="CONFIG", help="start the app itself")
    parser.add_argument("--matches", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--template", choices=["classic", "duo"], default="classic")
    parser.add_argument("--timeout-s", type=float, default=120.0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--think-s",
        type=float,
        default=0.0,
        help="each human waits 0.5x to 1.5x this before every answer and vote "
        "(default 0: act at once, every match in step)",
    )
    parser.add_argument("--seed", type=int, default=0, help="for think times")
    parser.add_argument(
        "--proxy",
        choices=["haproxy", "default"],
        default="haproxy",
        help="Serve's proxy for --start-app (haproxy, as `make run` uses)",
    )
    args = parser.parse_args(argv)
    if not (args.url or args.start_app):
        parser.error("give --url of a running app, or --start-app CONFIG")

    if args.url:
        results = asyncio.run(run(args))
    else:
        with local_app(args.start_app, haproxy=args.proxy == "haproxy") as url:
            args.url = url
            results = asyncio.run(run(args))
    summary = {k: v for k, v in results.items() if k != "pool"}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    bad = ("matches_failed", "lost_events", "duplicate_events", "phantom_events")
    return 1 if any(results[key] for key in bad) else 0


@contextlib.contextmanager
def local_app(config: str, haproxy: bool = True) -> Iterator[str]:
    """Ray and the app on Serve, on a free port, for the length of a run."""
    import ray
    from ray import serve

    from bench.gateway import haproxy_env
    from events.broker import free_port
    from serve_app import build_app

    port = free_port()
    # HAProxy refuses an admin socket path over 97 bytes, and Ray puts it
    # under a 56-character node id: keep the folder name short.
    folder = Path(tempfile.mkdtemp(prefix="lt-"))
    env = haproxy_env(folder) if haproxy else {}
    os.environ.update(env)
    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(config, "robot-orchestra-bench"), name="robot-orchestra")
        yield f"ws://127.0.0.1:{port}"
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()
        for name in env:
            os.environ.pop(name, None)
        shutil.rmtree(folder, ignore_errors=True)


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


if __name__ == "__main__":
    raise SystemExit(main())
