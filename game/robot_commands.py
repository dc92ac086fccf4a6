"""Which robot commands the current phase of a match calls for."""

from __future__ import annotations

from collections.abc import Container

from events.robot_events import GenerateAnswer, GenerateVote, PastRound, SeatAnswer
from game.state import MatchState


def command_id(match_id: str, round_number: int, seat: str, action: str) -> str:
    """A command id that is the same every time the same step is asked for."""
    return f"{match_id}/r{round_number}/{seat}/{action}"


def pending_robot_commands(
    state: MatchState, sent: Container[str] = frozenset()
) -> list[GenerateAnswer | GenerateVote]:
    """Commands for robots that still owe an answer or a vote in this phase.

    Ids are deterministic, so asking again after a restart yields the same
    ids and the pool drops the duplicates. Commands whose id is in ``sent``
    are left out (and never built: the engine asks after every change).
    """
    current, settings = state.current, state.settings
    if current is None or settings is None:
        return []
    history: tuple[PastRound, ...] | None = None
    ballot: tuple[SeatAnswer, ...] | None = None
    commands: list[GenerateAnswer | GenerateVote] = []
    for seat in state.robot_seats():
        robot_id = state.seats[seat]
        persona = state.personas[robot_id]
        answer_id = command_id(state.match_id, current.number, seat, "answer")
        if (
            state.phase == "answering"
            and seat not in current.answers
            and answer_id not in sent
        ):
            history = _history(state) if history is None else history
            commands.append(
                GenerateAnswer(
                    command_id=answer_id,
                    robot_id=robot_id,
                    persona=persona,
                    seat=seat,
                    round=current.number,
                    prompt_id=current.prompt_id,
                    prompt=current.prompt,
                    max_chars=settings.max_answer_chars,
                    deadline=current.answer_deadline,
                    history=history,
                )
            )
        vote_id = command_id(state.match_id, current.number, seat, "vote")
        voting = state.phase == "voting" and len(current.order) >= 2
        owes_vote = seat in current.order and seat not in current.votes
        if voting and owes_vote and vote_id not in sent:
            assert current.vote_deadline is not None
            history = _history(state) if history is None else history
            if ballot is None:
                ballot = tuple(
                    SeatAnswer(seat=s, text=current.answers[s]) for s in current.order
                )
            commands.append(
                GenerateVote(
                    command_id=vote_id,
                    robot_id=robot_id,
                    persona=persona,
                    seat=seat,
                    round=current.number,
                    prompt=current.prompt,
                    answers=ballot,
                    deadline=current.vote_deadline,
                    history=history,
                )
            )
    return commands


def _history(state: MatchState) -> tuple[PastRound, ...]:
    return tuple(
        PastRound(
            round=r.number,
            prompt=r.prompt,
            answers=tuple(SeatAnswer(seat=s, text=r.answers[s]) for s in r.order),
        )
        for r in state.rounds[:-1]
    )
