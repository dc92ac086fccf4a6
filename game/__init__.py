"""The rules of the game: pure, deterministic, folded from events."""

from game.errors import GameError, RuleViolation, TemplateError
from game.prompts import Prompt, PromptBank
from game.robot_commands import pending_robot_commands
from game.rules import (
    Context,
    accept_robot_result,
    advance,
    cast_vote,
    create_match,
    join_match,
    new_invite_code,
    submit_answer,
)
from game.scoring import score_round, winners
from game.state import MatchState, RoundState, evolve, fold
from game.templates import MatchTemplate, TemplateBook, Timings

__all__ = [
    "Context",
    "GameError",
    "MatchState",
    "MatchTemplate",
    "Prompt",
    "PromptBank",
    "RoundState",
    "RuleViolation",
    "TemplateBook",
    "TemplateError",
    "Timings",
    "accept_robot_result",
    "advance",
    "cast_vote",
    "create_match",
    "evolve",
    "fold",
    "join_match",
    "new_invite_code",
    "pending_robot_commands",
    "score_round",
    "submit_answer",
    "winners",
]
