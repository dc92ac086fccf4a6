"""The history projector: match timelines, player histories and live stats."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import ray

from actors._figures import percentile
from actors._heap import HeapKeeper
from actors._logging import setup_logging
from configs import AppSettings
from events import Envelope, Payload
from events.consumer import EventConsumer, Record
from events.match_events import (
    AnswerSubmitted,
    LateResultRecorded,
    MatchEnded,
    MatchStarted,
    PlayerJoined,
    RobotsAssigned,
    RoundScored,
    VoteCast,
)
from events.producer import EventProducer
from events.robot_events import AnswerGenerated, VoteGenerated
from game import MatchState

logger = logging.getLogger(__name__)

PROJECTOR_NAME = "robot-orchestra-history"


@dataclass
class PersonaFigures:
    """How often a persona's robots were voted for as human."""

    votes_drawn: int = 0
    votes_possible: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=5000))


@dataclass
class Stats:
    """Running analytics folded from the streams.

    Figures that depend on who sits where (votes, kinds, personas, robot
    latencies) count a match only once it ended: folded live, their changes
    from round to round would tell a running match's players which seats
    are robots.
    """

    matches_started: int = 0
    matches_completed: int = 0
    matches_abandoned: int = 0
    votes: int = 0
    votes_on_humans: int = 0
    personas: defaultdict[str, PersonaFigures] = field(
        default_factory=lambda: defaultdict(PersonaFigures)
    )
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=20000))


@dataclass
class _HeldBack:
    """A running match's figures, waiting for its reveal."""

    rounds: list[tuple[tuple[str, ...], dict[str, str]]] = field(default_factory=list)
    latencies_ms: list[tuple[str, float]] = field(default_factory=list)


class Projection:
    """Folds ``match-events`` and ``robot-events`` into read models."""

    def __init__(self) -> None:
        self.matches: dict[str, MatchState] = {}
        self.logs: dict[str, list[Envelope]] = {}
        self.by_player: defaultdict[str, list[str]] = defaultdict(list)
        self.stats = Stats()
        # TODO: robot results of a match whose match-events are gone (a
        # shorter retention than robot-events') wait here forever; drop
        # them once both topics share one retention.
        self._held_back: defaultdict[str, _HeldBack] = defaultdict(_HeldBack)

    def fold_match_event(self, event: Envelope) -> None:
        """Add one match event to its timeline and to the figures."""
        match_id = event.key
        state = self.matches.setdefault(match_id, MatchState(match_id))
        if event.event_id and str(event.event_id) in state.event_ids[-64:]:
            return  # a redelivery after a rebalance
        state.apply(event)
        self.logs.setdefault(match_id, []).append(event)
        payload = event.payload
        if isinstance(payload, PlayerJoined) and payload.token_sha256:
            self.by_player[payload.token_sha256].append(match_id)
        elif isinstance(payload, RobotsAssigned):
            self.stats.matches_started += 1
        elif isinstance(payload, RoundScored):
            order = state.current.order if state.current else ()
            self._held_back[match_id].rounds.append((order, dict(payload.votes)))
        elif isinstance(payload, MatchEnded):
            if payload.reason == "completed":
                self.stats.matches_completed += 1
            else:
                self.stats.matches_abandoned += 1
            self._reveal(state)

    def fold_robot_event(self, event: Envelope) -> None:
        """Add a robot result's latency to the figures once its match ended."""
        result = event.payload
        if not isinstance(result, AnswerGenerated | VoteGenerated):
            return
        state = self.matches.get(event.key)
        if state is not None and state.phase == "ended":
            self._add_latency(state, result.robot_id, result.latency_ms)
        else:
            held = self._held_back[event.key].latencies_ms
            held.append((result.robot_id, result.latency_ms))

    def _reveal(self, state: MatchState) -> None:
        held = self._held_back.pop(state.match_id, _HeldBack())
        for order, votes in held.rounds:
            self._count_votes(state, order, votes)
        for robot_id, latency_ms in held.latencies_ms:
            self._add_latency(state, robot_id, latency_ms)

    def _count_votes(
        self, state: MatchState, order: tuple[str, ...], votes: dict[str, str]
    ) -> None:
        stats = self.stats
        for voter, target in votes.items():
            stats.votes += 1
            stats.votes_on_humans += state.kind_of(target) == "human"
            for seat in order:
                persona = state.personas.get(state.seats[seat])
                if persona and seat != voter:
                    stats.personas[persona].votes_possible += 1
                    stats.personas[persona].votes_drawn += seat == target

    def _add_latency(self, state: MatchState, robot_id: str, latency_ms: float) -> None:
        self.stats.latencies_ms.append(latency_ms)
        persona = state.personas.get(robot_id)
        if persona:
            self.stats.personas[persona].latencies_ms.append(latency_ms)

    def timeline(self, match_id: str) -> tuple[list[Envelope], bool] | None:
        """A match's events and whether it ended, or None when unknown.

        Until the match ended only events with a public form are given, with
        every field that could tell kinds apart blanked.
        """
        log = self.logs.get(match_id)
        if log is None:
            return None
        if self.matches[match_id].phase == "ended":
            return list(log), True
        return [_redacted(e) for e in log if type(e.payload) not in _PRIVATE], False

    def player_matches(
        self, token_sha256: str, cursor: int, limit: int
    ) -> tuple[list[dict[str, Any]], int | None]:
        """A page of a player's matches, newest first, and the next cursor."""
        newest_first = list(reversed(self.by_player.get(token_sha256, [])))
        page = newest_first[cursor : cursor + limit]
        items = [self._summary(m, token_sha256) for m in page]
        more = cursor + limit < len(newest_first)
        return items, cursor + limit if more else None

    def _summary(self, match_id: str, token_sha256: str) -> dict[str, Any]:
        state = self.matches[match_id]
        log = self.logs[match_id]
        player = next(p for p, h in state.token_hashes.items() if h == token_sha256)
        seat = state.seat_of.get(player)
        ended = state.ended
        return {
            "match_id": match_id,
            "template": state.settings.template if state.settings else None,
            "started_at": log[0].occurred_at.isoformat(),
            "phase": state.phase,
            "seat": seat,
            # Points are scored by kind: none before the reveal.
            "score": ended.totals.get(seat) if ended and seat else None,
            "won": bool(ended and seat in ended.winners),
        }

    def figures(self) -> dict[str, Any]:
        """The stats endpoint's body."""
        s = self.stats
        return {
            "matches_started": s.matches_started,
            "matches_completed": s.matches_completed,
            "matches_abandoned": s.matches_abandoned,
            "matches_running": sum(
                1
                for m in self.matches.values()
                if m.phase not in ("ended", "lobby", "new")
            ),
            "votes": s.votes,
            "human_detection_rate": _rate(s.votes_on_humans, s.votes),
            "robot_latency_ms": _percentiles(s.latencies_ms),
            "personas": {
                name: {
                    "taken_for_human_rate": _rate(p.votes_drawn, p.votes_possible),
                    "votes_drawn": p.votes_drawn,
                    "latency_ms": _percentiles(p.latencies_ms),
                }
                for name, p in sorted(s.personas.items())
            },
        }


# Before the reveal: events that exist only for robots are left out, and
# fields that would tell kinds apart (ids, robot command ids, answer and vote
# seats, points scored by kind) are blanked.
_PRIVATE = frozenset({RobotsAssigned, LateResultRecorded})
_HIDDEN = "hidden"
_BLANKED: dict[type[Payload], dict[str, Any]] = {
    PlayerJoined: {"player_id": _HIDDEN, "token_sha256": ""},
    AnswerSubmitted: {"seat": _HIDDEN, "text": "", "command_id": _HIDDEN},
    VoteCast: {"voter": _HIDDEN, "target": _HIDDEN, "command_id": _HIDDEN},
    RoundScored: {"points": {}, "totals": {}},
}


def _redacted(event: Envelope) -> Envelope:
    payload = event.payload
    if isinstance(payload, MatchStarted):
        seats = tuple(
            s.model_copy(update={"occupant_id": s.seat}) for s in payload.seats
        )
        payload = payload.model_copy(update={"seats": seats})
    elif type(payload) in _BLANKED:
        payload = payload.model_copy(update=_BLANKED[type(payload)])
    return event.model_copy(update={"payload": payload, "causation_id": None})


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _percentiles(values: deque[float]) -> dict[str, float | None]:
    return {"p50": percentile(values, 0.5), "p99": percentile(values, 0.99)}


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class HistoryProjector:
    """Consumes both streams in groups of its own, from the beginning.

    Its read models live in memory; a restart folds the log again.
    """

    def __init__(self, settings: AppSettings, bootstrap: str) -> None:
        setup_logging()
        topics = settings.kafka.topics
        self.projection = Projection()
        self.producer = EventProducer(settings.kafka, bootstrap)
        run = uuid.uuid4().hex[:8]
        self.consumers = {
            "match": EventConsumer(
                settings.kafka, bootstrap, f"history.{topics.match_events.name}.{run}",
                [topics.match_events], self.producer,
            ),
            "robot": EventConsumer(
                settings.kafka, bootstrap, f"history.{topics.robot_events.name}.{run}",
                [topics.robot_events], self.producer,
            ),
        }  # fmt: skip
        self._ready = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._consume(k)) for k in self.consumers]
        self._heap = HeapKeeper()
        self._heap.start()

    async def _consume(self, kind: str) -> None:
        consumer = self.consumers[kind]
        await consumer.start()
        self._ready.set()
        fold = (
            self.projection.fold_match_event
            if kind == "match"
            else self.projection.fold_robot_event
        )
        async for batch in consumer.batches():
            for record in batch:
                self._fold(fold, record)
            consumer.done_many(batch)

    @staticmethod
    def _fold(fold: Any, record: Record) -> None:
        try:
            fold(record.envelope)
        except Exception as exc:
            # Only the error's type: its text may quote a round's answers,
            # which never go to the logs.
            logger.warning(
                "history could not fold type=%s match_id=%s error=%s",
                record.envelope.type,
                record.envelope.match_id,
                type(exc).__name__,
            )

    async def ready(self) -> bool:
        """Wait until the consumers started."""
        await self._ready.wait()
        return True

    async def timeline(self, match_id: str) -> tuple[list[Envelope], bool] | None:
        """A match's events and whether it ended, redacted until the reveal."""
        return self.projection.timeline(match_id)

    async def player_matches(
        self, token_sha256: str, cursor: int, limit: int
    ) -> tuple[list[dict[str, Any]], int | None]:
        """A page of a player's past matches."""
        return self.projection.player_matches(token_sha256, cursor, limit)

    async def stats(self) -> dict[str, Any]:
        """Live analytics folded from the streams."""
        return self.projection.figures()


def start_projector(settings: AppSettings, bootstrap: str, namespace: str) -> Any:
    """Get or create the detached history projector."""
    return HistoryProjector.options(  # type: ignore[attr-defined]
        name=PROJECTOR_NAME,
        namespace=namespace,
        lifetime="detached",
        get_if_exists=True,
    ).remote(settings, bootstrap)
