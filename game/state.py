"""The state of one match, folded from its events and nothing else."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from events import Envelope, Payload
from events.match_events import (
    AnswerSubmitted,
    LateResultRecorded,
    MatchCreated,
    MatchEnded,
    MatchStarted,
    PlayerJoined,
    RobotsAssigned,
    RoundScored,
    RoundStarted,
    VoteCast,
    VotingOpened,
)

Phase = Literal["new", "lobby", "answering", "voting", "intermission", "ended"]


@dataclass
class RoundState:
    """One round: its prompt, answers, voting order and votes."""

    number: int
    prompt_id: str
    prompt: str
    answer_deadline: datetime
    answers: dict[str, str] = field(default_factory=dict)
    order: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    vote_deadline: datetime | None = None
    votes: dict[str, str] = field(default_factory=dict)
    points: dict[str, int] = field(default_factory=dict)

    def copy(self) -> RoundState:
        """An independent copy: changing one never changes the other."""
        return replace(
            self,
            answers=dict(self.answers),
            votes=dict(self.votes),
            points=dict(self.points),
        )


@dataclass
class MatchState:
    """Everything the rules know about a match."""

    match_id: str
    phase: Phase = "new"
    settings: MatchCreated | None = None
    players: list[str] = field(default_factory=list)
    token_hashes: dict[str, str] = field(default_factory=dict)
    personas: dict[str, str] = field(default_factory=dict)
    seats: dict[str, str] = field(default_factory=dict)
    rounds: list[RoundState] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    next_round_at: datetime | None = None
    command_ids: set[str] = field(default_factory=set)
    event_ids: list[str] = field(default_factory=list)
    ended: MatchEnded | None = None

    def copy(self) -> MatchState:
        """An independent copy that can be evolved without touching this one.

        Every container is copied; payloads (frozen models), datetimes and
        tuples are immutable, so they are shared. Much cheaper than
        ``copy.deepcopy``, which rebuilt every frozen model on each command.
        Rounds before the current one are shared too: ``evolve`` changes
        only the current round (``_round`` refuses any other).
        """
        rounds = self.rounds[:-1] + [r.copy() for r in self.rounds[-1:]]
        return replace(
            self,
            players=list(self.players),
            token_hashes=dict(self.token_hashes),
            personas=dict(self.personas),
            seats=dict(self.seats),
            rounds=rounds,
            totals=dict(self.totals),
            command_ids=set(self.command_ids),
            event_ids=list(self.event_ids),
        )

    @property
    def current(self) -> RoundState | None:
        """The round in play, or the last one played."""
        return self.rounds[-1] if self.rounds else None

    @property
    def seat_of(self) -> dict[str, str]:
        """Occupant id to seat label."""
        return {occupant: seat for seat, occupant in self.seats.items()}

    def kind_of(self, seat: str) -> Literal["human", "robot"]:
        """Whether a seat holds a human or a robot (never shown before the reveal)."""
        return "robot" if self.seats[seat] in self.personas else "human"

    def robot_seats(self) -> list[str]:
        """Seats held by robots, in label order."""
        return sorted(s for s, o in self.seats.items() if o in self.personas)

    def deadline(self) -> datetime | None:
        """When the current phase ends on its own, if it does."""
        current = self.current
        if self.phase == "answering" and current is not None:
            return current.answer_deadline
        if self.phase == "voting" and current is not None:
            return current.vote_deadline
        if self.phase == "intermission":
            return self.next_round_at
        if self.phase == "lobby" and self.settings is not None:
            return self.settings.invite_expires_at
        return None

    def apply(self, event: Envelope) -> None:
        """Fold one event into the state."""
        evolve(self, event.payload)
        self.event_ids.append(str(event.event_id))


def evolve(state: MatchState, payload: Payload) -> None:
    """Change the state by one payload; the only way state ever changes."""
    match payload:
        case MatchCreated():
            state.settings = payload
            state.phase = "lobby"
        case PlayerJoined():
            state.players.append(payload.player_id)
            state.token_hashes[payload.player_id] = payload.token_sha256
        case RobotsAssigned():
            state.personas = {r.robot_id: r.persona for r in payload.robots}
        case MatchStarted():
            state.seats = {s.seat: s.occupant_id for s in payload.seats}
            state.totals = dict.fromkeys(sorted(state.seats), 0)
        case RoundStarted():
            state.rounds.append(
                RoundState(
                    number=payload.round,
                    prompt_id=payload.prompt_id,
                    prompt=payload.prompt,
                    answer_deadline=payload.deadline,
                )
            )
            state.next_round_at = None
            state.phase = "answering"
        case AnswerSubmitted():
            _round(state, payload.round).answers[payload.seat] = payload.text
            state.command_ids.add(payload.command_id)
        case VotingOpened():
            current = _round(state, payload.round)
            current.order = payload.order
            current.missing = payload.missing
            current.vote_deadline = payload.deadline
            state.phase = "voting"
        case VoteCast():
            _round(state, payload.round).votes[payload.voter] = payload.target
            state.command_ids.add(payload.command_id)
        case RoundScored():
            _round(state, payload.round).points = dict(payload.points)
            state.totals = dict(payload.totals)
            state.next_round_at = payload.next_round_at
            state.phase = "intermission"
        case LateResultRecorded():
            state.command_ids.add(payload.command_id)
        case MatchEnded():
            state.ended = payload
            state.phase = "ended"
        case _:
            raise TypeError(f"{payload.type} is not a match event")


def _round(state: MatchState, number: int) -> RoundState:
    current = state.current
    if current is None or current.number != number:
        raise ValueError(f"event for round {number} while in round {current}")
    return current


def fold(match_id: str, events: Iterable[Envelope]) -> MatchState:
    """Rebuild a match's state from its events, in log order."""
    state = MatchState(match_id=match_id)
    for event in events:
        state.apply(event)
    return state
