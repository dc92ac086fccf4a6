"""A replica's live copy of a match: follows its engine, fans out to sockets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from ray.exceptions import ActorUnavailableError, RayActorError

from actors.errors import ActorsError
from events import Envelope
from game import MatchState
from serve_app.views import is_public

logger = logging.getLogger(__name__)

Listener = Callable[[], Coroutine[Any, Any, None]]
_LONG_POLL_S = 10.0
_KEEP_ENDED_S = 300.0


class MatchFeed:
    """Folds a match's events from its engine and wakes the match's sockets.

    Events come from the engine's in-memory log, which only ever holds
    events the broker confirmed, and after an engine restart is rebuilt
    from Kafka; so what a player is sent is exactly the Kafka log.
    """

    def __init__(self, match_id: str, engine: Callable[[], Any]) -> None:
        self.match_id = match_id
        self.state = MatchState(match_id)
        self.public: list[Envelope] = []
        self._engine = engine
        self._engine_seq = 0
        self._listeners: set[Listener] = set()
        self._pending: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._follow())
        self.ended_at: datetime | None = None
        self.lost = False

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` after every change (and once now)."""
        self._listeners.add(listener)
        self._pending.add(task := asyncio.create_task(listener()))
        task.add_done_callback(self._pending.discard)

    def unsubscribe(self, listener: Listener) -> None:
        """Stop calling ``listener``."""
        self._listeners.discard(listener)

    @property
    def idle(self) -> bool:
        """No socket listens and the match ended long enough ago to drop it."""
        if self._listeners or self.ended_at is None:
            return self.lost
        return (datetime.now(UTC) - self.ended_at).total_seconds() > _KEEP_ENDED_S

    async def wait_until(self, engine_seq: int, timeout_s: float = 10.0) -> None:
        """Wait until the feed folded at least ``engine_seq`` events."""
        await self._wait(lambda: self._engine_seq >= engine_seq, timeout_s)

    async def wait_for_public(self, seq: int, timeout_s: float) -> None:
        """Wait until the feed holds ``seq`` public events or the match ended."""
        await self._wait(
            lambda: len(self.public) >= seq or self.state.phase == "ended", timeout_s
        )

    async def _wait(self, done: Callable[[], bool], timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not done() and not self.lost:
            if loop.time() >= deadline:
                return
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), deadline - loop.time())

    async def _follow(self) -> None:
        while self.state.phase != "ended":
            try:
                events: list[Envelope] = await self._engine().events_since.remote(
                    self.match_id, self._engine_seq, _LONG_POLL_S
                )
            except ActorsError as exc:
                # UnknownMatch, or WrongEngine while the engines are resized:
                # there is nothing to follow here; a fresh feed asks again.
                logger.warning(
                    "match gone from its engine match_id=%s error=%s",
                    self.match_id,
                    type(exc).__name__,
                )
                self.lost = True
                self._changed.set()
                return
            except (RayActorError, ActorUnavailableError):
                # The engine restarts and rebuilds from Kafka; ask again.
                await asyncio.sleep(0.5)
                continue
            if events:
                self._fold(events)
                await self._notify()
        self.ended_at = datetime.now(UTC)

    def _fold(self, events: list[Envelope]) -> None:
        for event in events:
            self.state.apply(event)
            if is_public(event):
                self.public.append(event)
        self._engine_seq += len(events)
        self._changed.set()

    async def _notify(self) -> None:
        listeners = list(self._listeners)
        results = await asyncio.gather(
            *(listen() for listen in listeners), return_exceptions=True
        )
        for result in results:
            if isinstance(result, Exception):
                logger.debug(
                    "listener failed match_id=%s error=%r", self.match_id, result
                )

    def close(self) -> None:
        """Stop following the engine."""
        self._task.cancel()


class FeedBook:
    """The feeds of one replica, created on first use and dropped when idle."""

    def __init__(self, engine_for: Callable[[str], Any]) -> None:
        self._engine_for = engine_for
        self._feeds: dict[str, MatchFeed] = {}

    def get(self, match_id: str) -> MatchFeed:
        """The feed of a match, following its engine."""
        feed = self._feeds.get(match_id)
        if feed is None or feed.lost:
            feed = MatchFeed(match_id, lambda: self._engine_for(match_id))
            self._feeds[match_id] = feed
        return feed

    def sweep(self) -> int:
        """Drop idle feeds; returns how many are left."""
        for match_id, feed in list(self._feeds.items()):
            if feed.idle:
                feed.close()
                del self._feeds[match_id]
        return len(self._feeds)

    def __len__(self) -> int:
        return len(self._feeds)
