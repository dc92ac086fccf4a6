"""Decide: check a command against a match's state and return new events.

Every function here is pure. It reads a ``MatchState`` and returns the
payloads the command produces, in order, or raises ``RuleViolation``. The
state itself only changes when those events are folded back in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from events import Payload
from events.match_events import (
    AnswerSubmitted,
    AssignedRobot,
    LateResultRecorded,
    MatchCreated,
    MatchEnded,
    MatchStarted,
    PlayerJoined,
    RevealedSeat,
    RobotsAssigned,
    RoundScored,
    RoundStarted,
    SeatAssignment,
    VoteCast,
    VotingOpened,
)
from events.robot_events import AnswerGenerated, VoteGenerated
from game.errors import GameError, RuleViolation
from game.prompts import PromptBank
from game.scoring import score_round, winners
from game.state import MatchState, evolve
from game.templates import MatchTemplate

SEAT_LABELS = (
    "amber", "birch", "cobalt", "dune", "ember", "fern", "garnet", "harbor",
)  # fmt: skip
INVITE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
INVITE_LENGTH = 6


@dataclass(frozen=True)
class Context:
    """What a decision may use besides the state: time, chance, the bank."""

    now: datetime
    rng: random.Random
    prompts: PromptBank
    personas: tuple[str, ...]


def new_invite_code(rng: random.Random) -> str:
    """Six characters from an alphabet without look-alikes (no 0/O, 1/I/L)."""
    return "".join(rng.choice(INVITE_ALPHABET) for _ in range(INVITE_LENGTH))


def create_match(
    template: MatchTemplate, now: datetime, invite_code: str | None = None
) -> list[Payload]:
    """Open a match from a template; an invite code makes it joinable."""
    timings = template.timings
    expires = now + timedelta(seconds=timings.invite_ttl_s) if invite_code else None
    return [
        MatchCreated(
            template=template.name,
            humans=template.humans,
            robots=template.robots,
            rounds=timings.rounds,
            answer_timeout_s=timings.answer_timeout_s,
            vote_timeout_s=timings.vote_timeout_s,
            intermission_s=timings.intermission_s,
            max_answer_chars=timings.max_answer_chars,
            invite_code=invite_code,
            invite_expires_at=expires,
        )
    ]


def join_match(
    state: MatchState, player_id: str, token_sha256: str, ctx: Context
) -> list[Payload]:
    """Seat a human; the match starts as soon as its human places are full."""
    if player_id in state.players:
        raise RuleViolation("already_joined", "this player is already in the match")
    full = state.settings and len(state.players) >= state.settings.humans
    if full and state.phase != "ended":
        raise RuleViolation("match_full", "every human place is taken")
    settings = _check_phase(state, "lobby")
    if settings.invite_expires_at and ctx.now >= settings.invite_expires_at:
        raise RuleViolation("invite_expired", "the invite code has expired")
    decision = _Decision(state, ctx)
    decision.emit(PlayerJoined(player_id=player_id, token_sha256=token_sha256))
    return decision.settle()


def submit_answer(
    state: MatchState, occupant_id: str, text: str, command_id: str, ctx: Context
) -> list[Payload]:
    """Record a seat's answer to the current prompt."""
    if command_id in state.command_ids:
        return []
    settings = _check_phase(state, "answering")
    seat = _seat(state, occupant_id)
    current = state.current
    assert current is not None
    if ctx.now >= current.answer_deadline:
        raise RuleViolation("deadline_passed", "the answer deadline has passed")
    if seat in current.answers:
        raise RuleViolation("already_answered", "this seat already answered")
    cleaned = text.strip()
    if not cleaned:
        raise RuleViolation("empty_answer", "an answer cannot be empty")
    if len(cleaned) > settings.max_answer_chars:
        raise RuleViolation(
            "answer_too_long",
            f"an answer has at most {settings.max_answer_chars} characters, "
            f"got {len(cleaned)}",
        )
    decision = _Decision(state, ctx)
    decision.emit(
        AnswerSubmitted(
            round=current.number, seat=seat, text=cleaned, command_id=command_id
        )
    )
    return decision.settle()


def cast_vote(
    state: MatchState, occupant_id: str, target: str, command_id: str, ctx: Context
) -> list[Payload]:
    """Record a seat's vote for the seat it thinks is human."""
    if command_id in state.command_ids:
        return []
    _check_phase(state, "voting")
    voter = _seat(state, occupant_id)
    current = state.current
    assert current is not None and current.vote_deadline is not None
    if ctx.now >= current.vote_deadline:
        raise RuleViolation("deadline_passed", "the vote deadline has passed")
    if voter not in current.order:
        raise RuleViolation(
            "no_answer_no_vote",
            f"seat {voter!r} did not answer this round, so it is not on the "
            "ballot and cannot vote; wait for the next round",
        )
    if voter in current.votes:
        raise RuleViolation("already_voted", "this seat already voted")
    if target == voter:
        raise RuleViolation("self_vote", "a seat cannot vote for itself")
    if target not in current.order:
        raise RuleViolation(
            "unknown_seat", f"{target!r} is not a seat on this round's ballot"
        )
    decision = _Decision(state, ctx)
    decision.emit(
        VoteCast(
            round=current.number, voter=voter, target=target, command_id=command_id
        )
    )
    return decision.settle()


def accept_robot_result(
    state: MatchState, result: AnswerGenerated | VoteGenerated, ctx: Context
) -> list[Payload]:
    """Fold a robot's result in, or record it as late when its time is over."""
    if result.command_id in state.command_ids or state.phase == "ended":
        return []
    occupant = state.seats.get(result.seat)
    if occupant is None or occupant not in state.personas:
        raise RuleViolation("not_in_match", f"{result.seat!r} is not a robot seat")
    current = state.current
    phase: Literal["answering", "voting"] = "voting"
    deadline = current.vote_deadline if current else None
    if isinstance(result, AnswerGenerated):
        phase = "answering"
        deadline = current.answer_deadline if current else None
    on_time = (
        current is not None
        and state.phase == phase
        and current.number == result.round
        and deadline is not None
        and ctx.now < deadline
    )
    if not on_time:
        return [
            LateResultRecorded(
                round=result.round,
                seat=result.seat,
                command_id=result.command_id,
                phase=phase,
            )
        ]
    if isinstance(result, AnswerGenerated):
        return submit_answer(state, occupant, result.text, result.command_id, ctx)
    return cast_vote(state, occupant, result.target, result.command_id, ctx)


def advance(state: MatchState, ctx: Context) -> list[Payload]:
    """Close whatever phase's deadline has passed; nothing when none has."""
    deadline = state.deadline()
    if deadline is None or ctx.now < deadline:
        return []
    decision = _Decision(state, ctx)
    if state.phase == "lobby":
        decision.end("abandoned")
    elif state.phase == "answering":
        decision.open_voting()
    elif state.phase == "voting":
        decision.score()
    return decision.settle()


@dataclass
class _Decision:
    """Events decided so far, folded into a scratch copy of the state."""

    state: MatchState
    ctx: Context
    events: list[Payload] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.state = self.state.copy()

    def emit(self, payload: Payload) -> None:
        self.events.append(payload)
        evolve(self.state, payload)

    def settle(self) -> list[Payload]:
        """Take every automatic step the state now calls for."""
        while self._step():
            pass
        return self.events

    def _step(self) -> bool:
        state, settings = self.state, self.state.settings
        assert settings is not None
        current = state.current
        if state.phase == "lobby" and len(state.players) == settings.humans:
            self.start()
        elif state.phase == "answering" and current is not None:
            if len(current.answers) < len(state.seats):
                return False
            self.open_voting()
        elif state.phase == "voting" and current is not None:
            voters = current.order if len(current.order) >= 2 else ()
            if any(seat not in current.votes for seat in voters):
                return False
            self.score()
        elif state.phase == "intermission":
            if state.next_round_at is not None and self.ctx.now < state.next_round_at:
                return False
            if len(state.rounds) >= settings.rounds:
                self.end("completed")
            else:
                self.start_round()
        else:
            return False
        return True

    def start(self) -> None:
        settings, rng = self.state.settings, self.ctx.rng
        assert settings is not None
        personas = _pick_personas(self.ctx.personas, settings.robots, rng)
        robots = tuple(
            AssignedRobot(robot_id=f"robot-{rng.getrandbits(48):012x}", persona=p)
            for p in personas
        )
        self.emit(RobotsAssigned(robots=robots))
        occupants = [*self.state.players, *(r.robot_id for r in robots)]
        rng.shuffle(occupants)
        labels = sorted(rng.sample(SEAT_LABELS, len(occupants)))
        seats = tuple(
            SeatAssignment(seat=label, occupant_id=occupant)
            for label, occupant in zip(labels, occupants, strict=True)
        )
        self.emit(MatchStarted(seats=seats))
        self.start_round()

    def start_round(self) -> None:
        settings = self.state.settings
        assert settings is not None
        used = [r.prompt_id for r in self.state.rounds]
        prompt = self.ctx.prompts.draw(used, self.ctx.rng)
        deadline = self.ctx.now + timedelta(seconds=settings.answer_timeout_s)
        self.emit(
            RoundStarted(
                round=len(self.state.rounds) + 1,
                prompt_id=prompt.id,
                prompt=prompt.text,
                deadline=deadline,
            )
        )

    def open_voting(self) -> None:
        settings, current = self.state.settings, self.state.current
        assert settings is not None and current is not None
        answered = sorted(current.answers)
        self.ctx.rng.shuffle(answered)
        missing = tuple(sorted(set(self.state.seats) - set(answered)))
        deadline = self.ctx.now + timedelta(seconds=settings.vote_timeout_s)
        self.emit(
            VotingOpened(
                round=current.number,
                order=tuple(answered),
                missing=missing,
                deadline=deadline,
            )
        )

    def score(self) -> None:
        state, settings, current = self.state, self.state.settings, self.state.current
        assert settings is not None and current is not None
        kinds = {seat: state.kind_of(seat) for seat in state.seats}
        points = score_round(current.order, current.votes, kinds)
        totals = {seat: state.totals.get(seat, 0) + points[seat] for seat in kinds}
        last = current.number >= settings.rounds
        next_at = None
        if not last:
            next_at = self.ctx.now + timedelta(seconds=settings.intermission_s)
        self.emit(
            RoundScored(
                round=current.number,
                votes=dict(current.votes),
                points=points,
                totals=totals,
                next_round_at=next_at,
            )
        )

    def end(self, reason: str) -> None:
        state = self.state
        reveal = tuple(
            RevealedSeat(
                seat=seat,
                kind=state.kind_of(seat),
                occupant_id=occupant,
                persona=state.personas.get(occupant),
            )
            for seat, occupant in sorted(state.seats.items())
        )
        self.emit(
            MatchEnded(
                reason="completed" if reason == "completed" else "abandoned",
                totals=dict(state.totals),
                winners=winners(state.totals),
                reveal=reveal,
            )
        )


def _pick_personas(
    personas: tuple[str, ...], count: int, rng: random.Random
) -> list[str]:
    """Distinct personas while they last, then repeats in a fresh shuffle."""
    if count and not personas:
        raise GameError("no robot personas are configured; see configs/personas.yaml")
    picked: list[str] = []
    while len(picked) < count:
        batch = list(personas)
        rng.shuffle(batch)
        picked.extend(batch[: count - len(picked)])
    return picked


def _check_phase(state: MatchState, expected: str) -> MatchCreated:
    if state.settings is None:
        raise RuleViolation("unknown_match", f"match {state.match_id!r} does not exist")
    if state.phase == "ended":
        raise RuleViolation("match_ended", "the match is over")
    if state.phase != expected:
        raise RuleViolation(
            "wrong_phase", f"the match is in its {state.phase} phase, not {expected}"
        )
    return state.settings


def _seat(state: MatchState, occupant_id: str) -> str:
    seat = state.seat_of.get(occupant_id)
    if seat is None:
        raise RuleViolation("not_in_match", "this player has no seat in the match")
    return seat
