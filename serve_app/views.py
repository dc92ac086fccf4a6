"""What a player may see of a match: public events and the anonymous view.

Nothing here may tell a player which seats are human before the reveal:
no kind, persona, robot id, brain, latency or command id; no seat on
another player's answer or vote before voting opens or the round is
scored; no points before the reveal (humans and robots score by
different rules, so points would give kinds away); and no event that
exists only for robots.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from events import Envelope
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
from game import MatchState

PRIVATE_TYPES = frozenset({RobotsAssigned, LateResultRecorded})


def is_public(event: Envelope) -> bool:
    """Whether an event has a public form at all (it counts in ``seq``)."""
    return type(event.payload) not in PRIVATE_TYPES


def public_event(event: Envelope, seq: int, viewer_seat: str | None) -> dict[str, Any]:
    """The form of a public event that the player at ``viewer_seat`` sees."""
    p = event.payload
    body: dict[str, Any] = {"seq": seq, "type": p.type}
    match p:
        case MatchCreated():
            body |= {
                "template": p.template,
                "humans": p.humans,
                "robots": p.robots,
                "rounds": p.rounds,
            }
        case PlayerJoined():
            pass
        case MatchStarted():
            body["seats"] = sorted(s.seat for s in p.seats)
        case RoundStarted():
            body |= {"round": p.round, "prompt": p.prompt, "deadline": _iso(p.deadline)}
        case AnswerSubmitted():
            body["round"] = p.round
            if p.seat == viewer_seat:
                body |= {"seat": p.seat, "text": p.text, "yours": True}
        case VotingOpened():
            body |= {
                "round": p.round,
                "order": list(p.order),
                "missing": list(p.missing),
                "deadline": _iso(p.deadline),
            }
        case VoteCast():
            body["round"] = p.round
            if p.voter == viewer_seat:
                body |= {"target": p.target, "yours": True}
        case RoundScored():
            body |= {"round": p.round, "votes": dict(sorted(p.votes.items()))}
        case MatchEnded():
            body |= {
                "reason": p.reason,
                "totals": dict(sorted(p.totals.items())),
                "winners": list(p.winners),
                "reveal": [_revealed(s.seat, s.kind, s.persona) for s in p.reveal],
            }
        case _:
            raise ValueError(f"{p.type} has no public form")
    return body


def match_view(
    state: MatchState, viewer_id: str | None, now: datetime, joined_seq: int = 0
) -> dict[str, Any]:
    """The whole anonymous match as one player (or a spectator) may see it."""
    settings, current = state.settings, state.current
    you = state.seat_of.get(viewer_id) if viewer_id else None
    deadline = state.deadline()
    view: dict[str, Any] = {
        "match_id": state.match_id,
        "template": settings.template if settings else None,
        "phase": state.phase,
        "round": current.number if current else 0,
        "rounds": settings.rounds if settings else 0,
        "seats": sorted(state.seats),
        "you": you,
        "humans": settings.humans if settings else 0,
        "robots": settings.robots if settings else 0,
        "joined": len(state.players),
        "invite_code": settings.invite_code
        if state.phase == "lobby" and settings
        else None,
        "deadline": _iso(deadline) if deadline and state.phase != "lobby" else None,
        "server_time": _iso(now),
        "max_answer_chars": settings.max_answer_chars if settings else 0,
        "results": [_result(r) for r in state.rounds if r.points],
        "reveal": _reveal(state) if state.ended else None,
    }
    view |= _current_round(state, you)
    return view


def _current_round(state: MatchState, you: str | None) -> dict[str, Any]:
    current = state.current
    if current is None:
        return {"prompt": None, "answered": 0, "voted": 0, "answers": [], "missing": []}
    voting_open = bool(current.order) or state.phase in ("voting", "intermission")
    return {
        "prompt": current.prompt,
        "answered": len(current.answers),
        "voted": len(current.votes),
        "your_answer": current.answers.get(you) if you else None,
        "your_vote": current.votes.get(you) if you else None,
        "answers": (
            [{"seat": s, "text": current.answers[s]} for s in current.order]
            if voting_open
            else []
        ),
        "missing": list(current.missing),
    }


def _result(r: Any) -> dict[str, Any]:
    return {
        "round": r.number,
        "prompt": r.prompt,
        "answers": [{"seat": s, "text": r.answers[s]} for s in r.order],
        "missing": list(r.missing),
        "votes": dict(sorted(r.votes.items())),
    }


def _reveal(state: MatchState) -> dict[str, Any]:
    ended = state.ended
    assert ended is not None
    return {
        "reason": ended.reason,
        "seats": [_revealed(s.seat, s.kind, s.persona) for s in ended.reveal],
        "points": [
            {"round": r.number, "points": dict(sorted(r.points.items()))}
            for r in state.rounds
            if r.points
        ],
        "totals": dict(sorted(ended.totals.items())),
        "winners": list(ended.winners),
    }


def _revealed(seat: str, kind: str, persona: str | None) -> dict[str, Any]:
    return {"seat": seat, "kind": kind, "persona": persona}


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def public_timeline(events: list[Envelope], finished: bool) -> list[dict[str, Any]]:
    """A match's timeline for HTTP: public events, everything once it ended."""
    timeline: list[dict[str, Any]] = []
    seq = 0
    for event in events:
        if not finished and not is_public(event):
            continue
        if is_public(event):
            seq += 1
            item = public_event(event, seq, None)
        else:
            item = {"type": event.payload.type}
        if finished:
            item |= _full_details(event)
        item["at"] = _iso(event.occurred_at)
        timeline.append(item)
    return timeline


def _full_details(event: Envelope) -> dict[str, Any]:
    p = event.payload
    match p:
        case AnswerSubmitted():
            return {"seat": p.seat, "text": p.text}
        case VoteCast():
            return {"voter": p.voter, "target": p.target}
        case RoundScored():
            return {"points": dict(sorted(p.points.items()))}
        case LateResultRecorded():
            return {"seat": p.seat, "phase": p.phase}
    return {}
