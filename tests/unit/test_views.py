"""What players see: no kind, persona, id or points of a seat before the reveal.

Matches are played through the pure rules (humans by command, robots by the
commands the engine would send them, deadlines by the clock), and after every
step each player's and a spectator's forms of the match are searched for
anything that would tell a seat's kind.
"""

from __future__ import annotations

import contextlib
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events import Envelope, Payload, new_event
from events.match_events import AnswerSubmitted, VoteCast
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
    join_match,
    new_invite_code,
    pending_robot_commands,
    submit_answer,
)
from serve_app.gateway import token_hash
from serve_app.views import is_public, match_view, public_event, public_timeline

START = datetime(2030, 1, 1, tzinfo=UTC)
PERSONAS = ("curious_student", "skeptical_scientist", "creative_artist")
PROMPTS = PromptBank.load()
BOOK = TemplateBook.load()

# Keys that only the reveal, or no player ever, may carry.
SECRET_KEYS = frozenset(
    {
        "kind",
        "persona",
        "personas",
        "points",
        "totals",
        "winners",
        "robot_id",
        "occupant_id",
        "player_id",
        "brain",
        "latency_ms",
        "command_id",
        "token",
        "token_sha256",
        "voter",
    }
)


@dataclass
class Table:
    """A match played through the rules, with everything a player must not see."""

    humans: list[str]
    rng: random.Random
    state: MatchState = field(default_factory=lambda: MatchState("m-views"))
    now: datetime = START
    log: list[Envelope] = field(default_factory=list)
    command_ids: list[str] = field(default_factory=list)

    @property
    def ctx(self) -> Context:
        return Context(now=self.now, rng=self.rng, prompts=PROMPTS, personas=PERSONAS)

    def apply(self, payloads: list[Payload]) -> None:
        for payload in payloads:
            event = new_event(
                payload, match_id="m-views", producer="test", occurred_at=self.now
            )
            self.state.apply(event)
            self.log.append(event)

    def decide(self, rule: Callable[[], list[Payload]]) -> None:
        # A refused command changes nothing; play on.
        with contextlib.suppress(RuleViolation):
            self.apply(rule())

    def join(self) -> None:
        waiting = [p for p in self.humans if p not in self.state.players]
        if waiting and self.state.phase == "lobby":
            player = waiting[0]
            self.decide(
                lambda: join_match(self.state, player, token_hash(player), self.ctx)
            )

    def act(self, who: int, target: int) -> None:
        """A seat that owes a move for this phase makes one."""
        current = self.state.current
        if current is None or self.state.phase not in ("answering", "voting"):
            return
        if self.state.phase == "answering":
            owing = [s for s in sorted(self.state.seats) if s not in current.answers]
        else:
            owing = [s for s in current.order if s not in current.votes]
        if not owing:
            return
        seat = owing[who % len(owing)]
        if self.state.seats[seat] in self.state.personas:
            self.robot_moves(seat, target)
        else:
            self.human_moves(seat, target)

    def human_moves(self, seat: str, target: int) -> None:
        state, ctx, current = self.state, self.ctx, self.state.current
        assert current is not None
        cid = f"cmd-{uuid.uuid4().hex}"
        self.command_ids.append(cid)
        occupant = state.seats[seat]
        if state.phase == "answering":
            text = f"{seat} answers"
            self.decide(lambda: submit_answer(state, occupant, text, cid, ctx))
        else:
            ballot = [s for s in current.order if s != seat]
            choice = ballot[target % len(ballot)]
            self.decide(lambda: cast_vote(state, occupant, choice, cid, ctx))

    def robot_moves(self, seat: str, target: int) -> None:
        commands = [c for c in pending_robot_commands(self.state) if c.seat == seat]
        if not commands:
            return
        command = commands[0]
        self.command_ids.append(command.command_id)
        result: AnswerGenerated | VoteGenerated
        if isinstance(command, GenerateAnswer):
            result = AnswerGenerated(
                command_id=command.command_id,
                robot_id=command.robot_id,
                seat=seat,
                round=command.round,
                text=f"{seat} beeps",
                latency_ms=12.0,
                brain="offline",
            )
        else:
            ballot = [a.seat for a in command.answers if a.seat != seat]
            result = VoteGenerated(
                command_id=command.command_id,
                robot_id=command.robot_id,
                seat=seat,
                round=command.round,
                target=ballot[target % len(ballot)],
                latency_ms=12.0,
                brain="offline",
            )
        state, ctx = self.state, self.ctx
        self.decide(lambda: accept_robot_result(state, result, ctx))

    def wait(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.decide(lambda: advance(self.state, self.ctx))

    def secrets(self) -> list[str]:
        """Strings that, seen before the reveal, would tell who is who."""
        return [
            *self.humans,
            *(token_hash(p) for p in self.humans),
            *self.state.personas,
            *self.state.personas.values(),
            *self.command_ids,
        ]


def open_table(
    template: tuple[str, int | None, int | None],
    rounds: int,
    seed: int,
    *,
    fill: bool = True,
) -> Table:
    name, humans, robots = template
    resolved = BOOK.resolve(
        name,
        humans=humans,
        robots=robots,
        rounds=rounds,
        answer_timeout_s=5.0,
        vote_timeout_s=5.0,
        intermission_s=1.0,
        invite_ttl_s=30.0,
    )
    rng = random.Random(seed)
    table = Table(
        [f"player-{rng.getrandbits(64):016x}" for _ in range(resolved.humans)], rng
    )
    invite = new_invite_code(rng) if resolved.humans > 1 else None
    table.apply(create_match(resolved, START, invite))
    for _ in table.humans if fill else table.humans[:1]:
        table.join()
    return table


def check_hidden(table: Table) -> None:
    """Nothing a player or a spectator gets tells a seat's kind yet."""
    state = table.state
    public = [e for e in table.log if is_public(e)]
    for viewer in [*state.players, None]:
        you = state.seat_of.get(viewer) if viewer else None
        events = [public_event(e, n, you) for n, e in enumerate(public, start=1)]
        view = match_view(state, viewer, table.now)

        for shown in [view, *events]:
            assert_no_secret(shown, table.secrets())
        for event, shown in zip(public, events, strict=True):
            if _acting_seat(event.payload) not in (None, you):
                assert set(shown) == {"seq", "type", "round"}
        assert view["reveal"] is None
        if state.phase == "answering":
            assert view["answers"] == []

    timeline = public_timeline(table.log, finished=False)
    assert len(timeline) == len(public)
    assert_no_secret(timeline, table.secrets())


def _acting_seat(payload: Payload) -> str | None:
    if isinstance(payload, AnswerSubmitted):
        return payload.seat
    if isinstance(payload, VoteCast):
        return payload.voter
    return None


def assert_no_secret(shown: Any, secrets: list[str]) -> None:
    text = json.dumps(shown)
    for secret in secrets:
        assert secret not in text, f"{secret!r} shown before the reveal: {text}"
    for key in _keys(shown):
        assert key not in SECRET_KEYS, f"{key!r} shown before the reveal: {text}"


def _keys(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [*value, *(k for v in value.values() for k in _keys(v))]
    if isinstance(value, list):
        return [k for item in value for k in _keys(item)]
    return []


templates = st.one_of(
    st.sampled_from([("classic", None, None), ("duo", None, None)]),
    st.integers(3, 6).flatmap(
        lambda seats: st.integers(1, seats).map(
            lambda humans: ("custom", humans, seats - humans)
        )
    ),
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("act"), st.integers(0, 7), st.integers(0, 7)),
        st.tuples(st.just("everyone"), st.integers(0, 7), st.integers(0, 7)),
        st.tuples(st.just("join"), st.just(0), st.just(0)),
        st.tuples(st.just("wait"), st.sampled_from([0.5, 2.0, 6.0]), st.just(0)),
    ),
    min_size=4,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(templates, st.integers(1, 2), st.integers(0, 2**32), st.booleans(), steps)
def test_views_hide_kinds_until_the_reveal(
    template: tuple[str, int | None, int | None],
    rounds: int,
    seed: int,
    fill: bool,
    plan: list[tuple[str, float, int]],
) -> None:
    table = open_table(template, rounds, seed, fill=fill)

    for step, a, b in plan:
        if step == "act":
            table.act(int(a), b)
        elif step == "everyone":
            for _ in table.state.seats:
                table.act(int(a), b)
        elif step == "join":
            table.join()
        else:
            table.wait(a)
        if table.state.phase == "ended":
            break
        check_hidden(table)


def play_to_the_end(table: Table) -> None:
    for _ in range(200):
        if table.state.phase == "ended":
            return
        table.act(0, 1)
        table.wait(2.0)
    raise AssertionError(f"match stuck in its {table.state.phase} phase")


@pytest.mark.parametrize(
    "template",
    [
        pytest.param(("classic", None, None), id="classic"),
        pytest.param(("duo", None, None), id="duo"),
        pytest.param(("custom", 3, 3), id="custom"),
    ],
)
def test_views_reveal_every_seat_once_ended(
    template: tuple[str, int | None, int | None],
) -> None:
    table = open_table(template, rounds=2, seed=7)

    play_to_the_end(table)
    view = match_view(table.state, table.humans[0], table.now)
    timeline = public_timeline(table.log, finished=True)

    kinds = {s["seat"]: s["kind"] for s in view["reveal"]["seats"]}
    assert kinds == {s: table.state.kind_of(s) for s in table.state.seats}
    personas = {s["persona"] for s in view["reveal"]["seats"]} - {None}
    assert personas <= set(PERSONAS) and personas
    assert [p["round"] for p in view["reveal"]["points"]] == [1, 2]
    assert {"robots_assigned", "match_ended"} <= {e["type"] for e in timeline}


def test_public_timeline_hides_robot_events_while_running() -> None:
    table = open_table(("classic", None, None), rounds=1, seed=3)

    running = public_timeline(table.log, finished=False)
    private = [e.payload.type for e in table.log if not is_public(e)]

    assert private == ["robots_assigned"]
    assert "robots_assigned" not in {e["type"] for e in running}
    assert [e["seq"] for e in running] == list(range(1, len(running) + 1))
