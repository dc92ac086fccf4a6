"""Robot commands per second through the real pool, against bare Kafka relays.

What it measures: ``--commands N`` GenerateAnswer envelopes are written to a
persona's command topic while the consumer under test is frozen (SIGSTOP);
then it is released and the clock runs until the last of the N results has
been read back. Three consumers, one after the other on the same embedded
broker, each warmed up first:

- ``pipeline``: Kafka -> the real ``Orchestrator`` actor (think time 0, the
  offline brain, one persona with a pool fixed at ``--workers``, by default
  the CPU count: on two cores 2 workers moved 0.39 to 0.41 of the relay's
  rate, 4 workers 0.33, 1 worker 0.35) ->
  ``RobotWorker`` actors -> ``robot-events``;
- ``relay``: one process, confluent-kafka directly (batched consume, an
  idempotent producer, offsets stored after delivery) with the project's
  codec: decode the command, wrap a trivial ``AnswerGenerated``, encode;
- ``relay_json``: the same relay with ``json`` instead of the codec, the
  ceiling of the Kafka clients alone.

The ratio is pipeline / relay. A paced phase then sends ``--latency-rate``
commands/s to each and reports command->result latency: the command
envelope's ``occurred_at`` against the moment the reader here gets the
result. CPU use per process during the throughput phase says where the
time goes; ``--profile DIR`` adds py-spy samples of the orchestrator and one
worker (those runs are slower: not benchmark figures).

What limits it: the broker, Ray, the actors, the relays and the reader share
the machine (2 cores here), so absolute figures drift from run to run;
compare the ratios of one run. The broker keeps everything in memory (no
disk, no replication). The reader finds result ids by substring, not
pydantic, to stay light.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, Message, Producer, TopicPartition

from actors.personas import PersonaBook
from bench._common import (
    BenchError,
    CpuMeter,
    local_ray,
    note,
    percentile,
    pss_kb,
    py_spy,
    rate,
    rss_kb,
    table,
    wait_until_quiet,
    write_json,
)
from configs import CONFIG_DIR, AppSettings, PoolSettings
from events import decode, encode, new_event
from events.broker import EmbeddedBroker
from events.client_config import consumer_config, producer_config
from events.keys import located, partition_for
from events.robot_events import AnswerGenerated, GenerateAnswer
from events.settings import KafkaSettings, Topics, TopicSettings
from events.topics import ensure_topics

PARTITIONS = 6
_CAUSE = b'"causation_id":"'


@dataclass(frozen=True)
class Target:
    """A consumer under test: its process and the topics it reads and writes."""

    name: str
    pid: int
    commands: TopicSettings
    results: TopicSettings
    worker_pids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Command:
    """An encoded command ready to write, with its id and creation time."""

    event_id: str
    key: str
    value: bytes
    occurred_at: float


@dataclass
class Run:
    """The figures of one target at one batch size."""

    name: str
    commands: int
    batch_size: int
    elapsed_s: float = 0.0
    commands_per_s: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    cpu_pct: dict[str, float] = field(default_factory=dict)
    cpu_us_per_command: dict[str, float] = field(default_factory=dict)
    memory_mb: dict[str, float] = field(default_factory=dict)


# Writing commands and reading results


class CommandWriter:
    """Encodes GenerateAnswer envelopes and writes them with an idempotent producer."""

    def __init__(self, kafka: KafkaSettings, bootstrap: str, persona: str) -> None:
        self._producer = Producer(producer_config(kafka, bootstrap))
        self._persona = persona

    def encode(self, count: int) -> list[Command]:
        """``count`` fresh commands, each for a match of its own."""
        deadline = datetime.now(UTC) + timedelta(hours=1)
        commands = []
        for n in range(count):
            envelope = new_event(
                GenerateAnswer(
                    command_id=f"cmd-{uuid.uuid4().hex}",
                    robot_id=f"robot-{n % 7}",
                    persona=self._persona,
                    seat="amber",
                    round=1,
                    prompt_id="p002",
                    prompt="Describe your perfect sandwich in one sentence.",
                    max_chars=280,
                    deadline=deadline,
                ),
                match_id=f"m-{uuid.uuid4().hex[:12]}",
                producer="bench",
            )
            commands.append(
                Command(
                    str(envelope.event_id),
                    envelope.key,
                    encode(envelope),
                    envelope.occurred_at.timestamp(),
                )
            )
        return commands

    def write(
        self, topic: TopicSettings, commands: Sequence[Command], flush: bool = True
    ) -> None:
        """Queue the commands on their partitions; with ``flush``, wait for acks."""
        for command in commands:
            partition = partition_for(command.key, topic.partitions)
            _produce(self._producer, topic.name, command.key, command.value, partition)
        self._producer.poll(0)
        if flush and self._producer.flush(30):
            raise BenchError(f"commands to {topic.name} not acknowledged in 30 s")


def _produce(
    producer: Producer,
    topic: str,
    key: str | bytes | None,
    value: bytes,
    partition: int,
    on_delivery: Callable[[Any, Message], None] | None = None,
) -> None:
    while True:
        try:
            producer.produce(
                topic, value, key, partition=partition, on_delivery=on_delivery
            )
            return
        except BufferError:
            producer.poll(0.05)


class ResultReader:
    """Reads a results topic from its start and notes when each result arrives."""

    def __init__(self, bootstrap: str, topic: TopicSettings) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                # The broker holds a fetch up to fetch.wait.max.ms (500 by
                # default) although records arrived; the reader must not add that.
                "fetch.wait.max.ms": 10,
            }
        )
        self._consumer.assign(
            [TopicPartition(topic.name, p, -2) for p in range(topic.partitions)]
        )

    def poll(self, timeout_s: float) -> list[tuple[str, float]]:
        """The causation ids of results available now, with their arrival time."""
        first = self._consumer.poll(timeout_s)
        if first is None:
            return []
        messages = [first, *self._consumer.consume(10_000, 0)]
        arrived = time.time()
        return [(_cause(m), arrived) for m in messages if m.error() is None]

    def read(self, wanted: set[str], timeout_s: float) -> dict[str, float]:
        """Arrival times of the results of ``wanted`` commands, waiting for all."""
        arrivals: dict[str, float] = {}
        deadline = time.monotonic() + timeout_s
        while len(arrivals) < len(wanted):
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{len(arrivals)} of {len(wanted)} results arrived in "
                    f"{timeout_s} s; is the consumer under test alive?"
                )
            for cause, arrived in self.poll(0.1):
                if cause in wanted:
                    arrivals.setdefault(cause, arrived)
        return arrivals

    def close(self) -> None:
        """Leave the broker."""
        self._consumer.close()


def _cause(message: Message) -> str:
    value = message.value() or b""
    start = value.find(_CAUSE) + len(_CAUSE)
    if start < len(_CAUSE):
        return str(json.loads(value).get("causation_id"))
    return value[start : start + 36].decode()


# The relays: the ceiling the pipeline is compared against


def relay_main(
    kafka: KafkaSettings,
    bootstrap: str,
    persona: str,
    batch: int,
    codec: bool,
    stop: EventType,
) -> None:
    """Consume commands, reply to each, store its offset once the reply is acked."""
    commands = kafka.topics.persona_commands(persona)
    results = kafka.topics.robot_events
    reply = _reply_codec if codec else _reply_json
    # The same client settings as the pool's consumer and producer.
    consumer = Consumer(consumer_config(kafka, bootstrap, f"relay.{commands.name}"))
    consumer.assign(
        [TopicPartition(commands.name, p) for p in range(commands.partitions)]
    )
    producer = Producer(producer_config(kafka, bootstrap))
    while not stop.is_set():
        # poll() returns on the first record and consume(n, 0) takes what is
        # already fetched; consume(n, t) alone waits all of t for n records.
        first = consumer.poll(0.1)
        if first is not None:
            for message in [first, *consumer.consume(batch - 1, 0)]:
                if message.error() is None:
                    _relay_one(consumer, producer, message, results, reply)
        producer.poll(0)
    producer.flush(10)
    consumer.close()


def _relay_one(
    consumer: Consumer,
    producer: Producer,
    message: Message,
    results: TopicSettings,
    reply: Callable[[bytes], bytes],
) -> None:
    topic, partition, offset = located(message)
    stored = [TopicPartition(topic, partition, offset + 1)]
    key = message.key()
    text_key = key.decode() if isinstance(key, bytes) else str(key)

    def on_delivery(err: Any, _msg: Message) -> None:
        if err is None:
            consumer.store_offsets(offsets=stored)

    _produce(
        producer,
        results.name,
        key,
        reply(message.value() or b""),
        partition_for(text_key, results.partitions),
        on_delivery,
    )


def _reply_codec(value: bytes) -> bytes:
    command = decode(value)
    payload = command.payload
    assert isinstance(payload, GenerateAnswer)
    result = AnswerGenerated(
        command_id=payload.command_id,
        robot_id=payload.robot_id,
        seat=payload.seat,
        round=payload.round,
        text="a relayed answer",
        latency_ms=0.0,
        brain="relay",
    )
    return encode(
        new_event(
            result,
            match_id=command.match_id,
            producer="relay",
            causation_id=command.event_id,
        )
    )


def _reply_json(value: bytes) -> bytes:
    command = json.loads(value)
    payload = command["payload"]
    result = {
        "event_id": str(uuid.uuid4()),
        "type": "answer_generated",
        "schema_version": command["schema_version"],
        "match_id": command["match_id"],
        "occurred_at": datetime.now(UTC).isoformat(),
        "producer": "relay",
        "causation_id": command["event_id"],
        "payload": {
            "type": "answer_generated",
            "command_id": payload["command_id"],
            "robot_id": payload["robot_id"],
            "seat": payload["seat"],
            "round": payload["round"],
            "text": "a relayed answer",
            "latency_ms": 0.0,
            "brain": "relay",
        },
    }
    return json.dumps(result, separators=(",", ":")).encode()


@contextlib.contextmanager
def running_relay(
    name: str, bootstrap: str, kafka: KafkaSettings, persona: str, batch: int
) -> Iterator[Target]:
    """A relay in a process of its own, stopped on exit."""
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    process = context.Process(
        target=relay_main,
        args=(kafka, bootstrap, persona, batch, name == "relay", stop),
        daemon=True,
    )
    process.start()
    assert process.pid is not None
    try:
        commands = kafka.topics.persona_commands(persona)
        yield Target(name, process.pid, commands, kafka.topics.robot_events)
    finally:
        stop.set()
        process.join(15)
        if process.is_alive():
            process.kill()
            process.join(5)


# The pipeline: the real orchestrator and its workers


def _pid(_actor: Any) -> int:
    return os.getpid()


def write_personas(folder: Path, workers: int) -> tuple[Path, str]:
    """A personas file with the first shipped persona, its pool fixed at ``workers``."""
    persona = PersonaBook.load(CONFIG_DIR / "personas.yaml").personas[0]
    data = persona.model_dump(mode="json")
    data["pool"].update(min_workers=workers, max_workers=workers)
    data["brain"].update(kind="offline", simulated_latency_s=0.0)
    path = folder / "personas.yaml"
    path.write_text(yaml.safe_dump({"personas": [data]}))
    return path, persona.name


@contextlib.contextmanager
def running_pool(
    bootstrap: str, kafka: KafkaSettings, personas_file: Path, persona: str, batch: int
) -> Iterator[Target]:
    """An orchestrator (and its workers) on the local Ray, shut down on exit."""
    import ray

    from actors.orchestrator import Orchestrator

    settings = AppSettings(
        kafka=kafka,
        pool=PoolSettings(think_time_scale=0.0, batch_size=batch),
        personas_file=personas_file,
    )
    handle = Orchestrator.options(  # type: ignore[attr-defined]
        name=f"bench-orchestrator-{uuid.uuid4().hex[:8]}"
    ).remote(0, settings, bootstrap)
    try:
        ray.get(handle.ready.remote(), timeout=120)
        yield Target(
            "pipeline",
            ray.get(handle.__ray_call__.remote(_pid)),
            kafka.topics.persona_commands(persona),
            kafka.topics.robot_events,
            _worker_pids(handle, persona),
        )
    finally:
        with contextlib.suppress(Exception):
            ray.get(handle.shutdown.remote(), timeout=30)
        ray.kill(handle, no_restart=True)


def _worker_pids(orchestrator: Any, persona: str) -> tuple[int, ...]:
    import ray
    from ray.exceptions import RayActorError

    # On a busy machine a slow-starting worker can miss its health check and
    # be replaced while we ask for its pid; ask the pool again then.
    for _ in range(10):
        workers = ray.get(orchestrator.workers.remote())[persona]
        try:
            return tuple(ray.get([w.__ray_call__.remote(_pid) for w in workers]))
        except RayActorError:
            time.sleep(1)
    raise BenchError(f"the {persona} pool kept replacing its workers")


# Measuring


def throughput(
    target: Target,
    writer: CommandWriter,
    reader: ResultReader,
    commands: Sequence[Command],
    timeout_s: float,
) -> float:
    """Seconds from releasing the frozen target with ``commands`` queued
    until the last result arrives."""
    os.kill(target.pid, signal.SIGSTOP)
    try:
        writer.write(target.commands, commands)
    finally:
        released = time.time()
        os.kill(target.pid, signal.SIGCONT)
    arrivals = reader.read({c.event_id for c in commands}, timeout_s)
    return max(arrivals.values()) - released


def latencies_ms(
    target: Target,
    writer: CommandWriter,
    reader: ResultReader,
    rate_per_s: float,
    seconds: float,
) -> list[float]:
    """Command->result latencies with commands sent at a steady pace."""
    tick_s = 0.01
    per_tick = max(1, round(rate_per_s * tick_s))
    sent: dict[str, float] = {}
    found: list[float] = []
    next_tick = time.monotonic()
    end = next_tick + seconds
    while time.monotonic() < end or len(found) < len(sent):
        now = time.monotonic()
        if now > end + 60:
            raise BenchError(f"{len(found)} of {len(sent)} paced results arrived")
        if next_tick <= now < end:
            commands = writer.encode(per_tick)
            writer.write(target.commands, commands, flush=False)
            sent.update((c.event_id, c.occurred_at) for c in commands)
            next_tick += tick_s
        wait_s = max(0.0, min(next_tick - time.monotonic(), 0.005))
        for cause, arrived in reader.poll(wait_s):
            if cause in sent:
                found.append((arrived - sent[cause]) * 1000)
    return found


def measure(target: Target, writer: CommandWriter, run: Run, context: Context) -> Run:
    """Warm up, then the throughput and latency phases of one target."""
    options = context.options
    reader = ResultReader(context.bootstrap, target.results)
    try:
        warmup = writer.encode(max(500, 2 * run.batch_size * options.workers))
        writer.write(target.commands, warmup)
        reader.read({c.event_id for c in warmup}, timeout_s=120)
        elapsed = [
            _timed(target, writer, reader, run, context) for _ in range(options.repeat)
        ]
        run.elapsed_s = round(sorted(elapsed)[len(elapsed) // 2], 3)
        run.commands_per_s = rate(run.commands, run.elapsed_s)
        if options.latency_seconds > 0:
            found = latencies_ms(
                target, writer, reader, options.latency_rate, options.latency_seconds
            )
            run.p50_ms, run.p99_ms = percentile(found, 0.5), percentile(found, 0.99)
    finally:
        reader.close()
    run.memory_mb = _memory(target)
    return run


def _timed(
    target: Target,
    writer: CommandWriter,
    reader: ResultReader,
    run: Run,
    context: Context,
) -> float:
    """One throughput phase; CPU per process and profiles of the first."""
    meter = CpuMeter(
        {
            target.name: [target.pid],
            "workers": target.worker_pids,
            "broker": [context.broker_pid],
            "reader": [os.getpid()],
        }
    )
    commands = writer.encode(run.commands)
    with contextlib.ExitStack() as stack:
        for pid, role in _profiled(
            target, None if run.cpu_pct else context.options.profile
        ):
            output = context.options.profile / f"{role}-b{run.batch_size}.txt"
            stack.enter_context(py_spy(pid, output, "--gil", "--threads"))
        meter.start()
        elapsed = throughput(
            target, writer, reader, commands, context.options.timeout_s
        )
        percent = meter.stop()
    if not run.cpu_pct:
        run.cpu_pct = percent
        run.cpu_us_per_command = {
            name: round(used / run.commands * 1e6, 1)
            for name, used in meter.used_s.items()
        }
    return elapsed


def _memory(target: Target) -> dict[str, float]:
    figures = {"rss_mb": round(rss_kb(target.pid) / 1024, 1)}
    if target.worker_pids:
        count = len(target.worker_pids)
        rss = sum(rss_kb(p) for p in target.worker_pids) / count / 1024
        pss = sum(pss_kb(p) for p in target.worker_pids) / count / 1024
        figures.update(worker_rss_mb=round(rss, 1), worker_pss_mb=round(pss, 1))
    return figures


def _profiled(target: Target, folder: Path | None) -> list[tuple[int, str]]:
    if folder is None or target.name != "pipeline":
        return []
    return [(target.pid, "orchestrator"), (target.worker_pids[0], "worker")]


@dataclass(frozen=True)
class Context:
    """What every measurement of one run shares."""

    bootstrap: str
    broker_pid: int
    personas_file: Path
    persona: str
    options: argparse.Namespace


def kafka_settings(bootstrap: str, tag: str) -> KafkaSettings:
    """Settings on the bench broker with topics named after ``tag``."""

    def topic(name: str, partitions: int = PARTITIONS) -> TopicSettings:
        return TopicSettings(name=f"{tag}-{name}", partitions=partitions)

    return KafkaSettings(
        bootstrap_servers=bootstrap,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1500,
        topics=Topics(
            match_events=topic("match-events"),
            robot_commands=topic("commands"),
            robot_events=topic("results"),
            pool_events=topic("pool-events", 1),
            dead_letters=topic("dead-letters", 1),
        ),
    )


def compare(context: Context, batch: int) -> dict[str, Run]:
    """The relays, then the pipeline, at one batch size, each on fresh topics."""
    options, runs = context.options, {}
    consume_batch = max(batch * 4, 100)  # what the pool's consumer takes per poll
    for name in ("relay", "relay_json", "pipeline"):
        kafka = kafka_settings(context.bootstrap, f"bench-{uuid.uuid4().hex[:6]}")
        ensure_topics(kafka, context.bootstrap, [context.persona])
        writer = CommandWriter(kafka, context.bootstrap, context.persona)
        size = batch if name == "pipeline" else consume_batch
        note(f"{name}: batch={size} commands={options.commands}")
        run = Run(name, options.commands, size)
        if name == "pipeline":
            target = running_pool(
                context.bootstrap, kafka, context.personas_file, context.persona, batch
            )
        else:
            target = running_relay(
                name, context.bootstrap, kafka, context.persona, consume_batch
            )
        with target as running:
            runs[name] = measure(running, writer, run, context)
    return runs


def row(runs: dict[str, Run], workers: int) -> dict[str, Any]:
    """One line of the table and of the JSON ``runs``."""
    pool, relay, bare = runs["pipeline"], runs["relay"], runs["relay_json"]
    line: dict[str, Any] = {
        "batch_size": pool.batch_size,
        "commands": pool.commands,
        "workers": workers,
        "commands_per_s": pool.commands_per_s,
        "elapsed_s": pool.elapsed_s,
        "p50_ms": pool.p50_ms,
        "p99_ms": pool.p99_ms,
        "ratio": _ratio(pool, relay),
        "ratio_json": _ratio(pool, bare),
        "cpu_pct": pool.cpu_pct,
        "cpu_us_per_command": pool.cpu_us_per_command,
        **pool.memory_mb,
    }
    for prefix, run in (("relay", relay), ("relay_json", bare)):
        line[f"{prefix}_commands_per_s"] = run.commands_per_s
        line[f"{prefix}_elapsed_s"] = run.elapsed_s
        line[f"{prefix}_batch_size"] = run.batch_size
        line[f"{prefix}_p50_ms"] = run.p50_ms
        line[f"{prefix}_p99_ms"] = run.p99_ms
        line[f"{prefix}_cpu_pct"] = run.cpu_pct
        line[f"{prefix}_cpu_us_per_command"] = run.cpu_us_per_command
    return line


def _ratio(run: Run, reference: Run) -> float | None:
    if not reference.commands_per_s:
        return None
    return round(run.commands_per_s / reference.commands_per_s, 3)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Compare at every batch size; print and return the results."""
    options = parse_args(argv)
    load = wait_until_quiet()
    rows = []
    with tempfile.TemporaryDirectory() as folder, EmbeddedBroker() as broker:
        personas_file, persona = write_personas(Path(folder), options.workers)
        assert broker.pid is not None
        context = Context(broker.bootstrap, broker.pid, personas_file, persona, options)
        with local_ray(num_cpus=4):
            for batch in options.batch_size:
                rows.append(row(compare(context, batch), options.workers))
    results: dict[str, Any] = {
        **max(rows, key=lambda r: r["ratio"] or 0),
        "latency_rate_per_s": options.latency_rate if options.latency_seconds else None,
        "load_before": load,
        "cpus": os.cpu_count(),
        "runs": rows,
    }
    print(summary(rows, options))
    if options.json:
        write_json(options.json, results)
    return results


def summary(rows: list[dict[str, Any]], options: argparse.Namespace) -> str:
    """The tables printed at the end."""
    head = (
        f"robot commands: {options.commands} per phase, {options.workers} workers, "
        f"think time 0, offline brain; latency at {options.latency_rate:g} "
        "commands/s. Broker, Ray, relays and reader share the machine: compare "
        "ratios, not absolute figures."
    )
    speed = ["batch_size", "commands_per_s", "relay_commands_per_s"]
    speed += ["relay_json_commands_per_s", "ratio", "ratio_json", "elapsed_s"]
    latency = ["batch_size", "p50_ms", "p99_ms", "relay_p50_ms", "relay_p99_ms"]
    cpu = [
        {"batch_size": r["batch_size"], "target": name, **_cpu(r, name)}
        for r in rows
        for name in ("pipeline", "relay", "relay_json")
    ]
    cpu_columns = ["batch_size", "target", "process", "workers", "broker", "reader"]
    return "\n\n".join(
        [
            head,
            table(rows, speed),
            table(rows, latency),
            "CPU microseconds per command (first throughput phase), per "
            "process; process = the orchestrator or the relay:\n"
            + table(cpu, cpu_columns),
        ]
    )


def _cpu(line: dict[str, Any], name: str) -> dict[str, Any]:
    key = "cpu_us_per_command" if name == "pipeline" else f"{name}_cpu_us_per_command"
    figures = dict(line[key])
    figures["process"] = figures.pop(name, None)
    return figures


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline")
    parser.add_argument("--commands", type=int, default=20_000, help="per phase")
    parser.add_argument(
        "--batch-size",
        type=int,
        nargs="+",
        default=[PoolSettings().batch_size],
        help="pool.batch_size, commands per worker call; several run in turn "
        "(default: the configured default)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="fixed pool size (default: the CPU count, the most the pool's CPU "
        "cap gives one persona alone)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="throughput phases; the median counts"
    )
    parser.add_argument("--latency-rate", type=float, default=1000.0)
    parser.add_argument(
        "--latency-seconds", type=float, default=3.0, help="0 skips latency"
    )
    parser.add_argument("--timeout-s", type=float, default=300.0)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--profile", type=Path, help="folder for py-spy samples (slows the run)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
