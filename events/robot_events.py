"""Robot commands (``robot-commands``) and their results (``robot-events``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from events._types import Identifier, Model, SeatLabel, UtcDatetime

Round = Annotated[int, Field(ge=1, le=100)]
LatencyMs = Annotated[float, Field(ge=0)]


class SeatAnswer(Model):
    """An answer as any player sees it: a seat label and its text."""

    seat: SeatLabel
    text: str


class PastRound(Model):
    """An earlier round as any player saw it."""

    round: Round
    prompt: str
    answers: tuple[SeatAnswer, ...]


class GenerateAnswer(Model):
    """Ask a robot to answer the round's prompt before the deadline."""

    type: Literal["generate_answer"] = "generate_answer"
    command_id: Identifier
    robot_id: Identifier
    persona: str
    seat: SeatLabel
    round: Round
    prompt_id: str
    prompt: str
    max_chars: Annotated[int, Field(ge=1)]
    deadline: UtcDatetime
    history: tuple[PastRound, ...] = ()


class GenerateVote(Model):
    """Ask a robot to vote for the seat it thinks is human."""

    type: Literal["generate_vote"] = "generate_vote"
    command_id: Identifier
    robot_id: Identifier
    persona: str
    seat: SeatLabel
    round: Round
    prompt: str
    answers: tuple[SeatAnswer, ...]
    deadline: UtcDatetime
    history: tuple[PastRound, ...] = ()


class AnswerGenerated(Model):
    """A robot produced an answer."""

    type: Literal["answer_generated"] = "answer_generated"
    command_id: Identifier
    robot_id: Identifier
    seat: SeatLabel
    round: Round
    text: str
    latency_ms: LatencyMs
    brain: str
    fallback: bool = False


class VoteGenerated(Model):
    """A robot chose the seat it votes for."""

    type: Literal["vote_generated"] = "vote_generated"
    command_id: Identifier
    robot_id: Identifier
    seat: SeatLabel
    round: Round
    target: SeatLabel
    latency_ms: LatencyMs
    brain: str
    fallback: bool = False


class GenerationFailed(Model):
    """A robot could not produce a result for a command."""

    type: Literal["generation_failed"] = "generation_failed"
    command_id: Identifier
    robot_id: Identifier
    seat: SeatLabel
    round: Round
    reason: str
    latency_ms: LatencyMs
    brain: str


class RobotStarted(Model):
    """A robot worker joined its persona's pool."""

    type: Literal["robot_started"] = "robot_started"
    persona: str
    robot_id: Identifier
    node_id: str = ""


class RobotStopped(Model):
    """A robot worker left its persona's pool."""

    type: Literal["robot_stopped"] = "robot_stopped"
    persona: str
    robot_id: Identifier
    reason: str


class PoolScaled(Model):
    """The pool of a persona was resized, with the reason."""

    type: Literal["pool_scaled"] = "pool_scaled"
    persona: str
    workers_before: Annotated[int, Field(ge=0)]
    workers_after: Annotated[int, Field(ge=0)]
    reason: str
    lag: Annotated[int, Field(ge=0)]
    in_flight: Annotated[int, Field(ge=0)]


ROBOT_COMMANDS = (GenerateAnswer, GenerateVote)
ROBOT_RESULTS = (AnswerGenerated, VoteGenerated, GenerationFailed)
POOL_PAYLOADS = (RobotStarted, RobotStopped, PoolScaled)
