"""The history projection: stats and timelines give no kind away before the reveal.

Matches are played by the real rules on a simulated clock, robots answering
and voting through robot results the way the engine folds them, and the
projection folds the two streams event by event.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest

from actors.projector import Projection
from events import Envelope, Payload, new_event
from events.match_events import (
    LateResultRecorded,
    MatchEnded,
    RobotsAssigned,
    RoundScored,
    VotingOpened,
)
from events.robot_events import AnswerGenerated, VoteGenerated
from game import (
    Context,
    MatchState,
    PromptBank,
    TemplateBook,
    accept_robot_result,
    advance,
    cast_vote,
    create_match,
    join_match,
    submit_answer,
)
from game.robot_commands import command_id

START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
PERSONAS = ("curious_student", "skeptical_scientist", "creative_artist")
PROMPTS = PromptBank.load()
BOOK = TemplateBook.load()
Topic = Literal["match", "robot"]
RobotResult = AnswerGenerated | VoteGenerated


@dataclass
class Table:
    """Plays one match by the rules; robots act through robot results.

    In round 2 one robot answers after the deadline, so the log also holds a
    ``LateResultRecorded``.
    """

    seed: int
    template: str = "classic"
    state: MatchState = field(init=False)
    rng: random.Random = field(init=False)
    clock: datetime = field(init=False)
    stream: list[tuple[Topic, Envelope]] = field(default_factory=list)
    late: RobotResult | None = None

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.clock = START + timedelta(hours=self.seed)
        self.state = MatchState(f"m-{self.seed:04d}")

    def ctx(self) -> Context:
        return Context(now=self.clock, rng=self.rng, prompts=PROMPTS, personas=PERSONAS)

    def record(self, payloads: list[Payload], cause: uuid.UUID | None = None) -> None:
        for payload in payloads:
            event = new_event(
                payload,
                match_id=self.state.match_id,
                producer="engine-0",
                causation_id=cause,
                occurred_at=self.clock,
            )
            self.state.apply(event)
            self.stream.append(("match", event))

    def robot(self, result: RobotResult) -> None:
        event = new_event(
            result,
            match_id=self.state.match_id,
            producer="worker",
            occurred_at=self.clock,
        )
        self.stream.append(("robot", event))
        self.record(accept_robot_result(self.state, result, self.ctx()), event.event_id)

    def play(self) -> list[tuple[Topic, Envelope]]:
        resolved = BOOK.resolve(self.template)
        invite = "ABC234" if resolved.humans > 1 else None
        self.record(create_match(resolved, self.clock, invite))
        for n in range(resolved.humans):
            player = f"p-{self.seed:04d}{n}"
            self.record(join_match(self.state, player, f"hash-{player}", self.ctx()))
        while self.state.phase != "ended":
            before = (self.state.phase, len(self.state.rounds))
            if self.state.phase == "answering":
                self.answer_all()
            elif self.state.phase == "voting":
                self.vote_all()
            if (self.state.phase, len(self.state.rounds)) != before:
                continue
            deadline = self.state.deadline()
            assert deadline is not None
            self.clock = max(self.clock, deadline)
            self.record(advance(self.state, self.ctx()))
        return self.stream

    def answer_all(self) -> None:
        current = self.state.current
        assert current is not None
        for seat in sorted(self.state.seats, key=lambda _: self.rng.random()):
            self.clock += timedelta(seconds=self.rng.uniform(3, 9))
            if self.state.phase != "answering" or self.clock >= current.answer_deadline:
                return
            text = f"answer of {seat} in round {current.number}"
            if self.state.kind_of(seat) == "human":
                occupant = self.state.seats[seat]
                cid = f"{occupant}:a{current.number}"
                self.record(submit_answer(self.state, occupant, text, cid, self.ctx()))
                continue
            result = AnswerGenerated(
                command_id=command_id(
                    self.state.match_id, current.number, seat, "answer"
                ),
                robot_id=self.state.seats[seat],
                seat=seat,
                round=current.number,
                text=text,
                latency_ms=self.latency_ms(seat),
                brain="offline",
            )
            if current.number == 2 and self.late is None:
                self.late = result
            else:
                self.robot(result)

    def vote_all(self) -> None:
        current = self.state.current
        assert current is not None and current.vote_deadline is not None
        if self.late is not None and self.late.round == current.number:
            self.robot(self.late)
        for seat in sorted(current.order, key=lambda _: self.rng.random()):
            self.clock += timedelta(seconds=self.rng.uniform(2, 6))
            if self.state.phase != "voting" or self.clock >= current.vote_deadline:
                return
            target = self.rng.choice([s for s in current.order if s != seat])
            if self.state.kind_of(seat) == "human":
                occupant = self.state.seats[seat]
                cid = f"{occupant}:v{current.number}"
                self.record(cast_vote(self.state, occupant, target, cid, self.ctx()))
                continue
            self.robot(
                VoteGenerated(
                    command_id=command_id(
                        self.state.match_id, current.number, seat, "vote"
                    ),
                    robot_id=self.state.seats[seat],
                    seat=seat,
                    round=current.number,
                    target=target,
                    latency_ms=self.latency_ms(seat),
                    brain="offline",
                )
            )

    def latency_ms(self, seat: str) -> float:
        persona = self.state.personas[self.state.seats[seat]]
        return 100.0 * (PERSONAS.index(persona) + 1)


def play(seed: int, template: str = "classic") -> list[tuple[Topic, Envelope]]:
    return Table(seed, template).play()


def fold(projection: Projection, topic: Topic, event: Envelope) -> None:
    if topic == "match":
        projection.fold_match_event(event)
    else:
        projection.fold_robot_event(event)


def without_counts(figures: dict[str, Any]) -> dict[str, Any]:
    """The figures less the match counts, which no kind can change."""
    kept = dict(figures)
    for name in ("matches_started", "matches_running"):
        kept.pop(name)
    return kept


def expected_figures(stream: list[tuple[Topic, Envelope]]) -> dict[str, Any]:
    """Votes and latencies worked out from the reveal, not from the projection."""
    payloads = [e.payload for _, e in stream]
    ended = next(p for p in payloads if isinstance(p, MatchEnded))
    kinds = {r.seat: r.kind for r in ended.reveal}
    persona_of_seat = {r.seat: r.persona for r in ended.reveal if r.persona}
    persona_of_robot = {r.occupant_id: r.persona for r in ended.reveal if r.persona}
    orders = {p.round: p.order for p in payloads if isinstance(p, VotingOpened)}
    drawn: Counter[str] = Counter()
    possible: Counter[str] = Counter()
    votes = on_humans = 0
    for scored in (p for p in payloads if isinstance(p, RoundScored)):
        for voter, target in scored.votes.items():
            votes += 1
            on_humans += kinds[target] == "human"
            for seat in orders[scored.round]:
                if seat in persona_of_seat and seat != voter:
                    possible[persona_of_seat[seat]] += 1
                    drawn[persona_of_seat[seat]] += seat == target
    latencies: defaultdict[str, list[float]] = defaultdict(list)
    for topic, event in stream:
        result = event.payload
        if topic == "robot" and isinstance(result, AnswerGenerated | VoteGenerated):
            latencies[persona_of_robot[result.robot_id]].append(result.latency_ms)
    return {
        "votes": votes,
        "votes_on_humans": on_humans,
        "drawn": drawn,
        "possible": possible,
        "latencies": latencies,
    }


@pytest.mark.parametrize(
    ("template", "seed"),
    [
        pytest.param("classic", 2, id="classic"),
        pytest.param("classic", 3, id="classic-other-seed"),
        pytest.param("duo", 4, id="duo"),
    ],
)
def test_projection_stats_give_no_kind_away_until_the_match_ended(
    template: str, seed: int
) -> None:
    projection = Projection()
    for topic, event in play(1):
        fold(projection, topic, event)
    before = without_counts(projection.figures())
    stream = play(seed, template)
    *running, (last_topic, last) = stream

    for topic, event in running:
        fold(projection, topic, event)
        assert without_counts(projection.figures()) == before, event.type
    fold(projection, last_topic, last)

    assert isinstance(last.payload, MatchEnded)
    assert without_counts(projection.figures()) != before


def test_projection_stats_are_right_after_the_reveal() -> None:
    projection = Projection()
    stream = play(5)
    expected = expected_figures(stream)

    for topic, event in stream:
        fold(projection, topic, event)
    figures = projection.figures()

    assert figures["matches_completed"] == 1
    assert figures["votes"] == expected["votes"] > 0
    assert figures["human_detection_rate"] == round(
        expected["votes_on_humans"] / expected["votes"], 4
    )
    assert set(figures["personas"]) == set(expected["possible"])
    for name, persona in figures["personas"].items():
        assert persona["votes_drawn"] == expected["drawn"][name]
        assert persona["taken_for_human_rate"] == round(
            expected["drawn"][name] / expected["possible"][name], 4
        )
        assert persona["latency_ms"]["p50"] == expected["latencies"][name][0]


@pytest.mark.parametrize(
    "order",
    [
        pytest.param("as_played", id="as-played"),
        pytest.param("robots_first", id="robot-results-first"),
        pytest.param("robots_last", id="robot-results-after-the-end"),
    ],
)
def test_projection_stats_do_not_depend_on_which_stream_comes_first(
    order: str,
) -> None:
    stream = play(6)
    if order != "as_played":
        robots = [s for s in stream if s[0] == "robot"]
        matches = [s for s in stream if s[0] == "match"]
        stream = robots + matches if order == "robots_first" else matches + robots
    reference, projection = Projection(), Projection()
    for topic, event in play(6):
        fold(reference, topic, event)

    for topic, event in stream:
        fold(projection, topic, event)

    assert projection.figures() == reference.figures()


def test_projection_timeline_of_a_running_match_hides_kinds() -> None:
    projection = Projection()
    stream = play(7)
    secrets: set[str] = set()
    for topic, event in stream:
        if topic == "robot":
            assert event.event_id is not None
            secrets.add(str(event.event_id))
            secrets.add(event.payload.command_id)  # type: ignore[union-attr]
        elif isinstance(event.payload, RobotsAssigned):
            for robot in event.payload.robots:
                secrets |= {robot.robot_id, robot.persona}
    kinds = {"human", "robot"}
    *running, _ = stream

    for topic, event in running:
        fold(projection, topic, event)
        if topic == "robot":
            continue
        found = projection.timeline(event.key)
        assert found is not None
        events, finished = found
        text = "\n".join(e.model_dump_json() for e in events)
        assert not finished
        assert not any(
            isinstance(e.payload, RobotsAssigned | LateResultRecorded) for e in events
        )
        assert not [s for s in secrets if s in text], event.type
        assert "p-0007" not in text and "hash-" not in text
        assert not any(f'"kind":"{k}"' in text for k in kinds)
        scored = [e.payload for e in events if isinstance(e.payload, RoundScored)]
        assert all(not p.points and not p.totals for p in scored)


def test_projection_timeline_of_an_ended_match_is_whole() -> None:
    projection = Projection()
    stream = play(8)

    for topic, event in stream:
        fold(projection, topic, event)
    found = projection.timeline(stream[0][1].key)

    assert found is not None
    events, finished = found
    assert finished
    assert events == [e for topic, e in stream if topic == "match"]
    assert any(isinstance(e.payload, LateResultRecorded) for e in events)


def test_projection_player_history_shows_no_score_until_the_reveal() -> None:
    projection = Projection()
    stream = play(9)
    *running, (_, last) = stream
    assert isinstance(last.payload, MatchEnded)

    for topic, event in running:
        fold(projection, topic, event)
    before, _ = projection.player_matches("hash-p-00090", 0, 10)
    projection.fold_match_event(last)
    after, _ = projection.player_matches("hash-p-00090", 0, 10)

    assert before[0]["score"] is None and before[0]["won"] is False
    seat = after[0]["seat"]
    assert after[0]["score"] == last.payload.totals[seat]
    assert after[0]["won"] == (seat in last.payload.winners)


def test_projection_redelivered_round_is_counted_once() -> None:
    projection, reference = Projection(), Projection()
    stream = play(10)

    for topic, event in stream:
        fold(projection, topic, event)
        fold(reference, topic, event)
        if isinstance(event.payload, RoundScored):
            fold(projection, topic, event)

    assert projection.figures() == reference.figures()
