"""The orchestrator actor: runs every persona's pool from Kafka consumer groups."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ray

from actors._heap import HeapKeeper
from actors._logging import setup_logging
from actors._pool import PersonaPool
from actors.personas import PersonaBook
from configs import AppSettings
from events.producer import EventProducer

logger = logging.getLogger(__name__)

NAMESPACE = "robot-orchestra"


def orchestrator_name(index: int) -> str:
    """The Ray actor name of orchestrator ``index``."""
    return f"robot-orchestra-orchestrator-{index}"


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class Orchestrator:
    """Consumes each persona's command topic in that persona's consumer group.

    Several orchestrators may run at once: they join the same groups and
    share the partitions. A restarted orchestrator rejoins and resumes from
    the committed offsets; its workers are its children and restart with it.
    """

    def __init__(self, index: int, settings: AppSettings, bootstrap: str) -> None:
        setup_logging()
        self.index = index
        self.settings = settings
        book = PersonaBook.load(settings.personas_file)
        self.producer = EventProducer(settings.kafka, bootstrap)
        pools = len(book.personas) * settings.pool.orchestrators
        self.pools = {
            p.name: PersonaPool(
                p, settings, bootstrap, self.producer, str(index), pools
            )
            for p in book.personas
        }
        self._ready = asyncio.Event()
        self._tasks = [asyncio.get_running_loop().create_task(self._run())]
        self._heap = HeapKeeper()
        self._heap.start()

    async def _run(self) -> None:
        await asyncio.gather(*(pool.start() for pool in self.pools.values()))
        self._ready.set()
        logger.info(
            "orchestrator ready index=%d personas=%s", self.index, list(self.pools)
        )
        self._tasks += [
            asyncio.create_task(
                self._every(self.settings.pool.scale_interval_s, "scale")
            ),
            asyncio.create_task(
                self._every(self.settings.pool.health_interval_s, "check_health")
            ),
        ]

    async def _every(self, interval_s: float, method: str) -> None:
        while True:
            await asyncio.sleep(interval_s)
            for pool in self.pools.values():
                try:
                    await getattr(pool, method)()
                except Exception:
                    logger.exception(
                        "pool %s failed persona=%s", method, pool.persona.name
                    )

    async def ready(self) -> bool:
        """Wait until every pool has its partitions and answering workers."""
        await self._ready.wait()
        return True

    async def status(self) -> dict[str, Any]:
        """Per persona: workers, busy, in-flight, lag, latency p50/p99, fallbacks."""
        return {
            "orchestrator": self.index,
            "personas": {name: pool.status() for name, pool in self.pools.items()},
        }

    async def workers(self, busy_only: bool = False) -> dict[str, list[Any]]:
        """Worker handles per persona (for operators and fault tests).

        Args:
            busy_only: only the workers running a chunk of commands right now.
        """
        return {
            name: [
                slot.handle
                for slot in pool.workers.values()
                if slot.in_flight > 0 or not busy_only
            ]
            for name, pool in self.pools.items()
        }

    async def shutdown(self) -> None:
        """Leave the groups, stop the workers and flush the producer."""
        for task in self._tasks:
            task.cancel()
        self._heap.stop()
        await asyncio.gather(*(pool.stop() for pool in self.pools.values()))
        self.producer.close()


def start_orchestrators(
    settings: AppSettings, bootstrap: str, namespace: str = NAMESPACE
) -> list[Any]:
    """Get or create the configured orchestrators (detached, restarted on failure)."""
    return [
        Orchestrator.options(  # type: ignore[attr-defined]
            name=orchestrator_name(i),
            namespace=namespace,
            lifetime="detached",
            get_if_exists=True,
        ).remote(i, settings, bootstrap)
        for i in range(settings.pool.orchestrators)
    ]
