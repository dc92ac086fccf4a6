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
from configs import AppSettings
from events import Envelope
from events.consumer import EventConsumer, Record
from events.match_events import MatchEnded, PlayerJoined, RobotsAssigned, RoundScored
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
    """Running analytics folded from the streams."""

    matches_started: int = 0
    matches_completed: int = 0
    matches_abandoned: int = 0
    votes: int = 0
    votes_on_humans: int = 0
    personas: defaultdict[str, PersonaFigures] = field(
        default_factory=lambda: defaultdict(PersonaFigures)
    )
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=20000))


class Projection:
    """Folds ``match-events`` and ``robot-events`` into read models."""

    def __init__(self) -> None:
        self.matches: dict[str, MatchState] = {}
        self.logs: dict[str, list[Envelope]] = {}
        self.by_player: defaultdict[str, list[str]] = defaultdict(list)
        self.persona_of: dict[str, str] = {}
        self.stats = Stats()

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
            self.persona_of.update({r.robot_id: r.persona for r in payload.robots})
            self.stats.matches_started += 1
        elif isinstance(payload, RoundScored):
            self._count_votes(state, payload)
        elif isinstance(payload, MatchEnded):
            if payload.reason == "completed":
                self.stats.matches_completed += 1
            else:
                self.stats.matches_abandoned += 1

    def _count_votes(self, state: MatchState, scored: RoundScored) -> None:
        current = state.current
        assert current is not None
        stats = self.stats
        for voter, target in scored.votes.items():
            stats.votes += 1
            stats.votes_on_humans += state.kind_of(target) == "human"
            for seat in current.order:
                persona = state.personas.get(state.seats[seat])
                if persona and seat != voter:
                    stats.personas[persona].votes_possible += 1
                    stats.personas[persona].votes_drawn += seat == target

    def fold_robot_event(self, event: Envelope) -> None:
        """Add a robot result's latency to the figures."""
        result = event.payload
        if isinstance(result, AnswerGenerated | VoteGenerated):
            self.stats.latencies_ms.append(result.latency_ms)
            persona = self.persona_of.get(result.robot_id)
            if persona:
                self.stats.personas[persona].latencies_ms.append(result.latency_ms)

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
                self._fold(fold, record, consumer)

    @staticmethod
    def _fold(fold: Any, record: Record, consumer: EventConsumer) -> None:
        try:
            fold(record.envelope)
        except Exception:
            logger.exception("history could not fold type=%s", record.envelope.type)
        consumer.done(record)

    async def ready(self) -> bool:
        """Wait until the consumers started."""
        await self._ready.wait()
        return True

    async def timeline(self, match_id: str) -> tuple[list[Envelope], bool] | None:
        """A match's events and whether it ended, or None when unknown."""
        log = self.projection.logs.get(match_id)
        if log is None:
            return None
        return list(log), self.projection.matches[match_id].phase == "ended"

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
