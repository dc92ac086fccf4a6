"""A replica's match feeds: events from the engine, encoded, folded in order.

The engine is a stand-in answering like a Ray actor handle, so no Ray runs.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from actors.errors import UnknownMatch
from events import Envelope, encode
from events.populate import play_match
from game import PromptBank, TemplateBook
from serve_app.feeds import FeedBook, MatchFeed
from tests.unit.remote import Remote

START = datetime(2030, 1, 1, tzinfo=UTC)


def played(seed: int) -> list[Envelope]:
    rng = random.Random(seed)
    return play_match(
        PromptBank.load(), TemplateBook.load(), rng, START + timedelta(seconds=seed)
    )


class Wake:
    """``wake.remote()``, which the follower sends without awaiting it."""

    def remote(self) -> None:
        pass


class StandInEngine:
    """Serves each match's log; a match's first ``first`` events come at once.

    ``answers`` replaces what ``events_since_many`` hands out for a match.
    """

    def __init__(self, logs: dict[str, list[Envelope]], first: int) -> None:
        self.logs = logs
        self.first = first
        self.answers: dict[str, Any] = {}
        self.asked = 0
        self.events_since = Remote(self._events_since)
        self.events_since_many = Remote(self._events_since_many)
        self.wake = Wake()

    async def _events_since(
        self, match_id: str, after: int, _wait_s: float
    ) -> list[Envelope]:
        return self.logs[match_id][after : self.first]

    async def _events_since_many(
        self, cursors: dict[str, int], _wait_s: float
    ) -> dict[str, Any]:
        self.asked += 1
        await asyncio.sleep(0.01)
        found: dict[str, Any] = {}
        for match_id, after in cursors.items():
            if match_id in self.answers:
                found[match_id] = self.answers[match_id]
            elif after < len(self.logs[match_id]):
                found[match_id] = [encode(e) for e in self.logs[match_id][after:]]
        return found


async def settled(feed: MatchFeed, engine: StandInEngine, done: Any) -> None:
    for _ in range(500):
        if done(feed):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"feed never settled; engine asked {engine.asked} times")


async def test_feed_folds_the_engine_s_encoded_events_in_order() -> None:
    log = played(1)
    engine = StandInEngine({log[0].key: log}, first=3)
    feed = FeedBook(lambda _match_id: engine).get(log[0].key)

    await settled(feed, engine, lambda f: f.engine_seq == len(log))

    assert feed.state.phase == "ended"
    assert feed.public and all(isinstance(e, Envelope) for e in feed.public)
    assert [e.event_id for e in feed.public] == [
        e.event_id for e in log if e in feed.public
    ]
    assert engine.asked >= 1
    feed.close()


async def test_feed_is_lost_on_a_record_it_cannot_decode() -> None:
    log, other = played(2), played(3)
    engine = StandInEngine({log[0].key: log, other[0].key: other}, first=3)
    engine.answers[log[0].key] = [encode(log[3]), b'{"not": "an event"}']
    book = FeedBook(lambda _match_id: engine)
    broken, healthy = book.get(log[0].key), book.get(other[0].key)

    await settled(broken, engine, lambda f: f.lost)
    await settled(healthy, engine, lambda f: f.engine_seq == len(other))

    assert broken.engine_seq == 3, "nothing of a bad answer is folded"
    assert book.get(log[0].key) is not broken, "a lost feed is replaced"
    for feed in (broken, healthy):
        feed.close()


async def test_feed_is_lost_when_the_engine_no_longer_has_the_match() -> None:
    log = played(4)
    engine = StandInEngine({log[0].key: log}, first=3)
    engine.answers[log[0].key] = UnknownMatch(log[0].key)
    feed = FeedBook(lambda _match_id: engine).get(log[0].key)

    await settled(feed, engine, lambda f: f.lost)

    assert feed.engine_seq == 3
    feed.close()
