"""Every project error survives pickling: Ray carries them between actors."""

from __future__ import annotations

import pickle

import pytest

from actors.errors import MatchSetAside, UnknownMatch, WrongEngine
from events.errors import BrokerError, ConfigError, DeliveryError, EventDecodeError
from game.errors import RuleViolation, TemplateError

ERRORS = [
    UnknownMatch("m-1"),
    MatchSetAside("m-1", "cannot fold answer_submitted at offset 7"),
    WrongEngine("m-1", 0, 1),
    EventDecodeError("payload.text", ["x"] * 50, "a string"),
    BrokerError("broker down"),
    DeliveryError("match-events", "m-1", "timed out"),
    ConfigError("no bootstrap servers"),
    RuleViolation("late", "the answer deadline passed"),
    TemplateError("no template 'quartet'"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_error_round_trips_through_pickle(error: Exception) -> None:
    copy = pickle.loads(pickle.dumps(error))

    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)
