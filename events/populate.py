"""Write complete sample matches to ``match-events``.

Usage: ``python -m events.populate --matches N [--bootstrap HOST:PORT] [--seed S]``

Each match is played by the real rules with a simulated clock: one human
and three robots with distinct personas, five rounds, answers and votes
arriving at human-like moments. The last line printed is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import KafkaError, Message
from tqdm import tqdm

from configs import load_settings
from events.backbone import require_bootstrap
from events.envelope import Envelope, Payload, new_event
from events.errors import EventsError
from events.producer import EventProducer
from events.settings import KafkaSettings
from events.topics import ensure_topics
from game import (
    Context,
    MatchState,
    PromptBank,
    TemplateBook,
    advance,
    cast_vote,
    create_match,
    join_match,
    submit_answer,
)

SAMPLE_PERSONAS = ("curious_student", "skeptical_scientist", "creative_artist")
_OPENERS = ("honestly", "i think", "probably", "definitely", "ok so", "maybe")
_ENDINGS = ("", ".", "!", " lol", "...", " tbh")


def sample_answer(topic: tuple[str, ...], rng: random.Random) -> str:
    """A short, casual, on-topic sentence."""
    words = rng.sample(topic, k=min(2, len(topic)))
    opener = rng.choice(_OPENERS)
    return f"{opener} {words[0]} and {words[-1]}{rng.choice(_ENDINGS)}"


class _SampleMatch:
    """Plays one classic match by the rules on a simulated clock."""

    def __init__(
        self, bank: PromptBank, book: TemplateBook, rng: random.Random, start: datetime
    ) -> None:
        self.bank, self.book, self.rng, self.clock = bank, book, rng, start
        match_id = f"m-{uuid.UUID(int=rng.getrandbits(128)).hex[:16]}"
        self.state = MatchState(match_id=match_id)
        self.events: list[Envelope] = []

    def ctx(self) -> Context:
        return Context(
            now=self.clock, rng=self.rng, prompts=self.bank, personas=SAMPLE_PERSONAS
        )

    def record(self, payloads: list[Payload]) -> None:
        for payload in payloads:
            event = new_event(
                payload,
                match_id=self.state.match_id,
                producer="populate",
                occurred_at=self.clock,
                event_id=uuid.UUID(int=self.rng.getrandbits(128)),
            )
            self.state.apply(event)
            self.events.append(event)

    def play(self) -> list[Envelope]:
        state = self.state
        self.record(create_match(self.book.resolve("classic"), self.clock))
        player = f"player-{self.rng.getrandbits(32):08x}"
        self.record(join_match(state, player, "", self.ctx()))
        while state.phase != "ended":
            before = (state.phase, len(state.rounds))
            if state.phase == "answering":
                self.answer_all()
            elif state.phase == "voting":
                self.vote_all()
            if (state.phase, len(state.rounds)) != before:
                continue
            deadline = state.deadline()
            assert deadline is not None
            self.clock = max(self.clock, deadline)
            self.record(advance(state, self.ctx()))
        return self.events

    def answer_all(self) -> None:
        current = self.state.current
        assert current is not None
        topic = self.bank.get(current.prompt_id).topic
        for seat in sorted(self.state.seats, key=lambda _: self.rng.random()):
            self.clock += timedelta(seconds=self.rng.uniform(3, 9))
            if self.state.phase != "answering" or self.clock >= current.answer_deadline:
                return
            text = sample_answer(topic, self.rng)
            occupant = self.state.seats[seat]
            command = f"cmd-{self.rng.getrandbits(64):016x}"
            self.record(submit_answer(self.state, occupant, text, command, self.ctx()))

    def vote_all(self) -> None:
        current = self.state.current
        assert current is not None and current.vote_deadline is not None
        for seat in list(current.order):
            self.clock += timedelta(seconds=self.rng.uniform(2, 6))
            if self.state.phase != "voting" or self.clock >= current.vote_deadline:
                return
            target = self.rng.choice([s for s in current.order if s != seat])
            occupant = self.state.seats[seat]
            command = f"cmd-{self.rng.getrandbits(64):016x}"
            self.record(cast_vote(self.state, occupant, target, command, self.ctx()))


def play_match(
    bank: PromptBank, book: TemplateBook, rng: random.Random, start: datetime
) -> list[Envelope]:
    """One complete classic match as its events, with realistic timings."""
    return _SampleMatch(bank, book, rng, start).play()


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, write the matches, print the summary."""
    parser = argparse.ArgumentParser(prog="python -m events.populate")
    parser.add_argument("--matches", type=int, required=True)
    parser.add_argument("--bootstrap", help="HOST:PORT; default from the config")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    if args.matches < 1:
        parser.error("--matches must be at least 1")

    settings = load_settings().kafka
    bootstrap = require_bootstrap(settings, args.bootstrap)
    if bootstrap is None:
        print(
            "no broker: pass --bootstrap HOST:PORT or set RO_KAFKA__BOOTSTRAP_SERVERS "
            "(`python -m events` runs a local one)",
            file=sys.stderr,
        )
        return 2
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    bank, book = PromptBank.load(), TemplateBook.load()
    try:
        ensure_topics(settings, bootstrap)
        summary = _write(settings, bootstrap, args.matches, rng, bank, book)
    except EventsError as exc:
        print(f"populate failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"seed": seed, "bootstrap": bootstrap, **summary}))
    return 0


def _write(
    settings: KafkaSettings,
    bootstrap: str,
    matches: int,
    rng: random.Random,
    bank: PromptBank,
    book: TemplateBook,
) -> dict[str, Any]:
    producer = EventProducer(settings, bootstrap)
    failures: list[str] = []

    def on_done(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failures.append(str(err))

    start = datetime.now(UTC) - timedelta(hours=matches)
    match_ids: list[str] = []
    count = 0
    for i in tqdm(range(matches), desc="matches", unit="match", file=sys.stderr):
        events = play_match(bank, book, rng, start + timedelta(minutes=10 * i))
        for event in events:
            producer.append_nowait(settings.topics.match_events, event, on_done)
        match_ids.append(events[0].key)
        count += len(events)
    left = producer.flush(60)
    producer.close()
    if failures or left:
        raise EventsError(
            f"{len(failures) + left} events not delivered: {failures[:3]}"
        )
    return {"matches": matches, "events": count, "match_ids": match_ids}


if __name__ == "__main__":
    raise SystemExit(main())
