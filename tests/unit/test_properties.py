"""Any sequence of commands keeps a match consistent (hypothesis).

Random commands, many of them invalid, are applied through the rules on random
templates with short timings. Rejected commands must change nothing; accepted
ones are folded into a live state. After every step the log is checked against
the rules of the game and a fresh fold of the log must equal the live state.
"""

from __future__ import annotations

import copy
import random
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Literal

import hypothesis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events import Envelope, Payload, new_event
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
from events.robot_events import AnswerGenerated, GenerateAnswer, VoteGenerated
from game import (
    Context,
    MatchState,
    PromptBank,
    RuleViolation,
    TemplateBook,
    accept_robot_result,
    advance,
    cast_vote,
    create_match,
    fold,
    join_match,
    pending_robot_commands,
    submit_answer,
    winners,
)
from game.rules import SEAT_LABELS

START = datetime(2030, 1, 1, tzinfo=UTC)
PERSONAS = ("curious_student", "skeptical_scientist", "creative_artist")
PROMPTS = PromptBank.load()
BOOK = TemplateBook.load()
MATCH_ID = "prop-match"
PLAYERS = tuple(f"p{n}" for n in range(9))

Command = tuple[Any, ...]

# --- strategies ----------------------------------------------------------------

templates = st.one_of(
    st.sampled_from([("classic", None, None), ("duo", None, None)]),
    st.integers(3, 8).flatmap(
        lambda seats: st.integers(1, seats).map(
            lambda humans: ("custom", humans, seats - humans)
        )
    ),
)
timings = st.fixed_dictionaries(
    {
        "rounds": st.integers(1, 3),
        "answer_timeout_s": st.sampled_from([0.5, 5.0, 30.0]),
        "vote_timeout_s": st.sampled_from([0.5, 5.0, 30.0]),
        "intermission_s": st.sampled_from([0.0, 1.0, 3.0]),
        "max_answer_chars": st.integers(1, 20),
        "invite_ttl_s": st.sampled_from([1.0, 30.0]),
    }
)
texts = st.one_of(
    st.sampled_from(["", "   ", "\n\t", "ok", " padded \n", "Toast, obviously."]),
    st.text(max_size=16),
)
command_ids = st.sampled_from(["c0", "c1", "c2", "c3", "c4"])
picks = st.integers(0, 31)
fresh_ids = st.uuids().map(str)
seconds = st.one_of(
    st.sampled_from([0.0, 0.1, 0.5, 2.0, 12.0]), st.floats(0, 12, allow_nan=False)
)

# "play" comes first: hypothesis favours (and shrinks towards) the first branch.
commands = st.one_of(
    *[st.tuples(st.just("play"), picks, picks, fresh_ids)] * 3,
    st.tuples(st.just("advance"), seconds),
    st.tuples(st.just("obey"), picks, picks, texts),
    st.tuples(st.just("tick"), seconds),
    st.tuples(st.just("answer"), picks, texts, command_ids),
    st.tuples(st.just("vote"), picks, picks, command_ids),
    st.tuples(st.just("robot_answer"), picks, st.integers(1, 4), texts, command_ids),
    st.tuples(st.just("robot_vote"), picks, st.integers(1, 4), picks, command_ids),
    st.tuples(st.just("join"), picks),
)


# --- the model under test --------------------------------------------------------


@dataclass
class Game:
    state: MatchState
    rng: random.Random
    now: datetime = START
    log: list[Envelope] = field(default_factory=list)
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    @property
    def ctx(self) -> Context:
        return Context(now=self.now, rng=self.rng, prompts=PROMPTS, personas=PERSONAS)

    def decide(self, rule: Callable[[], list[Payload]]) -> None:
        """Run one rule; a rejection must leave the state as it was."""
        before = copy.deepcopy(self.state)
        try:
            payloads = rule()
        except RuleViolation as exc:
            self.rejected[exc.code] += 1
            assert self.state == before, f"rejected {exc.code} changed the state"
            return
        assert self.state == before, "deciding changed the state"
        for payload in payloads:
            envelope = new_event(
                payload, match_id=MATCH_ID, producer="test", occurred_at=self.now
            )
            self.state.apply(envelope)
            self.log.append(envelope)
        self.accepted += 1

    # what the commands' indices pick from

    def person(self, pick: int) -> str:
        people = [*self.state.players, *sorted(self.state.personas), "stranger"]
        return people[pick % len(people)]

    def seat(self, pick: int) -> str:
        labels = [*sorted(self.state.seats), "nowhere"]
        unused = [s for s in SEAT_LABELS if s not in self.state.seats]
        labels += unused[:1]
        return labels[pick % len(labels)]

    def run(self, command: Command) -> None:
        state, ctx = self.state, self.ctx
        match command:
            case ("join", pick):
                player = PLAYERS[pick % len(PLAYERS)]
                self.decide(lambda: join_match(state, player, "hash", ctx))
            case ("answer", who, text, cid):
                occupant = self.person(who)
                self.decide(lambda: submit_answer(state, occupant, text, cid, ctx))
            case ("vote", who, target, cid):
                voter, seat = self.person(who), self.seat(target)
                self.decide(lambda: cast_vote(state, voter, seat, cid, ctx))
            case ("robot_answer", where, number, text, cid):
                seat = self.seat(where)
                result = AnswerGenerated(
                    command_id=cid,
                    robot_id=state.seats.get(seat, "robot-unknown"),
                    seat=seat,
                    round=number,
                    text=text,
                    latency_ms=1.0,
                    brain="test",
                )
                self.decide(lambda: accept_robot_result(state, result, ctx))
            case ("robot_vote", where, number, target, cid):
                seat = self.seat(where)
                vote = VoteGenerated(
                    command_id=cid,
                    robot_id=state.seats.get(seat, "robot-unknown"),
                    seat=seat,
                    round=number,
                    target=self.seat(target),
                    latency_ms=1.0,
                    brain="test",
                )
                self.decide(lambda: accept_robot_result(state, vote, ctx))
            case ("obey", which, target, text):
                self.obey(which, target, text)
            case ("play", who, target, cid):
                self.play(who, target, cid)
            case ("tick", dt):
                self.now += timedelta(seconds=dt)
            case ("advance", dt):
                self.now += timedelta(seconds=dt)
                self.decide(lambda: advance(self.state, self.ctx))
            case _:
                raise AssertionError(f"unknown command {command!r}")

    def play(self, who: int, target: int, cid: str) -> None:
        """A seat that has not acted yet makes a move that fits the phase."""
        state, ctx, current = self.state, self.ctx, self.state.current
        if current is None:
            return
        if state.phase == "answering":
            idle = [s for s in sorted(state.seats) if s not in current.answers]
            seat = idle[who % len(idle)]
            assert state.settings is not None
            limit = state.settings.max_answer_chars
            occupant, text = state.seats[seat], f"{seat} says hi"[:limit]
            self.decide(lambda: submit_answer(state, occupant, text, cid, ctx))
        elif state.phase == "voting":
            idle = [s for s in current.order if s not in current.votes]
            voter = idle[who % len(idle)]
            ballot = [s for s in current.order if s != voter]
            choice, occupant = ballot[target % len(ballot)], state.seats[voter]
            self.decide(lambda: cast_vote(state, occupant, choice, cid, ctx))

    def obey(self, which: int, target: int, text: str) -> None:
        """A robot answers one of its pending commands, as the pool would."""
        pending = pending_robot_commands(self.state)
        assert pending == pending_robot_commands(self.state), "ids must be stable"
        if not pending:
            return
        command = pending[which % len(pending)]
        result: AnswerGenerated | VoteGenerated
        if isinstance(command, GenerateAnswer):
            result = AnswerGenerated(
                command_id=command.command_id,
                robot_id=command.robot_id,
                seat=command.seat,
                round=command.round,
                text=text,
                latency_ms=1.0,
                brain="test",
            )
        else:
            ballot = [a.seat for a in command.answers]
            result = VoteGenerated(
                command_id=command.command_id,
                robot_id=command.robot_id,
                seat=command.seat,
                round=command.round,
                target=ballot[target % len(ballot)],
                latency_ms=1.0,
                brain="test",
            )
        state, ctx = self.state, self.ctx
        self.decide(lambda: accept_robot_result(state, result, ctx))


# --- the scoring oracle ------------------------------------------------------


def readme_points(
    answered: Collection[str],
    votes: Mapping[str, str],
    kinds: Mapping[str, Literal["human", "robot"]],
) -> dict[str, int]:
    """One round's points per seat, read straight off the README's scoring table.

    Written seat by seat, independently of ``game.scoring``: a seat without an
    answer scores 0; only seats that answered and voted count as voters.
    """
    counted = {voter: target for voter, target in votes.items() if voter in answered}
    points: dict[str, int] = {}
    for seat, kind in kinds.items():
        if seat not in answered:
            points[seat] = 0
            continue
        detecting = 1 if seat in counted and kinds[counted[seat]] == "human" else 0
        if kind == "human":
            others = [voter for voter in counted if voter != seat]
            deceiving = sum(1 for voter in others if counted[voter] != seat)
        else:
            deceiving = sum(1 for target in counted.values() if target == seat)
        points[seat] = detecting + deceiving
    return points


# --- invariants ----------------------------------------------------------------


def check_log(game: Game) -> None:
    """Replay the log and check every rule of the game along the way."""
    settings_: MatchCreated | None = None
    robots: set[str] = set()
    players: list[str] = []
    kinds: dict[str, Literal["human", "robot"]] = {}
    rounds: list[RoundStarted] = []
    answers: dict[int, dict[str, str]] = {}
    ballots: dict[int, tuple[str, ...]] = {}
    votes: dict[int, dict[str, str]] = {}
    answer_count: Counter[tuple[int, str]] = Counter()
    vote_count: Counter[tuple[int, str]] = Counter()
    totals: dict[str, int] = {}
    scored: list[int] = []
    ended: MatchEnded | None = None
    last_time = START

    for record in game.log:
        payload = record.payload
        assert ended is None, f"{payload.type} after the match ended"
        assert record.occurred_at >= last_time
        last_time = record.occurred_at
        match payload:
            case MatchCreated():
                assert settings_ is None
                settings_ = payload
            case PlayerJoined():
                assert settings_ is not None and not kinds
                assert payload.player_id not in players
                players.append(payload.player_id)
                assert len(players) <= settings_.humans
            case RobotsAssigned():
                assert settings_ is not None
                assert len(players) == settings_.humans
                assert len(payload.robots) == settings_.robots
                robots = {r.robot_id for r in payload.robots}
                assert len(robots) == settings_.robots
            case MatchStarted():
                assert settings_ is not None
                occupants = [s.occupant_id for s in payload.seats]
                assert sorted(occupants) == sorted([*players, *robots])
                labels = [s.seat for s in payload.seats]
                assert len(set(labels)) == len(labels)
                assert set(labels) <= set(SEAT_LABELS)
                kinds = {
                    s.seat: "robot" if s.occupant_id in robots else "human"
                    for s in payload.seats
                }
                totals = dict.fromkeys(kinds, 0)
            case RoundStarted():
                assert settings_ is not None and kinds
                assert payload.round == len(rounds) + 1 <= settings_.rounds
                assert payload.prompt_id not in {r.prompt_id for r in rounds}
                assert payload.deadline == record.occurred_at + timedelta(
                    seconds=settings_.answer_timeout_s
                )
                assert len(scored) == len(rounds)
                rounds.append(payload)
                answers[payload.round] = {}
                votes[payload.round] = {}
            case AnswerSubmitted():
                assert settings_ is not None
                assert payload.round == len(rounds)
                assert payload.round not in ballots, "answer after voting opened"
                assert payload.seat in kinds
                answer_count[payload.round, payload.seat] += 1
                assert answer_count[payload.round, payload.seat] == 1
                assert payload.text == payload.text.strip() != ""
                assert len(payload.text) <= settings_.max_answer_chars
                assert record.occurred_at < rounds[-1].deadline
                answers[payload.round][payload.seat] = payload.text
            case VotingOpened():
                assert payload.round == len(rounds) and payload.round not in ballots
                answered = answers[payload.round]
                assert sorted(payload.order) == sorted(answered)
                assert payload.missing == tuple(sorted(set(kinds) - set(answered)))
                ballots[payload.round] = payload.order
            case VoteCast():
                assert payload.round == len(rounds)
                ballot = ballots[payload.round]
                vote_count[payload.round, payload.voter] += 1
                assert vote_count[payload.round, payload.voter] == 1
                assert payload.voter in ballot
                assert payload.target in ballot
                assert payload.target != payload.voter
                assert payload.round not in scored
                votes[payload.round][payload.voter] = payload.target
            case RoundScored():
                assert settings_ is not None
                number = payload.round
                assert number == len(rounds) and number in ballots
                assert number not in scored
                assert payload.votes == votes[number]
                assert payload.points == readme_points(
                    answers[number], votes[number], kinds
                )
                totals = {s: totals[s] + payload.points[s] for s in kinds}
                assert payload.totals == totals
                last = number == settings_.rounds
                assert (payload.next_round_at is None) == last
                scored.append(number)
            case LateResultRecorded():
                assert payload.seat in kinds and kinds[payload.seat] == "robot"
            case MatchEnded():
                assert settings_ is not None
                ended = payload
                assert payload.totals == totals
                assert payload.winners == winners(totals)
                if payload.reason == "completed":
                    assert scored == list(range(1, settings_.rounds + 1))
                else:
                    assert not kinds, "only a lobby is abandoned"
                assert [r.seat for r in payload.reveal] == sorted(kinds)
                for revealed in payload.reveal:
                    assert revealed.kind == kinds[revealed.seat]
            case _:
                raise AssertionError(f"unexpected {payload.type} in a match log")

    for number, round_points in enumerate(
        (r.points for r in game.state.rounds), start=1
    ):
        if number in scored:
            assert round_points == readme_points(answers[number], votes[number], kinds)
    assert game.state.totals == totals
    assert totals == {
        seat: sum(r.points.get(seat, 0) for r in game.state.rounds) for seat in totals
    }


def check_state(game: Game) -> None:
    state = game.state
    for rnd in state.rounds:
        assert set(rnd.votes) <= set(rnd.order)
        for voter, target in rnd.votes.items():
            assert target != voter and target in rnd.order
    assert fold(MATCH_ID, game.log) == state


# --- the property --------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    template=templates,
    timing=timings,
    invite=st.booleans(),
    prejoin=st.integers(0, 3).map(bool),  # mostly: every human joins first
    seed=st.integers(0, 2**32 - 1),
    script=st.lists(commands, min_size=30, max_size=120),
)
def test_any_command_sequence_keeps_match_consistent(
    template: tuple[str, int | None, int | None],
    timing: dict[str, Any],
    invite: bool,
    prejoin: bool,
    seed: int,
    script: list[Command],
) -> None:
    name, humans, robots = template
    resolved = BOOK.resolve(name, humans=humans, robots=robots, **timing)
    game = Game(state=MatchState(match_id=MATCH_ID), rng=random.Random(seed))
    game.decide(lambda: create_match(resolved, START, "ABC234" if invite else None))
    if prejoin:
        script = [("join", n) for n in range(resolved.humans)] + script

    for command in script:
        game.run(command)
        check_log(game)
        check_state(game)

    hypothesis.event(f"final phase: {game.state.phase}")
    hypothesis.event(f"rounds scored: {sum(bool(r.points) for r in game.state.rounds)}")
    kinds = Counter(e.type for e in game.log)
    votes = kinds["vote_cast"]
    hypothesis.event(f"votes cast: {'3+' if votes >= 3 else votes}")
    hypothesis.event(f"late results: {bool(kinds['late_result_recorded'])}")
    if game.state.ended is not None:
        hypothesis.event(f"ended: {game.state.ended.reason}")
    for code in game.rejected:
        hypothesis.event(f"rejected: {code}")


# --- scoring against the README ------------------------------------------------


@pytest.mark.parametrize(
    ("answered", "votes", "kinds", "expected"),
    [
        pytest.param(
            "abcd",
            {"a": "b", "b": "c", "c": "a", "d": "a"},
            {"a": "human", "b": "robot", "c": "robot", "d": "robot"},
            {"a": 1, "b": 1, "c": 2, "d": 1},
            id="classic-everyone-votes",
        ),
        pytest.param(
            "abcd",
            {"a": "b", "b": "a", "c": "a"},
            {"a": "human", "b": "human", "c": "robot", "d": "robot"},
            {"a": 1, "b": 2, "c": 1, "d": 0},
            id="duo-one-seat-silent",
        ),
        pytest.param(
            "abc",
            {"a": "c", "b": "c", "c": "a"},
            {"a": "human", "b": "robot", "c": "robot", "d": "human"},
            {"a": 1, "b": 0, "c": 3, "d": 0},
            id="human-no-show-scores-zero",
        ),
        pytest.param(
            "a",
            {},
            {"a": "human", "b": "robot", "c": "robot"},
            {"a": 0, "b": 0, "c": 0},
            id="lone-answer-no-votes",
        ),
    ],
)
def test_readme_points_match_hand_worked_rounds(
    answered: str,
    votes: dict[str, str],
    kinds: dict[str, Literal["human", "robot"]],
    expected: dict[str, int],
) -> None:
    points = readme_points(set(answered), votes, kinds)

    assert points == expected


def _play_one_round(game: Game, data: st.DataObject) -> tuple[set[str], dict[str, str]]:
    """Random seats answer and random voters vote; the deadlines close the rest."""
    seats = sorted(game.state.seats)
    answered = data.draw(st.sets(st.sampled_from(seats)), label="answered")
    for n, seat in enumerate(sorted(answered)):
        occupant = game.state.seats[seat]
        game.decide(
            partial(submit_answer, game.state, occupant, "hi", f"a{n}", game.ctx)
        )
    if game.state.phase == "answering":
        game.now += timedelta(seconds=60)
        game.decide(lambda: advance(game.state, game.ctx))

    votes: dict[str, str] = {}
    ballot = sorted(answered)
    for n, voter in enumerate(ballot):
        others = [seat for seat in ballot if seat != voter]
        choice = data.draw(st.none() | st.sampled_from(others or [None]), label=voter)
        if choice is not None and game.state.phase == "voting":
            votes[voter] = choice
            occupant = game.state.seats[voter]
            game.decide(
                partial(cast_vote, game.state, occupant, choice, f"v{n}", game.ctx)
            )
    if game.state.phase == "voting":
        game.now += timedelta(seconds=60)
        game.decide(lambda: advance(game.state, game.ctx))
    return answered, votes


@settings(max_examples=200, deadline=None)
@given(template=templates, seed=st.integers(0, 2**32 - 1), data=st.data())
def test_round_points_follow_readme_scoring_table(
    template: tuple[str, int | None, int | None], seed: int, data: st.DataObject
) -> None:
    name, humans, robots = template
    resolved = BOOK.resolve(name, humans=humans, robots=robots, rounds=1)
    game = Game(state=MatchState(match_id=MATCH_ID), rng=random.Random(seed))
    game.decide(lambda: create_match(resolved, START))
    players = PLAYERS[: resolved.humans]
    for player in players:
        game.decide(partial(join_match, game.state, player, "hash", game.ctx))
    kinds: dict[str, Literal["human", "robot"]] = {
        seat: "human" if occupant in players else "robot"
        for seat, occupant in game.state.seats.items()
    }

    answered, votes = _play_one_round(game, data)

    scored = [e.payload for e in game.log if isinstance(e.payload, RoundScored)]
    assert len(scored) == 1
    assert scored[0].votes == votes
    assert scored[0].points == readme_points(answered, votes, kinds)
    assert game.state.ended is not None
    assert game.state.ended.totals == scored[0].points
    hypothesis.event(f"humans: {resolved.humans}")
    hypothesis.event(f"no-shows: {len(kinds) - len(answered)}")
    hypothesis.event(f"silent voters: {len(answered) - len(votes)}")
