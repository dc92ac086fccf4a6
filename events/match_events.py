"""Payloads of the match lifecycle, written to ``match-events``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from events._types import Identifier, Kind, Model, SeatLabel, UtcDatetime

Round = Annotated[int, Field(ge=1, le=100)]


class MatchCreated(Model):
    """A match was created from a template; it waits for its players."""

    type: Literal["match_created"] = "match_created"
    template: str
    humans: Annotated[int, Field(ge=1, le=8)]
    robots: Annotated[int, Field(ge=0, le=7)]
    rounds: Round
    answer_timeout_s: Annotated[float, Field(gt=0)]
    vote_timeout_s: Annotated[float, Field(gt=0)]
    intermission_s: Annotated[float, Field(ge=0)]
    max_answer_chars: Annotated[int, Field(ge=1, le=10_000)]
    invite_code: str | None = None
    invite_expires_at: UtcDatetime | None = None


class PlayerJoined(Model):
    """A human player took one of the match's human places."""

    type: Literal["player_joined"] = "player_joined"
    player_id: Identifier
    token_sha256: str = ""


class AssignedRobot(Model):
    """One robot requested from the pool for a match."""

    robot_id: Identifier
    persona: str


class RobotsAssigned(Model):
    """The match's robots were chosen, each with a persona."""

    type: Literal["robots_assigned"] = "robots_assigned"
    robots: tuple[AssignedRobot, ...]


class SeatAssignment(Model):
    """An anonymous seat label and who sits behind it."""

    seat: SeatLabel
    occupant_id: Identifier


class MatchStarted(Model):
    """All places were filled and seats were drawn at random."""

    type: Literal["match_started"] = "match_started"
    seats: tuple[SeatAssignment, ...]


class RoundStarted(Model):
    """A round began with a prompt; answers are due by the deadline."""

    type: Literal["round_started"] = "round_started"
    round: Round
    prompt_id: str
    prompt: str
    deadline: UtcDatetime


class AnswerSubmitted(Model):
    """A seat answered the round's prompt."""

    type: Literal["answer_submitted"] = "answer_submitted"
    round: Round
    seat: SeatLabel
    text: str
    command_id: Identifier


class VotingOpened(Model):
    """Answers closed; they are shown in a fresh random order for voting."""

    type: Literal["voting_opened"] = "voting_opened"
    round: Round
    order: tuple[SeatLabel, ...]
    missing: tuple[SeatLabel, ...]
    deadline: UtcDatetime


class VoteCast(Model):
    """A seat voted for the seat it thinks is human."""

    type: Literal["vote_cast"] = "vote_cast"
    round: Round
    voter: SeatLabel
    target: SeatLabel
    command_id: Identifier


class RoundScored(Model):
    """Votes closed; the round's points were awarded."""

    type: Literal["round_scored"] = "round_scored"
    round: Round
    votes: dict[SeatLabel, SeatLabel]
    points: dict[SeatLabel, int]
    totals: dict[SeatLabel, int]
    next_round_at: UtcDatetime | None = None


class LateResultRecorded(Model):
    """A robot result arrived after its deadline and was ignored."""

    type: Literal["late_result_recorded"] = "late_result_recorded"
    round: Round
    seat: SeatLabel
    command_id: Identifier
    phase: Literal["answering", "voting"]


class RevealedSeat(Model):
    """Who sat behind a seat, shown at the reveal."""

    seat: SeatLabel
    kind: Kind
    occupant_id: Identifier
    persona: str | None = None


class MatchEnded(Model):
    """The match finished; identities are revealed."""

    type: Literal["match_ended"] = "match_ended"
    reason: Literal["completed", "abandoned"]
    totals: dict[SeatLabel, int]
    winners: tuple[SeatLabel, ...]
    reveal: tuple[RevealedSeat, ...]


MATCH_PAYLOADS = (
    MatchCreated,
    PlayerJoined,
    RobotsAssigned,
    MatchStarted,
    RoundStarted,
    AnswerSubmitted,
    VotingOpened,
    VoteCast,
    RoundScored,
    LateResultRecorded,
    MatchEnded,
)
