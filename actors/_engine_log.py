"""Reading an engine's matches back from match-events, in a thread."""

from __future__ import annotations

import asyncio
import logging
import random

from configs import AppSettings
from events import BrokerError, Envelope
from events.reader import LogEntry, read_match, read_partitions

logger = logging.getLogger(__name__)


class MatchLog:
    """The ``match-events`` partitions of one engine, read in a thread.

    The reads block on the broker, so they run off the event loop and the
    engine keeps answering its other matches meanwhile.
    """

    def __init__(
        self, settings: AppSettings, bootstrap: str, index: int, rng: random.Random
    ) -> None:
        self._settings = settings
        self._bootstrap = bootstrap
        self._index = index
        self._rng = rng

    async def read_owned(
        self, partitions: list[int], first_backoff_s: float, max_backoff_s: float
    ) -> list[LogEntry]:
        """Every entry of ``partitions``; retries broker failures until a read works.

        The wait between attempts doubles up to ``max_backoff_s``.
        """
        # A broker failure is retried here rather than by exiting for Ray to
        # restart the actor: a restart would only read from the start again,
        # and meanwhile commands wait on ``ready`` instead of failing with
        # RayActorError.
        backoff_s = first_backoff_s
        attempt = 0
        while True:
            attempt += 1
            try:
                return await asyncio.to_thread(self._read_partitions, partitions)
            except BrokerError as exc:
                # Jitter, so engines that lost the broker together do not
                # all come back to it at the same instant.
                wait_s = backoff_s * self._rng.uniform(0.5, 1.0)
                logger.warning(
                    "engine rebuild read failed engine=%d attempt=%d "
                    "retry_in_s=%.2f error=%s",
                    self._index,
                    attempt,
                    wait_s,
                    exc,
                )
                await asyncio.sleep(wait_s)
                backoff_s = min(2 * backoff_s, max_backoff_s)

    async def read_match(self, match_id: str) -> list[Envelope]:
        """One match's events in log order."""
        return await asyncio.to_thread(
            read_match, self._settings.kafka, self._bootstrap, match_id
        )

    def _read_partitions(self, partitions: list[int]) -> list[LogEntry]:
        topic = self._settings.kafka.topics.match_events
        return list(
            read_partitions(self._settings.kafka, self._bootstrap, topic, partitions)
        )
