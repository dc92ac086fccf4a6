"""The match engine's core: the single writer of the matches it owns."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from actors._deadlines import DeadlineQueue
from actors._metrics import engine_metrics
from actors.engines import engine_index, invite_engine
from actors.errors import ActorsError, MatchSetAside, UnknownMatch, WrongEngine
from configs import AppSettings
from events import BrokerError, DeliveryError, Envelope, Payload, new_event
from events.producer import EventProducer
from events.reader import LogEntry, read_partitions
from events.settings import TopicSettings
from game import (
    Context,
    MatchState,
    PromptBank,
    RuleViolation,
    TemplateBook,
    advance,
    cast_vote,
    create_match,
    evolve,
    join_match,
    new_invite_code,
    pending_robot_commands,
    submit_answer,
)

logger = logging.getLogger(__name__)

Decide = Callable[[MatchState, Context], list[Payload]]
_CORRELATION = uuid.UUID("6f1c3c52-3b0e-4d53-9d0e-6a1f3f0b7a10")
REBUILD_FIRST_BACKOFF_S = 0.5
REBUILD_MAX_BACKOFF_S = 30.0
GAUGE_INTERVAL_S = 1.0


@dataclass(frozen=True)
class Outcome:
    """The answer to a player's command: accepted, or refused with a reason."""

    ok: bool
    match_id: str = ""
    code: str = ""
    message: str = ""
    seq: int = 0
    data: dict[str, Any] = field(default_factory=dict)


class EngineCore:
    """Decides, appends, folds and schedules for the matches it owns.

    Every change is appended to ``match-events`` and confirmed by the broker
    before it is folded into memory, so the in-memory log of a match is
    always a prefix-equal copy of the Kafka log.
    """

    def __init__(
        self,
        index: int,
        settings: AppSettings,
        bootstrap: str,
        rng: random.Random | None = None,
        producer: EventProducer | None = None,
    ) -> None:
        self.index = index
        self.settings = settings
        self.bootstrap = bootstrap
        self.topics = settings.kafka.topics
        self.producer = producer or EventProducer(settings.kafka, bootstrap)
        self.bank = PromptBank.load(settings.prompts_file)
        self.book = TemplateBook.load(settings.templates_file)
        self.personas = settings.persona_names()
        self._command_topics = {
            p: self.topics.persona_commands(p) for p in self.personas
        }
        self.rng = rng or random.SystemRandom()
        self.matches: dict[str, MatchState] = {}
        self.logs: dict[str, list[Envelope]] = {}
        self.invites: dict[str, str] = {}
        self.deadlines = DeadlineQueue()
        self.sent_commands: set[str] = set()
        self.ended_at: dict[str, datetime] = {}
        self.set_aside: dict[str, str] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._changed: dict[str, asyncio.Event] = {}
        self._any_change: asyncio.Event | None = None
        self.ready = asyncio.Event()
        self._gauged_at = float("-inf")
        self.started_at = datetime.now(UTC)

    # Ownership

    def owned_partitions(self) -> list[int]:
        """The ``match-events`` partitions this engine writes."""
        count = self.topics.match_events.partitions
        return [
            p for p in range(count) if p % self.settings.engine.engines == self.index
        ]

    def _check_match(self, match_id: str) -> None:
        owner = engine_index(match_id, self.settings)
        if owner != self.index:
            raise WrongEngine(match_id, self.index, owner)
        reason = self.set_aside.get(match_id)
        if reason is not None:
            raise MatchSetAside(match_id, reason)

    # Rebuild

    async def rebuild(
        self,
        first_backoff_s: float = REBUILD_FIRST_BACKOFF_S,
        max_backoff_s: float = REBUILD_MAX_BACKOFF_S,
    ) -> int:
        """Fold every match of the owned partitions; returns the unfinished count.

        A broker failure while reading is retried with capped exponential
        backoff until the read succeeds; ``ready`` is set once it did.
        """
        entries = await self._read_owned_log(first_backoff_s, max_backoff_s)
        unfinished = self.restore(entries)
        self.ready.set()
        for match_id in unfinished:
            await self._resume_robots(match_id)
        resumed = sum(1 for m in unfinished if m in self.matches)
        logger.info(
            "engine rebuilt engine=%d events=%d unfinished=%d set_aside=%d",
            self.index,
            len(entries),
            resumed,
            len(self.set_aside),
        )
        return resumed

    def restore(self, entries: Iterable[LogEntry]) -> list[str]:
        """Fold log entries into memory; returns the unfinished matches' ids.

        A match whose events cannot be folded is set aside (logged, and its
        commands refused with ``MatchSetAside``) while the others rebuild.
        """
        for entry in entries:
            self._restore_entry(entry)
        for match_id, state in self.matches.items():
            if state.phase == "ended":
                # A match may have ended just before the restart, with players
                # yet to be sent its last events: keep it for the retention
                # window from its real end, as if the engine had never died.
                self.ended_at[match_id] = self.logs[match_id][-1].occurred_at
            self._index(match_id, state)
        self.ended_at = dict(sorted(self.ended_at.items(), key=lambda item: item[1]))
        return [m for m, s in self.matches.items() if s.phase != "ended"]

    def _restore_entry(self, entry: LogEntry) -> None:
        event = entry.envelope
        if event is None or event.match_id is None:
            logger.warning(
                "skipping bad record partition=%d offset=%d",
                entry.partition,
                entry.offset,
            )
            return
        match_id = event.match_id
        if match_id in self.set_aside:
            return
        state = self.matches.setdefault(match_id, MatchState(match_id))
        try:
            state.apply(event)
        except Exception as exc:  # one bad match must not stop the others
            # The exception's text may quote a round's answers, which never
            # go to the logs; its type and the record's place suffice.
            self._set_aside(
                match_id,
                f"cannot fold {event.type} at partition {entry.partition} "
                f"offset {entry.offset} ({type(exc).__name__})",
            )
            return
        self.logs.setdefault(match_id, []).append(event)

    async def _resume_robots(self, match_id: str) -> None:
        try:
            await self._send_robot_commands(match_id)
        except Exception as exc:  # a state the rules cannot continue from
            self._set_aside(
                match_id, f"cannot resume its robots ({type(exc).__name__})"
            )

    def _set_aside(self, match_id: str, reason: str) -> None:
        self.set_aside[match_id] = reason
        self._evict(match_id)
        for code in [c for c, m in self.invites.items() if m == match_id]:
            del self.invites[code]
        logger.warning(
            "match set aside engine=%d match_id=%s reason=%s",
            self.index,
            match_id,
            reason,
        )

    async def _read_owned_log(
        self, first_backoff_s: float, max_backoff_s: float
    ) -> list[LogEntry]:
        # A broker failure is retried here rather than by exiting for Ray to
        # restart the actor: a restart would only read from the start again,
        # and meanwhile commands wait on ``ready`` instead of failing with
        # RayActorError.
        backoff_s = first_backoff_s
        attempt = 0
        while True:
            attempt += 1
            try:
                return await asyncio.to_thread(self._read_owned_partitions)
            except BrokerError as exc:
                wait_s = backoff_s * self.rng.uniform(0.5, 1.0)
                logger.warning(
                    "engine rebuild read failed engine=%d attempt=%d "
                    "retry_in_s=%.2f error=%s",
                    self.index,
                    attempt,
                    wait_s,
                    exc,
                )
                await asyncio.sleep(wait_s)
                backoff_s = min(2 * backoff_s, max_backoff_s)

    def _read_owned_partitions(self) -> list[LogEntry]:
        topic = self.topics.match_events
        partitions = self.owned_partitions()
        return list(
            read_partitions(self.settings.kafka, self.bootstrap, topic, partitions)
        )

    # Commands

    async def create_match(
        self,
        template: str,
        player_id: str,
        token_sha256: str = "",
        *,
        humans: int | None = None,
        robots: int | None = None,
        timings: dict[str, Any] | None = None,
    ) -> Outcome:
        """Create a match owned by this engine and seat its creator."""
        resolved = self.book.resolve(
            template, humans=humans, robots=robots, **(timings or {})
        )
        match_id = self._new_match_id()
        invite = self._new_invite_code() if resolved.humans > 1 else None
        self.matches[match_id] = MatchState(match_id)
        self.logs[match_id] = []

        def decide(state: MatchState, ctx: Context) -> list[Payload]:
            created = create_match(resolved, ctx.now, invite)
            scratch = MatchState(match_id)
            for payload in created:
                evolve(scratch, payload)
            return [*created, *join_match(scratch, player_id, token_sha256, ctx)]

        try:
            outcome = await self.execute(match_id, decide)
        except Exception:
            self.matches.pop(match_id, None)
            self.logs.pop(match_id, None)
            raise
        if invite:
            self.invites[invite] = match_id
        return Outcome(True, match_id, seq=outcome.seq, data={"invite_code": invite})

    async def join_by_code(
        self, code: str, player_id: str, token_sha256: str = ""
    ) -> Outcome:
        """Seat a player in the match behind an invite code."""
        match_id = self.invites.get(code.strip().upper())
        if match_id is None:
            return Outcome(False, code="unknown_invite", message="no such invite code")
        return await self.execute(
            match_id, lambda s, c: join_match(s, player_id, token_sha256, c)
        )

    async def submit_answer(
        self, match_id: str, player_id: str, text: str, command_id: str
    ) -> Outcome:
        """A player's answer to the current prompt."""
        return await self.execute(
            match_id, lambda s, c: submit_answer(s, player_id, text, command_id, c)
        )

    async def cast_vote(
        self, match_id: str, player_id: str, target: str, command_id: str
    ) -> Outcome:
        """A player's vote for the seat they think is human."""
        return await self.execute(
            match_id, lambda s, c: cast_vote(s, player_id, target, command_id, c)
        )

    async def execute(
        self, match_id: str, decide: Decide, causation_id: uuid.UUID | None = None
    ) -> Outcome:
        """Decide against the folded state, append, then fold the new events.

        Raises:
            UnknownMatch: no such match here.
            MatchSetAside: the match's log could not be folded at rebuild.
            WrongEngine: the match belongs to another engine.
            events.DeliveryError: the broker did not confirm; nothing changed
                in memory beyond a reload of the match from the log.
        """
        return (await self.execute_steps(match_id, [(decide, causation_id)]))[0]

    async def execute_steps(
        self, match_id: str, steps: Sequence[tuple[Decide, uuid.UUID | None]]
    ) -> list[Outcome]:
        """Decide several commands in order, then append all their events at once.

        Each step decides against the state the steps before it leave; a
        refused step changes nothing and the next one goes on. One append
        means one broker round trip and one update for the match's players.

        Raises:
            The errors of ``execute``; on ``DeliveryError`` no step counts.
        """
        self._check_match(match_id)
        async with self._locks[match_id]:
            state = self.matches.get(match_id)
            if state is None:
                raise UnknownMatch(match_id)
            outcomes, decided = self._decide_steps(match_id, state, steps)
            if decided:
                await self._append(match_id, state, decided)
        if decided:
            await self._send_robot_commands(match_id)
        seq = self.seq(match_id)
        return [o if not o.ok else Outcome(True, match_id, seq=seq) for o in outcomes]

    def _decide_steps(
        self,
        match_id: str,
        state: MatchState,
        steps: Sequence[tuple[Decide, uuid.UUID | None]],
    ) -> tuple[list[Outcome], list[tuple[Payload, uuid.UUID | None]]]:
        ctx = self.context()
        # Later steps decide against a scratch state that has the earlier
        # steps' events folded in; a single step needs no scratch.
        scratch = state.copy() if len(steps) > 1 else state
        outcomes: list[Outcome] = []
        decided: list[tuple[Payload, uuid.UUID | None]] = []
        for number, (decide, causation_id) in enumerate(steps, start=1):
            try:
                payloads = decide(scratch, ctx)
            except RuleViolation as exc:
                seq = self.seq(match_id)
                outcomes.append(Outcome(False, match_id, exc.code, exc.message, seq))
                continue
            outcomes.append(Outcome(True, match_id))
            decided += [(p, causation_id) for p in payloads]
            if number < len(steps):
                for payload in payloads:
                    evolve(scratch, payload)
        return outcomes, decided

    async def _append(
        self,
        match_id: str,
        state: MatchState,
        decided: list[tuple[Payload, uuid.UUID | None]],
    ) -> None:
        correlation = uuid.uuid5(_CORRELATION, match_id)
        events = [
            new_event(
                p,
                match_id=match_id,
                producer=f"engine-{self.index}",
                causation_id=causation_id,
                correlation_id=correlation,
            )
            for p, causation_id in decided
        ]
        try:
            await self.producer.append_many(
                [(self.topics.match_events, e) for e in events]
            )
        except DeliveryError:
            logger.warning("append failed match_id=%s; reloading from log", match_id)
            await self._reload(match_id)
            raise
        before = state.phase
        for event in events:
            state.apply(event)
            self.logs[match_id].append(event)
        if state.phase != before:
            logger.info(
                "match state match_id=%s round=%d state=%s->%s",
                match_id,
                len(state.rounds),
                before,
                state.phase,
            )
        self._index(match_id, state)
        self._notify(match_id)

    async def _reload(self, match_id: str) -> None:
        from events.reader import read_match

        events = await asyncio.to_thread(
            read_match, self.settings.kafka, self.bootstrap, match_id
        )
        state = MatchState(match_id)
        for event in events:
            state.apply(event)
        self.matches[match_id] = state
        self.logs[match_id] = events
        self._notify(match_id)

    # Robots

    async def _send_robot_commands(self, match_id: str) -> None:
        state = self.matches.get(match_id)
        if state is None:
            return
        fresh = pending_robot_commands(state, self.sent_commands)
        if not fresh:
            return
        self.sent_commands.update(c.command_id for c in fresh)
        records = [
            (
                self._command_topic(c.persona),
                new_event(c, match_id=match_id, producer=f"engine-{self.index}"),
            )
            for c in fresh
        ]
        try:
            await self.producer.append_many(records)
        except DeliveryError as exc:
            self.sent_commands.difference_update(c.command_id for c in fresh)
            logger.warning(
                "robot commands not sent match_id=%s error=%s", match_id, exc
            )

    def _command_topic(self, persona: str) -> TopicSettings:
        topic = self._command_topics.get(persona)
        return topic or self.topics.persona_commands(persona)

    # Deadlines and housekeeping

    async def tick(self) -> None:
        """Close every phase whose deadline passed; evict old ended matches."""
        now = self.now()
        for match_id in self.deadlines.pop_due(now):
            state = self.matches.get(match_id)
            if state is None or state.phase == "ended":
                continue
            try:
                await self.execute(match_id, advance)
            except DeliveryError:
                self.deadlines.push(now + timedelta(seconds=0.5), match_id)
        self._gauge_active()
        retention = timedelta(seconds=self.settings.engine.ended_retention_s)
        for match_id in self._ended_before(now - retention):
            self._evict(match_id)

    def _gauge_active(self) -> None:
        # Counting means a pass over every match: once a second, not per tick.
        clock = time.monotonic()
        if clock - self._gauged_at < GAUGE_INTERVAL_S:
            return
        self._gauged_at = clock
        active = sum(1 for s in self.matches.values() if s.phase != "ended")
        engine_metrics().active_matches.set(active, {"engine": str(self.index)})

    def _ended_before(self, cutoff: datetime) -> list[str]:
        # ``ended_at`` is kept in order of end time, so the scan stops at the
        # first match still inside the retention window.
        expired: list[str] = []
        for match_id, ended in self.ended_at.items():
            if ended >= cutoff:
                break
            expired.append(match_id)
        return expired

    def _index(self, match_id: str, state: MatchState) -> None:
        deadline = state.deadline()
        if deadline is not None:
            self.deadlines.push(deadline, match_id)
        if state.phase != "lobby" and state.settings and state.settings.invite_code:
            self.invites.pop(state.settings.invite_code, None)
        elif state.phase == "lobby" and state.settings and state.settings.invite_code:
            self.invites[state.settings.invite_code] = match_id
        if state.phase == "ended":
            self.ended_at.setdefault(match_id, self.now())

    def _evict(self, match_id: str) -> None:
        self.matches.pop(match_id, None)
        self.logs.pop(match_id, None)
        self.ended_at.pop(match_id, None)
        self._locks.pop(match_id, None)
        self._changed.pop(match_id, None)

    # Reading

    def seq(self, match_id: str) -> int:
        """How many events the match has: the sequence number of the last one."""
        return len(self.logs.get(match_id, ()))

    async def events_since(
        self, match_id: str, after: int, wait_s: float = 0.0
    ) -> list[Envelope]:
        """Events after sequence number ``after``; waits up to ``wait_s`` for one."""
        self._check_match(match_id)
        if match_id not in self.logs:
            raise UnknownMatch(match_id)
        if self.seq(match_id) <= after and wait_s > 0:
            signal = self._changed.setdefault(match_id, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signal.wait(), wait_s)
        return list(self.logs.get(match_id, [])[after:])

    async def events_since_many(
        self, cursors: dict[str, int], wait_s: float = 0.0
    ) -> dict[str, list[Envelope] | ActorsError]:
        """New events of several matches, each after its own sequence number.

        Waits up to ``wait_s`` for a change to any match of this engine (or a
        ``wake``) when none has new events. Only matches with new events or
        an error are in the answer; an error (``UnknownMatch``,
        ``MatchSetAside``, ``WrongEngine``) stands for its match alone.
        """
        found = self._events_after(cursors)
        if not found and wait_s > 0:
            if self._any_change is None:
                self._any_change = asyncio.Event()
            signal = self._any_change
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signal.wait(), wait_s)
            found = self._events_after(cursors)
        return found

    def wake(self) -> None:
        """End every ``events_since_many`` wait now."""
        signal, self._any_change = self._any_change, None
        if signal is not None:
            signal.set()

    def _events_after(
        self, cursors: dict[str, int]
    ) -> dict[str, list[Envelope] | ActorsError]:
        found: dict[str, list[Envelope] | ActorsError] = {}
        for match_id, after in cursors.items():
            log = self.logs.get(match_id)
            if log is None:
                # Matches set aside or owned elsewhere are never in ``logs``.
                try:
                    self._check_match(match_id)
                    raise UnknownMatch(match_id)
                except ActorsError as exc:
                    found[match_id] = exc
            elif len(log) > after:
                found[match_id] = log[after:]
        return found

    def _notify(self, match_id: str) -> None:
        signal = self._changed.pop(match_id, None)
        if signal is not None:
            signal.set()
        self.wake()

    # Helpers

    def now(self) -> datetime:
        return datetime.now(UTC)

    def context(self) -> Context:
        return Context(
            now=self.now(), rng=self.rng, prompts=self.bank, personas=self.personas
        )

    def _new_match_id(self) -> str:
        while True:
            match_id = f"m-{self.rng.getrandbits(64):016x}"
            if engine_index(match_id, self.settings) == self.index:
                return match_id

    def _new_invite_code(self) -> str:
        while True:
            code = new_invite_code(self.rng)
            engines = self.settings.engine.engines
            if invite_engine(code, engines) == self.index and code not in self.invites:
                return code

    def status(self) -> dict[str, Any]:
        """Counts for operators."""
        phases: dict[str, int] = defaultdict(int)
        for state in self.matches.values():
            phases[state.phase] += 1
        return {
            "engine": self.index,
            "started_at": self.started_at.isoformat(),
            "matches": len(self.matches),
            "phases": dict(phases),
            "set_aside": sorted(self.set_aside),
            "open_invites": len(self.invites),
            "deadlines_queued": len(self.deadlines),
        }
