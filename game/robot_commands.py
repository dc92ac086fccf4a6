"""Which robot commands the current phase of a match calls for."""

from __future__ import annotations

from events.robot_events import GenerateAnswer, GenerateVote, PastRound, SeatAnswer
from game.state import MatchState


def command_id(match_id: str, round_number: int, seat: str, action: str) -> str:
    """A command id that is the same every time the same step is asked for."""
    return f"{match_id}/r{round_number}/{seat}/{action}"


def pending_robot_commands(state: MatchState) -> list[GenerateAnswer | GenerateVote]:
    """Commands for robots that still owe an answer or a vote in this phase.

    Ids are deterministic, so asking again after a restart yields the same
    ids and the pool drops the duplicates.
    """
    current, settings = state.current, state.settings
    if current is None or settings is None:
        return []
    history = _history(state)
    commands: list[GenerateAnswer | GenerateVote] = []
    for seat in state.robot_seats():
        robot_id = state.seats[seat]
        persona = state.personas[robot_id]
        if state.phase == "answering" and seat not in current.answers:
            commands.append(
                GenerateAnswer(
                    command_id=command_id(
                        state.match_id, current.number, seat, "answer"
                    ),
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
        voting = state.phase == "voting" and len(current.order) >= 2
        if voting and seat in current.order and seat not in current.votes:
            assert current.vote_deadline is not None
            commands.append(
                GenerateVote(
                    command_id=command_id(state.match_id, current.number, seat, "vote"),
                    robot_id=robot_id,
                    persona=persona,
                    seat=seat,
                    round=current.number,
                    prompt=current.prompt,
                    answers=tuple(
                        SeatAnswer(seat=s, text=current.answers[s])
                        for s in current.order
                    ),
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
