"""The match engine's core: the single writer of the matches it owns."""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from actors._engine_deadlines import Timetable
from actors._engine_decisions import (
    Decide,
    Decided,
    Outcome,
    Step,
    creation,
    decide_steps,
    match_events,
)
from actors._engine_log import MatchLog
from actors._engine_robots import RobotCommands
from actors._engine_signals import ChangeSignals
from actors._metrics import engine_metrics
from actors.engines import engine_index, invite_engine
from actors.errors import ActorsError, MatchSetAside, UnknownMatch, WrongEngine
from configs import AppSettings
from events import DeliveryError, Envelope, encode
from events.producer import EventProducer
from events.reader import LogEntry
from game import (
    Context,
    MatchState,
    PromptBank,
    TemplateBook,
    advance,
    cast_vote,
    join_match,
    new_invite_code,
    submit_answer,
)

__all__ = [
    "GAUGE_INTERVAL_S",
    "REBUILD_FIRST_BACKOFF_S",
    "REBUILD_MAX_BACKOFF_S",
    "Decide",
    "EngineCore",
    "MatchSetAside",
    "Outcome",
]

logger = logging.getLogger(__name__)

REBUILD_FIRST_BACKOFF_S = 0.5
REBUILD_MAX_BACKOFF_S = 30.0
GAUGE_INTERVAL_S = 1.0


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
        self.rng = rng or random.SystemRandom()
        self.matches: dict[str, MatchState] = {}
        self.logs: dict[str, list[Envelope]] = {}
        self.invites: dict[str, str] = {}
        self.set_aside: dict[str, str] = {}
        self.timetable = Timetable()
        self._robot_commands = RobotCommands(
            self.producer, self.topics, self.personas, self._producer_name
        )
        self._log = MatchLog(settings, bootstrap, index, self.rng)
        self._signals = ChangeSignals()
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._sending: set[asyncio.Task[None]] = set()
        self.ready = asyncio.Event()
        self._gauged_at = float("-inf")
        self.started_at = datetime.now(UTC)

    @property
    def _producer_name(self) -> str:
        return f"engine-{self.index}"

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
        entries = await self._log.read_owned(
            self.owned_partitions(), first_backoff_s, max_backoff_s
        )
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
                self.timetable.ended(match_id, self.logs[match_id][-1].occurred_at)
            self._index(match_id, state)
        self.timetable.sort()
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
        decide = creation(match_id, resolved, invite, player_id, token_sha256)
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
        self, match_id: str, steps: Sequence[Step]
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
            outcomes, decided = decide_steps(
                match_id, state, steps, self.context(), self.seq(match_id)
            )
            if decided:
                await self._append(match_id, state, decided)
        # Sent outside the lock and not awaited: neither the match's next
        # command nor the caller waits for the broker to confirm the robots'
        # commands. Under load that confirmation was half of every call.
        if decided:
            self._spawn_robot_commands(match_id)
        seq = self.seq(match_id)
        return [o if not o.ok else Outcome(True, match_id, seq=seq) for o in outcomes]

    async def _append(self, match_id: str, state: MatchState, decided: Decided) -> None:
        events = match_events(match_id, decided, self._producer_name)
        try:
            await self.producer.append_many(
                [(self.topics.match_events, e) for e in events]
            )
        except DeliveryError:
            # Each event is confirmed on its own, so the broker may have kept
            # some of them: only the log can say which, so it is read back.
            logger.warning("append failed match_id=%s; reloading from log", match_id)
            await self._reload(match_id)
            raise
        before = state.phase
        for event in events:
            state.apply(event)
            self.logs[match_id].append(event)
        if state.phase != before:
            # A match's start and end are worth a line at INFO; each of its
            # dozen phase changes is not, with hundreds of matches at once.
            start_or_end = before in ("new", "lobby") or state.phase == "ended"
            logger.log(
                logging.INFO if start_or_end else logging.DEBUG,
                "match state match_id=%s round=%d state=%s->%s",
                match_id,
                len(state.rounds),
                before,
                state.phase,
            )
        self._index(match_id, state)
        self._signals.changed(match_id)

    async def _reload(self, match_id: str) -> None:
        events = await self._log.read_match(match_id)
        state = MatchState(match_id)
        for event in events:
            state.apply(event)
        self.matches[match_id] = state
        self.logs[match_id] = events
        self._signals.changed(match_id)

    def _spawn_robot_commands(self, match_id: str) -> None:
        task = asyncio.create_task(self._send_robot_commands(match_id))
        self._sending.add(task)
        task.add_done_callback(self._robot_commands_sent)

    def _robot_commands_sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            # A broker refusal is logged by the sender and retried on the
            # match's next change; anything else is a bug worth a trace.
            logger.error("robot commands not sent", exc_info=error)

    async def robot_commands_sent(self) -> None:
        """Wait until every robot command send under way has finished."""
        while self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)

    async def _send_robot_commands(self, match_id: str) -> None:
        state = self.matches.get(match_id)
        if state is not None:
            await self._robot_commands.send(match_id, state)

    # Deadlines and housekeeping

    async def tick(self) -> None:
        """Close every phase whose deadline passed; evict old ended matches."""
        now = self.now()
        for match_id in self.timetable.due(now):
            # The queue may hold deadlines the match has since moved past;
            # ``advance`` decides from the live state whether any is due.
            state = self.matches.get(match_id)
            if state is None or state.phase == "ended":
                continue
            try:
                await self.execute(match_id, advance)
            except DeliveryError:
                self.timetable.retry(match_id, now)
        self._gauge_active()
        retention = timedelta(seconds=self.settings.engine.ended_retention_s)
        for match_id in self.timetable.ended_before(now - retention):
            self._evict(match_id)

    def _gauge_active(self) -> None:
        # Counting means a pass over every match: once a second, not per tick.
        clock = time.monotonic()
        if clock - self._gauged_at < GAUGE_INTERVAL_S:
            return
        self._gauged_at = clock
        active = sum(1 for s in self.matches.values() if s.phase != "ended")
        engine_metrics().active_matches.set(active, {"engine": str(self.index)})

    def _index(self, match_id: str, state: MatchState) -> None:
        self.timetable.note(match_id, state, self.now())
        # An invite code seats players only while its match is in the lobby.
        if state.phase != "lobby" and state.settings and state.settings.invite_code:
            self.invites.pop(state.settings.invite_code, None)
        elif state.phase == "lobby" and state.settings and state.settings.invite_code:
            self.invites[state.settings.invite_code] = match_id

    def _evict(self, match_id: str) -> None:
        self.matches.pop(match_id, None)
        self.logs.pop(match_id, None)
        self.timetable.forget(match_id)
        self._locks.pop(match_id, None)
        self._signals.forget(match_id)

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
            await self._signals.wait_for(match_id, wait_s)
        return list(self.logs.get(match_id, [])[after:])

    async def events_since_many(
        self, cursors: dict[str, int], wait_s: float = 0.0
    ) -> dict[str, list[bytes] | ActorsError]:
        """New events of several matches, each after its own sequence number.

        Waits up to ``wait_s`` for a change to any match of this engine (or a
        ``wake``) when none has new events. Only matches with new events or
        an error are in the answer; an error (``UnknownMatch``,
        ``MatchSetAside``, ``WrongEngine``) stands for its match alone.
        Events come encoded by the codec, as they are in Kafka: encoding
        and decoding one cost 7 us against 20 for pickling the model.
        """
        found = self._events_after(cursors)
        if not found and wait_s > 0:
            await self._signals.wait_any(wait_s)
            found = self._events_after(cursors)
        return found

    def wake(self) -> None:
        """End every ``events_since_many`` wait now."""
        self._signals.wake()

    def _events_after(
        self, cursors: dict[str, int]
    ) -> dict[str, list[bytes] | ActorsError]:
        found: dict[str, list[bytes] | ActorsError] = {}
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
                found[match_id] = [encode(event) for event in log[after:]]
        return found

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
            "deadlines_queued": len(self.timetable),
        }
