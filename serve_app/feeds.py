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
from events import Envelope, decode
from game import MatchState
from serve_app.views import is_public

logger = logging.getLogger(__name__)

Listener = Callable[[], Coroutine[Any, Any, None]]
CaughtUp = Callable[["MatchFeed"], None]
_LONG_POLL_S = 10.0
_KEEP_ENDED_S = 300.0
_RETRY_S = 0.5


class MatchFeed:
    """Folds a match's events from its engine and wakes the match's sockets.

    Events come from the engine's in-memory log, which only ever holds
    events the broker confirmed, and after an engine restart is rebuilt
    from Kafka; so what a player is sent is exactly the Kafka log.
    """

    def __init__(
        self,
        match_id: str,
        engine: Callable[[], Any],
        on_caught_up: CaughtUp | None = None,
    ) -> None:
        self.match_id = match_id
        self.state = MatchState(match_id)
        self.public: list[Envelope] = []
        self._engine = engine
        self._engine_seq = 0
        self._listeners: set[Listener] = set()
        self._pending: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self._on_caught_up = on_caught_up
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

    @property
    def engine_seq(self) -> int:
        """How many of the match's events the feed folded."""
        return self._engine_seq

    async def _follow(self) -> None:
        # Until the first events arrive the feed long-polls on its own; then,
        # given ``on_caught_up``, it hands over to its engine's follower,
        # which asks for every feed of the engine in one call.
        while self.state.phase != "ended":
            try:
                events: list[Envelope] = await self._engine().events_since.remote(
                    self.match_id, self._engine_seq, _LONG_POLL_S
                )
            except ActorsError as exc:
                self.lose(exc)
                return
            except (RayActorError, ActorUnavailableError):
                # The engine restarts and rebuilds from Kafka; ask again.
                await asyncio.sleep(_RETRY_S)
                continue
            if not events:
                continue
            self.take(events)
            await self._notify()
            if self._on_caught_up is not None and self.ended_at is None:
                self._on_caught_up(self)
                return

    def take(self, events: list[Envelope]) -> None:
        """Fold the match's next events, in log order."""
        for event in events:
            self.state.apply(event)
            if is_public(event):
                self.public.append(event)
        self._engine_seq += len(events)
        if self.state.phase == "ended" and self.ended_at is None:
            self.ended_at = datetime.now(UTC)
        self._changed.set()

    def lose(self, error: BaseException) -> None:
        """The engine no longer has the match; a fresh feed asks again."""
        # UnknownMatch, or WrongEngine while the engines are resized.
        logger.warning(
            "match gone from its engine match_id=%s error=%s",
            self.match_id,
            type(error).__name__,
        )
        self.lost = True
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

    def notify_soon(self) -> None:
        """Wake the listeners without waiting for them."""
        self._pending.add(task := asyncio.create_task(self._notify()))
        task.add_done_callback(self._pending.discard)

    def close(self) -> None:
        """Stop following the engine."""
        self._task.cancel()


class EngineFollower:
    """Follows every caught-up feed of one engine with one long poll at a time.

    One Ray call per match and change cost the replica and the engine more
    than the events themselves; one call for all of an engine's matches
    returns whatever changed since the cursors it carries.
    """

    def __init__(self, engine: Callable[[], Any]) -> None:
        self._engine = engine
        self._feeds: dict[str, MatchFeed] = {}
        self._asked: set[str] = set()
        self._woken = False
        self._task: asyncio.Task[None] | None = None

    def add(self, feed: MatchFeed) -> None:
        """Follow ``feed`` from its current sequence number on."""
        self._feeds[feed.match_id] = feed
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        elif feed.match_id not in self._asked and not self._woken:
            # The call in flight does not carry this match and would not
            # return for its events until another match changed: cut it short.
            self._woken = True
            self._engine().wake.remote()

    def remove(self, match_id: str) -> None:
        """Stop following a match."""
        self._feeds.pop(match_id, None)

    async def _run(self) -> None:
        while self._feeds:
            cursors = {m: f.engine_seq for m, f in self._feeds.items()}
            self._asked, self._woken = set(cursors), False
            try:
                found = await self._engine().events_since_many.remote(
                    cursors, _LONG_POLL_S
                )
            except (RayActorError, ActorUnavailableError):
                await asyncio.sleep(_RETRY_S)
                continue
            except Exception as exc:  # a bug must not stop every feed
                logger.warning("engine follow failed error=%r", exc)
                await asyncio.sleep(_RETRY_S)
                continue
            self._asked = set()
            self._deliver(cursors, found)

    def _deliver(
        self, cursors: dict[str, int], found: dict[str, list[bytes] | Exception]
    ) -> None:
        for match_id, records in found.items():
            feed = self._feeds.get(match_id)
            if feed is None or feed.engine_seq != cursors[match_id]:
                continue  # dropped, or replaced by a fresh feed meanwhile
            try:
                if isinstance(records, Exception):
                    raise records
                events = [decode(record) for record in records]
            except Exception as exc:
                # The engine's error for the match, or a record it could not
                # have written: a fresh feed asks again from the start.
                feed.lose(exc)
                self.remove(match_id)
                continue
            feed.take(events)
            feed.notify_soon()
            if feed.state.phase == "ended":
                self.remove(match_id)


class FeedBook:
    """The feeds of one replica, created on first use and dropped when idle."""

    def __init__(self, engine_for: Callable[[str], Any]) -> None:
        self._engine_for = engine_for
        self._feeds: dict[str, MatchFeed] = {}
        self._followers: dict[Any, EngineFollower] = {}

    def get(self, match_id: str) -> MatchFeed:
        """The feed of a match, following its engine."""
        feed = self._feeds.get(match_id)
        if feed is None or feed.lost:
            feed = MatchFeed(match_id, lambda: self._engine_for(match_id), self._follow)
            self._feeds[match_id] = feed
        return feed

    def _follow(self, feed: MatchFeed) -> None:
        # Ray actor handles hash and compare by actor id.
        engine = self._engine_for(feed.match_id)
        follower = self._followers.get(engine)
        if follower is None:
            follower = EngineFollower(lambda: engine)
            self._followers[engine] = follower
        follower.add(feed)

    def sweep(self) -> int:
        """Drop idle feeds; returns how many are left."""
        for match_id, feed in list(self._feeds.items()):
            if feed.idle:
                feed.close()
                for follower in self._followers.values():
                    follower.remove(match_id)
                del self._feeds[match_id]
        return len(self._feeds)

    def __len__(self) -> int:
        return len(self._feeds)
