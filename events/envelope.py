"""The envelope every record carries, and the union of all payloads."""

from __future__ import annotations

import os
import threading
import uuid
from datetime import UTC, datetime
from typing import Annotated, Self

from pydantic import Field, model_validator

from events._types import Identifier, Model, UtcDatetime
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
from events.robot_events import (
    POOL_PAYLOADS,
    AnswerGenerated,
    GenerateAnswer,
    GenerateVote,
    GenerationFailed,
    PoolScaled,
    RobotStarted,
    RobotStopped,
    VoteGenerated,
)

SCHEMA_MAJOR = 1
SCHEMA_MINOR = 0
SCHEMA_VERSION = f"{SCHEMA_MAJOR}.{SCHEMA_MINOR}"

Payload = Annotated[
    MatchCreated
    | PlayerJoined
    | RobotsAssigned
    | MatchStarted
    | RoundStarted
    | AnswerSubmitted
    | VotingOpened
    | VoteCast
    | RoundScored
    | LateResultRecorded
    | MatchEnded
    | GenerateAnswer
    | GenerateVote
    | AnswerGenerated
    | VoteGenerated
    | GenerationFailed
    | RobotStarted
    | RobotStopped
    | PoolScaled,
    Field(discriminator="type"),
]


class EnvelopeMismatch(ValueError):
    """An envelope field disagrees with its payload; carries the field's name."""

    def __init__(self, field: str, value: object, expected: str) -> None:
        self.field = field
        self.value = value
        self.expected = expected
        super().__init__(f"field {field!r} has value {value!r}; expected {expected}")


class Envelope(Model):
    """One record on any topic: identity, causality and a typed payload.

    ``match_id`` is the Kafka key of every match, command and result record.
    Pool records have no match; they are keyed by persona instead.
    """

    event_id: uuid.UUID
    type: str
    schema_version: Annotated[str, Field(pattern=r"^\d+\.\d+$")]
    match_id: Identifier | None
    occurred_at: UtcDatetime
    producer: str
    causation_id: uuid.UUID | None = None
    correlation_id: uuid.UUID | None = None
    payload: Payload

    @model_validator(mode="after")
    def _check_consistency(self) -> Self:
        if self.type != self.payload.type:
            raise EnvelopeMismatch(
                "type",
                self.type,
                f"{self.payload.type!r}, the type of its payload",
            )
        if self.match_id is None and not isinstance(self.payload, POOL_PAYLOADS):
            raise EnvelopeMismatch(
                "match_id",
                None,
                f"a match id: a {self.type} record needs a match_id (only pool "
                "records have none)",
            )
        return self

    @property
    def key(self) -> str:
        """The Kafka key: the match id, or the persona for pool records."""
        if self.match_id is not None:
            return self.match_id
        assert isinstance(self.payload, POOL_PAYLOADS)
        return self.payload.persona


class _RandomIds:
    """Version 4 UUIDs cut from one ``os.urandom`` read per 256 ids.

    ``uuid.uuid4`` reads 16 bytes per id, and ``os.urandom`` releases the GIL
    around its syscall: in a busy actor every id then waited for the GIL
    again. The ids are as random as ``uuid4``'s.
    """

    _BATCH = 256

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = b""
        self._at = 0

    def next(self) -> uuid.UUID:
        with self._lock:
            if self._at >= len(self._pool):
                self._pool, self._at = os.urandom(16 * self._BATCH), 0
            chunk = self._pool[self._at : self._at + 16]
            self._at += 16
        return uuid.UUID(bytes=chunk, version=4)

    def forget(self) -> None:
        # A forked child must not hand out the ids its parent still holds.
        self._pool, self._at = b"", 0


_IDS = _RandomIds()
os.register_at_fork(after_in_child=_IDS.forget)


def new_event(
    payload: Payload,
    *,
    match_id: str | None,
    producer: str,
    causation_id: uuid.UUID | None = None,
    correlation_id: uuid.UUID | None = None,
    occurred_at: datetime | None = None,
    event_id: uuid.UUID | None = None,
) -> Envelope:
    """Wrap a payload in a fresh envelope stamped with the current UTC time."""
    return Envelope(
        event_id=event_id or _IDS.next(),
        type=payload.type,
        schema_version=SCHEMA_VERSION,
        match_id=match_id,
        occurred_at=occurred_at or datetime.now(UTC),
        producer=producer,
        causation_id=causation_id,
        correlation_id=correlation_id,
        payload=payload,
    )
