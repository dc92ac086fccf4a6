"""One persona's pool: its consumer group, its workers, its scaling."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import ray
from confluent_kafka import KafkaError, Message
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError

from actors._figures import percentile
from actors._metrics import pool_metrics
from actors._scaling import ScalePolicy, capped_bounds
from actors.personas import Persona, PoolBounds
from actors.worker import RobotWorker, WireResult
from configs import AppSettings
from events import Envelope, Payload, encode, new_event
from events.consumer import Delivered, GroupConsumer
from events.errors import DeliveryError
from events.heads import CommandEnvelopeHead, CommandHead, decode_command_head
from events.producer import EventProducer
from events.robot_events import (
    GenerationFailed,
    PoolScaled,
    RobotStarted,
    RobotStopped,
)

logger = logging.getLogger(__name__)

_WORKER_FAILURES = (RayActorError, ActorUnavailableError)
# The pool reads only a command's head; workers decode the rest.
Record = Delivered[CommandEnvelopeHead]
_DEADLINE_MARGIN_S = 1.0
_FAILED = GenerationFailed.model_fields["type"].default
_MAX_ATTEMPTS = 3


@dataclass
class WorkerSlot:
    """A worker actor and what the pool knows of it."""

    worker_id: str
    handle: Any
    in_flight: int = 0
    draining: bool = False
    started_s: float = field(default_factory=time.monotonic)
    answered: bool = False


@dataclass
class PoolStats:
    """Running figures of a pool, for status and metrics."""

    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=2000))
    answered: int = 0
    fallbacks: int = 0
    failed: int = 0
    expired: int = 0
    duplicates: int = 0
    replaced: int = 0
    worker_calls: int = 0


class PersonaPool:
    """Consumes a persona's commands, runs them on workers, publishes results.

    Offsets are stored only after a result was confirmed by the broker.
    Think time is a timer per result, so it never holds up anything else.
    """

    def __init__(
        self,
        persona: Persona,
        settings: AppSettings,
        bootstrap: str,
        producer: EventProducer,
        owner: str,
        pools: int = 1,
    ) -> None:
        """Set up the pool; ``start`` starts its workers and joins the group.

        Args:
            pools: how many pools share the cluster's CPUs (personas times
                orchestrators), for the CPU cap on the pool's size.
        """
        self.persona = persona
        self.settings = settings
        self.owner = owner
        self.producer = producer
        topics = settings.kafka.topics
        self.topics = topics
        commands = topics.persona_commands(persona.name)
        self.consumer = GroupConsumer(
            settings.kafka,
            bootstrap,
            # Named after the topic, so each deployment's topics get groups
            # of their own and never wait on another's members.
            f"pool.{commands.name}",
            [commands],
            producer,
            decoder=decode_command_head,
            max_batch=max(settings.pool.batch_size * 4, 100),
        )
        self.policy = ScalePolicy(
            self._bounds(pools),
            settings.pool.upscale_delay_s,
            settings.pool.downscale_delay_s,
        )
        self.workers: dict[str, WorkerSlot] = {}
        self.stats = PoolStats()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._thinking = 0
        self._worker_ready = asyncio.Event()
        self._rng = random.Random(settings.pool.seed)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._metrics = pool_metrics()
        self._tags = {"persona": persona.name}
        think, scale = persona.think_time, settings.pool.think_time_scale
        self._thinks = scale > 0 and (think.answer_mean_s > 0 or think.vote_mean_s > 0)

    def _bounds(self, pools: int) -> PoolBounds:
        pool = self.settings.pool
        bounds = self.persona.pool
        if (
            not pool.cap_workers_to_cpus
            or pool.worker_num_cpus
            or pool.worker_resources
        ):
            return bounds  # placed by Ray, or the cap is turned off
        resources = ray.cluster_resources()  # type: ignore[no-untyped-call]
        capped = capped_bounds(bounds, float(resources.get("CPU", 1.0)), pools)
        if capped != bounds:
            logger.info(
                "pool capped persona=%s max_workers=%d->%d pools=%d",
                self.persona.name,
                bounds.max_workers,
                capped.max_workers,
                pools,
            )
        return capped

    # Lifecycle

    async def start(self) -> None:
        """Start the minimum of workers and join the group; wait for both.

        Ready means a command sent now is answered at once: the group has
        assigned its partitions (a new group holds its first join for about
        half the session timeout) and the workers answered a ping (a worker
        process takes a second or two to start). Without the wait the first
        robot answers of a fresh deployment came 2.5 s late. A part not
        ready after ``worker_start_timeout_s`` is logged, not waited for.
        """
        await self.resize(self.persona.pool.min_workers, "starting at min_workers")
        await self.consumer.start()
        self._spawn(self._dispatch_loop())
        timeout_s = self.settings.pool.worker_start_timeout_s
        slots = list(self.workers.values())
        pings = asyncio.gather(*(self._first_ping(s, timeout_s) for s in slots))
        assigned, _ = await asyncio.gather(self.consumer.assigned(timeout_s), pings)
        if not assigned:
            logger.warning(
                "no partitions assigned yet persona=%s after_s=%.0f",
                self.persona.name,
                timeout_s,
            )

    async def _first_ping(self, slot: WorkerSlot, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(slot.handle.ping.remote(), timeout_s)
        except (*_WORKER_FAILURES, TimeoutError, GetTimeoutError) as exc:
            # The health check replaces it; starting goes on without it.
            logger.warning(
                "worker not ready persona=%s worker_id=%s error=%s",
                self.persona.name,
                slot.worker_id,
                type(exc).__name__,
            )
        else:
            slot.answered = True

    async def stop(self) -> None:
        """Leave the group and stop every worker."""
        await self.consumer.close()
        for task in list(self._tasks):
            task.cancel()
        for slot in list(self.workers.values()):
            ray.kill(slot.handle, no_restart=True)
        self.workers.clear()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Dispatch

    async def _dispatch_loop(self) -> None:
        async for batch in self.consumer.batches():
            now = datetime.now(UTC)
            fresh = [r for r in batch if self._admit(r, now)]
            size = self._chunk_size(len(fresh))
            for i in range(0, len(fresh), size):
                self._spawn(self._run_chunk(fresh[i : i + size]))

    def _chunk_size(self, commands: int) -> int:
        """Commands per worker call: spread over the live workers, at most batch_size.

        A burst smaller than ``workers * batch_size`` still keeps every
        worker busy; a backlog goes in full chunks, whose Ray call costs
        the same as a small one's.
        """
        workers = max(1, len(self._live()))
        return max(1, min(self.settings.pool.batch_size, -(-commands // workers)))

    def _admit(self, record: Record, now: datetime) -> bool:
        payload = record.envelope.payload
        if payload.command_id in self._seen:
            # A repeat (engine restart or redelivery): the first copy answers.
            self.stats.duplicates += 1
            self.consumer.done(record)
            return False
        self._seen[payload.command_id] = None
        while len(self._seen) > 100_000:
            self._seen.popitem(last=False)
        if payload.deadline <= now:
            self.stats.expired += 1
            self._spawn(self._expire(record))
            return False
        return True

    async def _expire(self, record: Record) -> None:
        """Answer a command whose deadline passed with a ``generation_failed``."""
        command = record.envelope.payload
        failed = GenerationFailed(
            command_id=command.command_id,
            robot_id=command.robot_id,
            seat=command.seat,
            round=command.round,
            reason="deadline passed before a worker took the command",
            latency_ms=0.0,
            brain="none",
        )
        await self._publish([(record, encode(self._wrap(record, failed)))])

    async def _run_chunk(self, records: list[Record]) -> None:
        received = time.monotonic()
        # Workers get the records' bytes as consumed and hand back encoded
        # results, which go to Kafka as they are: nothing is encoded or
        # decoded twice on the way.
        commands = [r.value for r in records]
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            slot = await self._pick_worker()
            slot.in_flight += len(records)
            self.stats.worker_calls += 1
            try:
                results: list[WireResult | str] = await slot.handle.generate.remote(
                    commands
                )
                break
            except _WORKER_FAILURES as exc:
                logger.warning(
                    "worker lost persona=%s worker_id=%s attempt=%d error=%s",
                    self.persona.name,
                    slot.worker_id,
                    attempt,
                    type(exc).__name__,
                )
                await self._replace(slot, "died during a command")
            finally:
                slot.in_flight -= len(records)
        else:
            logger.warning("commands left for redelivery persona=%s", self.persona.name)
            return
        due: list[tuple[Record, bytes]] = []
        for record, result in zip(records, results, strict=True):
            if isinstance(result, str):
                # Its head read, the rest did not: a poison record.
                self._spawn(self.consumer.dead_letter(record, result))
                continue
            data, kind, latency_ms, fallback = result
            self._record_stats(kind, latency_ms, fallback)
            delay = self._think_delay(record.envelope.payload, received)
            if delay > 0:
                self._spawn(self._publish_after(delay, record, data))
            else:
                due.append((record, data))
        # Results with no think time left go out together, not a task each.
        await self._publish(due)

    async def _pick_worker(self) -> WorkerSlot:
        while True:
            live = [s for s in self.workers.values() if not s.draining]
            if live:
                return min(live, key=lambda s: s.in_flight)
            self._worker_ready.clear()
            await self._worker_ready.wait()

    def _think_delay(self, command: CommandHead, received: float) -> float:
        if not self._thinks:
            return 0.0
        think = self.persona.think_time
        if command.type == "generate_answer":
            mean = think.answer_mean_s
        else:
            mean = think.vote_mean_s
        mean *= self.settings.pool.think_time_scale
        if mean <= 0:
            return 0.0
        wanted = mean * (1 + think.spread * self._rng.uniform(-1, 1))
        elapsed = time.monotonic() - received
        left = (command.deadline - datetime.now(UTC)).total_seconds()
        return max(0.0, min(wanted - elapsed, left - _DEADLINE_MARGIN_S))

    async def _publish_after(self, delay: float, record: Record, result: bytes) -> None:
        # A result waiting out its think time is in flight for the broker's
        # offsets, not for the workers: it is left out of the scaling signal.
        self._thinking += 1
        try:
            await asyncio.sleep(delay)
        finally:
            self._thinking -= 1
        await self._publish([(record, result)])

    async def _publish(self, pairs: list[tuple[Record, bytes]]) -> None:
        if not pairs:
            return
        topic = self.topics.robot_events
        confirmation = _Confirmation(len(pairs))
        try:
            for record, result in pairs:
                # Results are keyed by match, like the commands they answer.
                self.producer.append_encoded_nowait(
                    topic, record.envelope.key, result, confirmation.on_delivery
                )
            await confirmation.wait()
        except Exception as exc:
            # Not marked done: after a restart the command is consumed again.
            logger.warning(
                "result not published persona=%s error=%s", self.persona.name, exc
            )
            return
        self.consumer.done_many([record for record, _ in pairs])

    def _record_stats(self, kind: str, latency_ms: float, fallback: bool) -> None:
        if kind == _FAILED:
            self.stats.failed += 1
            return
        self.stats.answered += 1
        self.stats.latencies_ms.append(latency_ms)
        self._metrics.latency_ms.observe(latency_ms, self._tags)
        if fallback:
            self.stats.fallbacks += 1
            self._metrics.fallbacks.inc(1, self._tags)

    def _wrap(self, record: Record, payload: Payload) -> Envelope:
        return new_event(
            payload,
            match_id=record.envelope.match_id,
            producer=f"orchestrator-{self.owner}",
            causation_id=record.envelope.event_id,
        )

    # Scaling and health

    async def scale(self) -> None:
        """Grow or shrink toward what lag and in-flight work call for."""
        lag, in_flight = self.consumer.lag(), self.in_flight() - self._thinking
        self._report(lag, in_flight)
        decision = self.policy.decide(
            len(self._live()), lag, in_flight, time.monotonic()
        )
        if decision is not None:
            await self.resize(decision.workers, decision.reason, lag, in_flight)
        for slot in [
            s for s in self.workers.values() if s.draining and not s.in_flight
        ]:
            await self._stop_worker(slot, "scaled down")

    def _report(self, lag: int, in_flight: int) -> None:
        tags = {"persona": self.persona.name}
        metrics = pool_metrics()
        metrics.workers.set(len(self._live()), tags)
        metrics.lag.set(lag, tags)
        metrics.in_flight.set(in_flight, tags)

    async def resize(
        self, workers: int, reason: str, lag: int = 0, in_flight: int = 0
    ) -> None:
        """Start or drain workers until ``workers`` are live, with a pool event."""
        live = self._live()
        before = len(live)
        for _ in range(workers - before):
            self._start_worker()
        idle_first = sorted(live, key=lambda s: s.in_flight)
        for slot in idle_first[: max(0, before - workers)]:
            slot.draining = True
        if workers != before:
            logger.info(
                "pool scaled persona=%s workers=%d->%d reason=%s",
                self.persona.name,
                before,
                workers,
                reason,
            )
            await self._pool_event(
                PoolScaled(
                    persona=self.persona.name,
                    workers_before=before,
                    workers_after=workers,
                    reason=reason,
                    lag=lag,
                    in_flight=in_flight,
                )
            )

    async def check_health(self) -> None:
        """Ping every worker; replace the ones that do not answer in time."""
        await asyncio.gather(*(self._check(s) for s in list(self.workers.values())))

    async def _check(self, slot: WorkerSlot) -> None:
        pool = self.settings.pool
        try:
            await asyncio.wait_for(slot.handle.ping.remote(), pool.health_timeout_s)
        except _WORKER_FAILURES:
            await self._replace(slot, "died (health check)")
        except (TimeoutError, GetTimeoutError):
            starting_s = time.monotonic() - slot.started_s
            if slot.answered or starting_s > pool.worker_start_timeout_s:
                await self._replace(slot, "failed its health check")
        else:
            slot.answered = True

    async def _replace(self, slot: WorkerSlot, reason: str) -> None:
        if self.workers.pop(slot.worker_id, None) is None:
            return
        self.stats.replaced += 1
        ray.kill(slot.handle, no_restart=True)
        await self._pool_event(
            RobotStopped(
                persona=self.persona.name, robot_id=slot.worker_id, reason=reason
            )
        )
        if not slot.draining:
            self._start_worker()

    def _start_worker(self) -> None:
        pool = self.settings.pool
        worker_id = f"{self.persona.name}-{uuid.uuid4().hex[:8]}"
        handle = RobotWorker.options(  # type: ignore[attr-defined]
            max_concurrency=self.persona.pool.max_concurrency,
            num_cpus=pool.worker_num_cpus,
            resources=dict(pool.worker_resources),
        ).remote(worker_id, self.persona, pool, str(self.settings.prompts_file))
        self.workers[worker_id] = WorkerSlot(worker_id, handle)
        self._worker_ready.set()
        self._spawn(
            self._pool_event(
                RobotStarted(persona=self.persona.name, robot_id=worker_id)
            )
        )

    async def _stop_worker(self, slot: WorkerSlot, reason: str) -> None:
        self.workers.pop(slot.worker_id, None)
        ray.kill(slot.handle, no_restart=True)
        await self._pool_event(
            RobotStopped(
                persona=self.persona.name, robot_id=slot.worker_id, reason=reason
            )
        )

    async def _pool_event(self, payload: Payload) -> None:
        event = new_event(payload, match_id=None, producer=f"orchestrator-{self.owner}")
        try:
            await self.producer.append(self.topics.pool_events, event)
        except Exception as exc:
            logger.warning("pool event not written type=%s error=%s", payload.type, exc)

    # Reading

    def _live(self) -> list[WorkerSlot]:
        return [s for s in self.workers.values() if not s.draining]

    def in_flight(self) -> int:
        """Commands taken from Kafka and not yet published."""
        return self.consumer.in_flight()

    def status(self) -> dict[str, Any]:
        """Workers, busy, in-flight, lag, latency percentiles and fallbacks."""
        stats = self.stats
        return {
            "workers": len(self._live()),
            "workers_answered": sum(1 for s in self._live() if s.answered),
            "partitions": len(self.consumer.assignment()),
            "draining": sum(1 for s in self.workers.values() if s.draining),
            "busy": sum(1 for s in self.workers.values() if s.in_flight),
            "in_flight": self.in_flight(),
            "thinking": self._thinking,
            "lag": self.consumer.lag(),
            "latency_ms_p50": percentile(stats.latencies_ms, 0.50),
            "latency_ms_p99": percentile(stats.latencies_ms, 0.99),
            "answered": stats.answered,
            "fallbacks": stats.fallbacks,
            "failed": stats.failed,
            "expired": stats.expired,
            "duplicates": stats.duplicates,
            "replaced": stats.replaced,
            "worker_calls": stats.worker_calls,
            "bounds": self.policy.bounds.model_dump(),
        }


class _Confirmation:
    """One awaitable for the broker's acknowledgement of several records.

    Cheaper than ``append_many``'s future per record for a chunk of results.
    librdkafka calls ``on_delivery`` on the producer's callback thread (or
    wherever ``flush`` runs), so the count is kept under a lock and the loop
    is woken once, when the last record is acknowledged.
    """

    def __init__(self, records: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._future: asyncio.Future[None] = self._loop.create_future()
        self._left = records
        self._error: DeliveryError | None = None
        self._lock = threading.Lock()

    def on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        """librdkafka's delivery callback for each of the records."""
        with self._lock:
            if err is not None and self._error is None:
                key = msg.key()
                text_key = key.decode("utf-8", "replace") if key else None
                self._error = DeliveryError(msg.topic() or "?", text_key, str(err))
            self._left -= 1
            if self._left:
                return
        with contextlib.suppress(RuntimeError):  # the loop was closed
            self._loop.call_soon_threadsafe(self._settle)

    async def wait(self) -> None:
        """Return when every record is acknowledged.

        Raises:
            DeliveryError: the broker refused at least one of the records.
        """
        await self._future

    def _settle(self) -> None:
        if self._future.done():
            return
        if self._error is not None:
            self._future.set_exception(self._error)
        else:
            self._future.set_result(None)
