"""A state's copy is independent: evolving it never changes the original."""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime

import pytest

from events.populate import play_match
from game import PromptBank, TemplateBook
from game.state import fold

EVENTS = play_match(
    PromptBank.load(),
    TemplateBook.load(),
    random.Random(7),
    datetime(2030, 1, 1, tzinfo=UTC),
)


@pytest.mark.parametrize("cut", range(1, len(EVENTS)))
def test_state_copy_evolves_without_touching_the_original(cut: int) -> None:
    match_id = EVENTS[0].key
    original = fold(match_id, EVENTS[:cut])
    before = copy.deepcopy(original)

    scratch = original.copy()
    for event in EVENTS[cut:]:
        scratch.apply(event)

    assert original == before
    assert scratch == fold(match_id, EVENTS)
