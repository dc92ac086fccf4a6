"""Shared field types of the event schemas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field


def _require_utc(value: datetime) -> datetime:
    if value.tzinfo is UTC:  # the common case, without computing an offset
        return value
    if value.utcoffset() != timedelta(0):
        raise ValueError(f"a UTC timestamp, got offset {value.utcoffset()}")
    return value


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_require_utc)]
"""A timezone-aware timestamp whose offset is zero."""

SeatLabel = Annotated[str, Field(min_length=1, max_length=32)]
"""An anonymous seat label, such as ``"cobalt"``."""

Identifier = Annotated[str, Field(min_length=1, max_length=128)]
"""A match, player, robot or command id."""

Kind = Literal["human", "robot"]


class Model(BaseModel):
    """Base of every schema model: immutable, strict, no unknown fields."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")
