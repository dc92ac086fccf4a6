"""Print a match's timeline, or its folded final state, from Kafka.

Usage: ``python -m events.replay MATCH_ID [--bootstrap HOST:PORT] [--json]``
"""

from __future__ import annotations

import argparse
import json
import sys

from configs import load_settings
from events.backbone import require_bootstrap
from events.envelope import Envelope
from events.errors import EventsError
from events.keys import partition_for
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
from events.reader import read_match
from game.state import fold
from game.views import full_state


def describe(event: Envelope) -> str:
    """One human-readable line for an event."""
    p = event.payload
    match p:
        case MatchCreated():
            return f"created from template {p.template} ({p.humans}h+{p.robots}r)"
        case PlayerJoined():
            return f"player {p.player_id} joined"
        case RobotsAssigned():
            return "robots " + ", ".join(f"{r.robot_id}={r.persona}" for r in p.robots)
        case MatchStarted():
            return "started, seats " + ", ".join(s.seat for s in p.seats)
        case RoundStarted():
            return f"round {p.round} started: {p.prompt!r}"
        case AnswerSubmitted():
            return f"  {p.seat} answered: {p.text!r}"
        case VotingOpened():
            missing = f" (no answer: {', '.join(p.missing)})" if p.missing else ""
            return f"  voting opened, order {', '.join(p.order)}{missing}"
        case VoteCast():
            return f"  {p.voter} voted for {p.target}"
        case RoundScored():
            return f"round {p.round} scored, points {p.points}"
        case LateResultRecorded():
            return f"  late {p.phase} result from {p.seat} ignored"
        case MatchEnded():
            kinds = ", ".join(f"{s.seat}={s.persona or s.kind}" for s in p.reveal)
            return f"ended ({p.reason}), winners {', '.join(p.winners)}; {kinds}"
    return p.type


def main(argv: list[str] | None = None) -> int:
    """Read the match from its partition and print it."""
    parser = argparse.ArgumentParser(prog="python -m events.replay")
    parser.add_argument("match_id")
    parser.add_argument("--bootstrap", help="HOST:PORT; default from the config")
    parser.add_argument("--json", action="store_true", help="print the final state")
    args = parser.parse_args(argv)

    settings = load_settings().kafka
    bootstrap = require_bootstrap(settings, args.bootstrap)
    if bootstrap is None:
        print("no broker: pass --bootstrap HOST:PORT", file=sys.stderr)
        return 2
    try:
        events = read_match(settings, bootstrap, args.match_id)
    except EventsError as exc:
        print(f"replay failed: {exc}", file=sys.stderr)
        return 1
    if not events:
        topic = settings.topics.match_events
        partition = partition_for(args.match_id, topic.partitions)
        print(
            f"unknown match {args.match_id!r}: no events on {topic.name} "
            f"partition {partition} at {bootstrap}",
            file=sys.stderr,
        )
        return 2

    if args.json:
        print(json.dumps(full_state(fold(args.match_id, events)), indent=2))
        return 0
    start = events[0].occurred_at
    for event in events:
        offset_s = (event.occurred_at - start).total_seconds()
        print(f"{offset_s:8.1f}s  {describe(event)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
