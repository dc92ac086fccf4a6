"""Errors raised by the actors package."""

from __future__ import annotations


class ActorsError(Exception):
    """Base error of the actors package."""


class UnknownMatch(ActorsError):
    """No engine holds a match with this id (it never existed or was evicted)."""

    def __init__(self, match_id: str) -> None:
        self.match_id = match_id
        super().__init__(f"unknown match {match_id!r}")

    def __reduce__(self) -> tuple[type[UnknownMatch], tuple[str]]:
        return (type(self), (self.match_id,))


class MatchSetAside(ActorsError):
    """A match whose events could not be folded at rebuild; it takes no commands."""

    def __init__(self, match_id: str, reason: str) -> None:
        self.match_id, self.reason = match_id, reason
        super().__init__(
            f"match {match_id!r} was set aside when its engine rebuilt: {reason}; "
            "it takes no commands until its events are repaired and the engine "
            "restarts (events.replay shows the log)"
        )

    def __reduce__(self) -> tuple[type[MatchSetAside], tuple[str, str]]:
        return (type(self), (self.match_id, self.reason))


class WrongEngine(ActorsError):
    """A command reached an engine that does not own the match."""

    def __init__(self, match_id: str, engine: int, owner: int) -> None:
        self.match_id, self.engine, self.owner = match_id, engine, owner
        super().__init__(
            f"match {match_id!r} belongs to engine {owner}, not engine {engine}; "
            "route commands with actors.engines.engine_index"
        )

    def __reduce__(self) -> tuple[type[WrongEngine], tuple[str, int, int]]:
        return (type(self), (self.match_id, self.engine, self.owner))
