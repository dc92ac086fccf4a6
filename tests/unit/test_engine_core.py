"""The engine core's rebuild: bad matches are set aside, broker failures retried.

The log is made of whole matches played by the real rules on a simulated
clock (``events.populate``); the broker is replaced by a recording producer
and a reader that returns the entries, so neither Kafka nor Ray runs.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import actors._engine_log as engine_log
from actors._engine_core import EngineCore, MatchSetAside
from actors.errors import UnknownMatch, WrongEngine
from configs import EngineSettings, load_settings
from events import BrokerError, Envelope, decode, new_event
from events.match_events import AnswerSubmitted, PlayerJoined, VotingOpened
from events.populate import play_match
from events.producer import Appended, EventProducer
from events.reader import LogEntry
from events.settings import TopicSettings
from game import PromptBank, TemplateBook

START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
SETTINGS = load_settings("configs/local.yaml").model_copy(
    update={"engine": EngineSettings(engines=1)}
)


class RecordingProducer(EventProducer):
    """Confirms every append at once and keeps it; no broker behind it."""

    def __init__(self) -> None:
        self.appended: list[tuple[str, Envelope]] = []

    async def append_many(
        self, records: Sequence[tuple[TopicSettings, Envelope]]
    ) -> list[Appended]:
        """Keep the records and confirm them."""
        start = len(self.appended)
        self.appended += [(topic.name, envelope) for topic, envelope in records]
        return [Appended(t.name, 0, start + i) for i, (t, _) in enumerate(records)]

    def close(self, timeout_s: float = 0.0) -> None:
        """Nothing to flush."""


def new_core() -> tuple[EngineCore, RecordingProducer]:
    producer = RecordingProducer()
    core = EngineCore(0, SETTINGS, "unused:9092", random.Random(0), producer)
    return core, producer


def played(seed: int) -> list[Envelope]:
    rng = random.Random(seed)
    start = START + timedelta(seconds=seed)
    return play_match(PromptBank.load(), TemplateBook.load(), rng, start)


def running(seed: int) -> list[Envelope]:
    """A match cut off in the answering phase of round 2."""
    events = played(seed)
    rounds = [i for i, e in enumerate(events) if e.type == "round_started"]
    return events[: rounds[1] + 1]


def poisoned_fold(seed: int) -> list[Envelope]:
    """A match whose log answers a round that never started."""
    events = played(seed)
    first = next(e for e in events if isinstance(e.payload, AnswerSubmitted))
    assert isinstance(first.payload, AnswerSubmitted)
    stray = first.payload.model_copy(update={"round": 4, "command_id": "stray"})
    after = events.index(first) + 1
    return [*events[:after], _rewrap(first, stray), *events[after:]]


def poisoned_resume(seed: int) -> list[Envelope]:
    """A match stopped in voting on a ballot naming a seat that never answered."""
    events = played(seed)
    opened = next(e for e in events if isinstance(e.payload, VotingOpened))
    assert isinstance(opened.payload, VotingOpened)
    silent = "zz-silent"
    ballot = opened.payload.model_copy(
        update={"order": (*opened.payload.order, silent)}
    )
    return [*events[: events.index(opened)], _rewrap(opened, ballot)]


def _rewrap(event: Envelope, payload: Any) -> Envelope:
    return new_event(
        payload,
        match_id=event.match_id,
        producer=event.producer,
        occurred_at=event.occurred_at,
    )


def interleaved(*matches: list[Envelope]) -> list[LogEntry]:
    """The matches' events as one partition holds them, in time order."""
    events = sorted((e for m in matches for e in m), key=lambda e: e.occurred_at)
    return [LogEntry(0, offset, e) for offset, e in enumerate(events)]


def answer_text(events: list[Envelope]) -> str:
    return next(
        e.payload.text for e in events if isinstance(e.payload, AnswerSubmitted)
    )


def test_engine_core_restore_sets_a_poison_match_aside_and_keeps_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    core, _ = new_core()
    ended, unfinished, poison = played(1), running(2), poisoned_fold(3)
    poison_id = poison[0].key

    with caplog.at_level(logging.WARNING, logger="actors._engine_core"):
        left = core.restore(interleaved(ended, unfinished, poison))

    assert left == [unfinished[0].key]
    assert core.status()["set_aside"] == [poison_id]
    assert core.status()["matches"] == 2
    assert core.seq(ended[0].key) == len(ended)
    warning = next(r.getMessage() for r in caplog.records if "set aside" in r.msg)
    assert f"match_id={poison_id}" in warning
    assert "cannot fold answer_submitted at partition 0 offset" in warning
    assert answer_text(poison) not in caplog.text


async def test_engine_core_refuses_commands_for_a_match_set_aside() -> None:
    core, _ = new_core()
    poison = poisoned_fold(4)
    poison_id = poison[0].key
    core.restore(interleaved(played(5), poison))
    player = next(
        e.payload.player_id for e in poison if isinstance(e.payload, PlayerJoined)
    )

    with pytest.raises(MatchSetAside) as answered:
        await core.submit_answer(poison_id, player, "hello", "c-1")
    with pytest.raises(MatchSetAside):
        await core.events_since(poison_id, 0)

    assert answered.value.match_id == poison_id
    assert "set aside when its engine rebuilt: cannot fold" in str(answered.value)
    assert "no commands" in str(answered.value)


def test_match_set_aside_keeps_its_fields_through_pickling() -> None:
    error = MatchSetAside("m-1", "cannot fold vote_cast at partition 0 offset 9")

    copy = pickle.loads(pickle.dumps(error))

    assert (copy.match_id, copy.reason, str(copy)) == (
        error.match_id,
        error.reason,
        str(error),
    )


@pytest.mark.parametrize(
    ("poison", "reason"),
    [
        pytest.param(poisoned_fold, "cannot fold answer_submitted", id="fold"),
        pytest.param(poisoned_resume, "cannot resume its robots", id="resume"),
    ],
)
async def test_engine_core_rebuild_resumes_robots_of_good_matches_only(
    monkeypatch: pytest.MonkeyPatch, poison: Any, reason: str
) -> None:
    core, producer = new_core()
    unfinished, bad = running(6), poison(7)
    entries = interleaved(played(8), unfinished, bad)
    monkeypatch.setattr(engine_log, "read_partitions", lambda *_a: iter(entries))

    count = await core.rebuild()

    assert count == 1
    assert core.ready.is_set()
    assert core.status()["set_aside"] == [bad[0].key]
    assert reason in core.set_aside[bad[0].key]
    sent = {envelope.key for _, envelope in producer.appended}
    assert sent == {unfinished[0].key}


async def test_engine_core_rebuild_retries_a_broker_failure_with_backoff(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    core, _ = new_core()
    entries = interleaved(played(9), running(10))
    attempts: list[bool] = []

    def flaky_read(*_args: Any) -> Iterator[LogEntry]:
        attempts.append(core.ready.is_set())
        if len(attempts) < 3:
            raise BrokerError("cannot read match-events from unused:9092: down")
        return iter(entries)

    monkeypatch.setattr(engine_log, "read_partitions", flaky_read)

    with caplog.at_level(logging.WARNING, logger="actors._engine_log"):
        count = await core.rebuild(first_backoff_s=0.001, max_backoff_s=0.002)

    assert count == 1
    assert attempts == [False, False, False]
    assert core.ready.is_set()
    retries = [r.getMessage() for r in caplog.records if "read failed" in r.msg]
    assert len(retries) == 2
    assert "attempt=1" in retries[0] and "attempt=2" in retries[1]


class GatedProducer(RecordingProducer):
    """Holds robot commands until ``gate`` opens; match events pass at once."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def append_many(
        self, records: Sequence[tuple[TopicSettings, Envelope]]
    ) -> list[Appended]:
        if any(e.type.startswith("generate_") for _, e in records):
            await self.gate.wait()
        return await super().append_many(records)


async def test_engine_core_answers_before_the_robot_commands_are_confirmed() -> None:
    producer = GatedProducer()
    core = EngineCore(0, SETTINGS, "unused:9092", random.Random(0), producer)
    match = running(11)
    match_id = match[0].key
    core.restore(interleaved(match))
    human = next(
        e.payload.player_id for e in match if isinstance(e.payload, PlayerJoined)
    )

    outcome = await asyncio.wait_for(
        core.submit_answer(match_id, human, "a sandwich with crisps", "c-1"), 5
    )

    assert outcome.ok
    assert [e.type for _, e in producer.appended] == ["answer_submitted"]
    producer.gate.set()
    await asyncio.wait_for(core.robot_commands_sent(), 5)
    commands = [e for _, e in producer.appended if e.type == "generate_answer"]
    assert len(commands) == len(core.matches[match_id].robot_seats())
    assert {e.key for e in commands} == {match_id}


async def test_engine_core_hands_out_new_events_encoded() -> None:
    core, _ = new_core()
    ended, unfinished = played(12), running(13)
    core.restore(interleaved(ended, unfinished))
    cursors = {ended[0].key: 3, unfinished[0].key: len(unfinished), "m-elsewhere": 0}

    found = await core.events_since_many(cursors)

    assert set(found) == {ended[0].key, "m-elsewhere"}
    records = found[ended[0].key]
    assert isinstance(records, list)
    assert [decode(r) for r in records] == core.logs[ended[0].key][3:]
    assert isinstance(found["m-elsewhere"], UnknownMatch | WrongEngine)
