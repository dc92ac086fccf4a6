"""Errors raised by the game rules."""

from __future__ import annotations


class GameError(Exception):
    """Base error of the game package."""


class RuleViolation(GameError):
    """A command broke a rule of the game; nothing was changed.

    ``code`` is a stable machine-readable reason such as ``wrong_phase``.
    """

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")

    def __reduce__(self) -> tuple[type[RuleViolation], tuple[str, str]]:
        return (type(self), (self.code, self.message))


class TemplateError(GameError):
    """A match template or its overrides are invalid."""
