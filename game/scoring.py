"""The scoring table, applied to one round's votes.

| who               | scores                                              |
|-------------------|-----------------------------------------------------|
| any voter         | +1 for a vote on a seat that is human (detecting)   |
| a human           | +1 for each other voter who did not pick them       |
| a robot           | +1 for each vote it draws (deceiving)               |

A seat that gave no answer is not on the ballot, cannot vote and scores 0
that round. A seat that answered but did not vote scores nothing as a voter
and grants no "not picked" point to any human.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

DETECT_POINTS = 1
UNPICKED_POINTS = 1
DRAWN_VOTE_POINTS = 1


def score_round(
    ballot: Sequence[str],
    votes: Mapping[str, str],
    kinds: Mapping[str, Literal["human", "robot"]],
) -> dict[str, int]:
    """Points per seat for one round; every seat of ``kinds`` gets an entry."""
    points = dict.fromkeys(kinds, 0)
    for voter, target in votes.items():
        if kinds[target] == "human":
            points[voter] += DETECT_POINTS
        else:
            points[target] += DRAWN_VOTE_POINTS
    for seat in ballot:
        if kinds[seat] != "human":
            continue
        unpicked = sum(1 for v, t in votes.items() if v != seat and t != seat)
        points[seat] += UNPICKED_POINTS * unpicked
    return points


def winners(totals: Mapping[str, int]) -> tuple[str, ...]:
    """Every seat with the top total; a tie shares the win."""
    if not totals:
        return ()
    best = max(totals.values())
    return tuple(sorted(seat for seat, total in totals.items() if total == best))
