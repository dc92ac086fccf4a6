"""Plain-data views of a match for tools and operators (not for players)."""

from __future__ import annotations

from typing import Any

from game.state import MatchState


def full_state(state: MatchState) -> dict[str, Any]:
    """Everything folded from a match's events, as JSON-ready data."""
    settings = state.settings
    return {
        "match_id": state.match_id,
        "phase": state.phase,
        "template": settings.template if settings else None,
        "players": list(state.players),
        "robots": dict(state.personas),
        "seats": dict(sorted(state.seats.items())),
        "rounds": [
            {
                "round": r.number,
                "prompt_id": r.prompt_id,
                "prompt": r.prompt,
                "answers": dict(sorted(r.answers.items())),
                "order": list(r.order),
                "missing": list(r.missing),
                "votes": dict(sorted(r.votes.items())),
                "points": dict(sorted(r.points.items())),
            }
            for r in state.rounds
        ],
        "totals": dict(sorted(state.totals.items())),
        "winners": list(state.ended.winners) if state.ended else [],
        "reveal": (
            [seat.model_dump() for seat in state.ended.reveal] if state.ended else []
        ),
        "events": len(state.event_ids),
    }
