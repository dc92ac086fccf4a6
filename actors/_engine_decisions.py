"""How an engine decides a match's commands and names the events they append."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from events import Envelope, Payload, new_event
from game import (
    Context,
    MatchState,
    MatchTemplate,
    RuleViolation,
    create_match,
    evolve,
    join_match,
)

Decide = Callable[[MatchState, Context], list[Payload]]
Step = tuple[Decide, uuid.UUID | None]
# Each decided payload keeps the id of the event that caused it, if any.
Decided = list[tuple[Payload, uuid.UUID | None]]

_CORRELATION = uuid.UUID("6f1c3c52-3b0e-4d53-9d0e-6a1f3f0b7a10")


@dataclass(frozen=True)
class Outcome:
    """The answer to a player's command: accepted, or refused with a reason."""

    ok: bool
    match_id: str = ""
    code: str = ""
    message: str = ""
    seq: int = 0
    data: dict[str, Any] = field(default_factory=dict)


def creation(
    match_id: str,
    template: MatchTemplate,
    invite: str | None,
    player_id: str,
    token_sha256: str,
) -> Decide:
    """The decision that opens a match and seats its creator in one append."""

    def decide(state: MatchState, ctx: Context) -> list[Payload]:
        created = create_match(template, ctx.now, invite)
        # The creator joins a match that exists only once these events are
        # folded, so the join is decided against a scratch copy of it.
        scratch = MatchState(match_id)
        for payload in created:
            evolve(scratch, payload)
        return [*created, *join_match(scratch, player_id, token_sha256, ctx)]

    return decide


def decide_steps(
    match_id: str,
    state: MatchState,
    steps: Sequence[Step],
    ctx: Context,
    seq: int,
) -> tuple[list[Outcome], Decided]:
    """Decide each step in turn; a refused step is answered and skipped.

    ``seq`` is the match's sequence number, given back to refused steps.
    Accepted steps are answered without one: it is known only after the
    append.
    """
    # Later steps decide against a scratch state that has the earlier
    # steps' events folded in; a single step needs no scratch.
    scratch = state.copy() if len(steps) > 1 else state
    outcomes: list[Outcome] = []
    decided: Decided = []
    for number, (decide, causation_id) in enumerate(steps, start=1):
        try:
            payloads = decide(scratch, ctx)
        except RuleViolation as exc:
            outcomes.append(Outcome(False, match_id, exc.code, exc.message, seq))
            continue
        outcomes.append(Outcome(True, match_id))
        decided += [(p, causation_id) for p in payloads]
        if number < len(steps):
            for payload in payloads:
                evolve(scratch, payload)
    return outcomes, decided


def match_events(match_id: str, decided: Decided, producer: str) -> list[Envelope]:
    """The envelopes to append for the decided payloads of one match."""
    # Every event of a match shares one correlation id derived from the
    # match id, so it is the same after a restart without being stored.
    correlation = uuid.uuid5(_CORRELATION, match_id)
    return [
        new_event(
            payload,
            match_id=match_id,
            producer=producer,
            causation_id=causation_id,
            correlation_id=correlation,
        )
        for payload, causation_id in decided
    ]
