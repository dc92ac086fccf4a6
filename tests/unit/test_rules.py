"""The rules of a match: templates, joining, answers, votes, deadlines, scoring."""

from __future__ import annotations

import copy
import random
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml

from events import Envelope, Payload, new_event
from events.match_events import (
    AnswerSubmitted,
    LateResultRecorded,
    MatchEnded,
    MatchStarted,
    PlayerJoined,
    RobotsAssigned,
    RoundScored,
    RoundStarted,
    VoteCast,
    VotingOpened,
)
from events.robot_events import (
    AnswerGenerated,
    GenerateAnswer,
    GenerateVote,
    VoteGenerated,
)
from game import (
    Context,
    GameError,
    MatchState,
    PromptBank,
    RuleViolation,
    TemplateBook,
    TemplateError,
    accept_robot_result,
    advance,
    cast_vote,
    create_match,
    fold,
    join_match,
    new_invite_code,
    pending_robot_commands,
    rules,
    score_round,
    submit_answer,
    winners,
)
from game.prompts import MIN_PROMPTS, PROMPTS_FILE
from game.rules import INVITE_ALPHABET, SEAT_LABELS

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
PERSONAS = ("curious_student", "skeptical_scientist", "creative_artist")
PROMPTS = PromptBank.load()
BOOK = TemplateBook.load()

Kinds = Mapping[str, Literal["human", "robot"]]


# --- a small driver ------------------------------------------------------------


@dataclass
class Match:
    """A match's live state plus its log, folded the way a server folds it."""

    state: MatchState
    now: datetime = NOW
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    log: list[Envelope] = field(default_factory=list)
    next_command: int = 0

    @property
    def ctx(self) -> Context:
        return Context(now=self.now, rng=self.rng, prompts=PROMPTS, personas=PERSONAS)

    @property
    def phase(self) -> str:
        """The phase, read afresh (no type narrowing across commands)."""
        return self.state.phase

    def apply(self, payloads: list[Payload]) -> list[Payload]:
        for payload in payloads:
            event = new_event(
                payload,
                match_id=self.state.match_id,
                producer="test",
                occurred_at=self.now,
            )
            self.state.apply(event)
            self.log.append(event)
        return payloads

    def cid(self) -> str:
        self.next_command += 1
        return f"cmd-{self.next_command}"

    def at(self, when: datetime | None) -> Match:
        assert when is not None
        self.now = when
        return self

    def join(self, player: str) -> list[Payload]:
        return self.apply(join_match(self.state, player, "hash", self.ctx))

    def answer(self, occupant: str, text: str = "an answer") -> list[Payload]:
        return self.apply(
            submit_answer(self.state, occupant, text, self.cid(), self.ctx)
        )

    def vote(self, occupant: str, target_seat: str) -> list[Payload]:
        return self.apply(
            cast_vote(self.state, occupant, target_seat, self.cid(), self.ctx)
        )

    def advance(self) -> list[Payload]:
        return self.apply(advance(self.state, self.ctx))

    def robot(self, result: AnswerGenerated | VoteGenerated) -> list[Payload]:
        return self.apply(accept_robot_result(self.state, result, self.ctx))

    def seat(self, occupant: str) -> str:
        return self.state.seat_of[occupant]

    def humans(self) -> list[str]:
        return list(self.state.players)

    def robot_ids(self) -> list[str]:
        return [self.state.seats[s] for s in self.state.robot_seats()]

    def kinds(self) -> dict[str, Literal["human", "robot"]]:
        return {seat: self.state.kind_of(seat) for seat in self.state.seats}


def new_match(
    template: str = "classic",
    *,
    seed: int = 0,
    invite: bool = True,
    humans: int | None = None,
    robots: int | None = None,
    **timings: Any,
) -> Match:
    resolved = BOOK.resolve(template, humans=humans, robots=robots, **timings)
    match = Match(state=MatchState(match_id=f"m-{seed}"), rng=random.Random(seed))
    match.apply(create_match(resolved, NOW, "ABC234" if invite else None))
    return match


def started(template: str = "classic", *, seed: int = 0, **timings: Any) -> Match:
    match = new_match(template, seed=seed, **timings)
    assert match.state.settings is not None
    for n in range(match.state.settings.humans):
        match.join(f"h{n + 1}")
    assert match.state.phase == "answering"
    return match


def voting(template: str = "classic", *, seed: int = 0) -> Match:
    """Every seat answered, so voting opened at once."""
    match = started(template, seed=seed)
    for occupant in match.state.seats.values():
        match.answer(occupant, f"answer of {occupant}")
    assert match.state.phase == "voting"
    return match


def robot_answer(match: Match, robot_seat: str, **overrides: Any) -> AnswerGenerated:
    assert match.state.current is not None
    fields: dict[str, Any] = {
        "command_id": f"{match.state.match_id}/r{match.state.current.number}/"
        f"{robot_seat}/answer",
        "robot_id": match.state.seats[robot_seat],
        "seat": robot_seat,
        "round": match.state.current.number,
        "text": "  a robot's answer  ",
        "latency_ms": 120.0,
        "brain": "offline",
    }
    fields.update(overrides)
    return AnswerGenerated(**fields)


def types(payloads: list[Payload]) -> list[str]:
    return [p.type for p in payloads]


def only(payloads: list[Payload], kind: type[Any]) -> Any:
    found = [p for p in payloads if isinstance(p, kind)]
    assert len(found) == 1, types(payloads)
    return found[0]


# --- templates -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "humans", "robots"),
    [pytest.param("classic", 1, 3, id="classic"), pytest.param("duo", 2, 2, id="duo")],
)
def test_template_named_has_fixed_seats(name: str, humans: int, robots: int) -> None:
    template = BOOK.resolve(name)
    assert (template.name, template.humans, template.robots) == (name, humans, robots)
    assert template.seats == 4
    assert template.timings.rounds == 5
    assert template.timings.max_answer_chars == 280


@pytest.mark.parametrize(
    ("humans", "robots"),
    [
        pytest.param(1, 2, id="3-seats"),
        pytest.param(3, 0, id="3-humans-no-robots"),
        pytest.param(2, 3, id="5-seats"),
        pytest.param(1, 7, id="8-seats"),
        pytest.param(8, 0, id="8-humans"),
    ],
)
def test_template_custom_accepts_3_to_8_seats(humans: int, robots: int) -> None:
    template = BOOK.resolve("custom", humans=humans, robots=robots)
    assert (template.humans, template.robots) == (humans, robots)
    assert template.seats == humans + robots


@pytest.mark.parametrize(
    ("humans", "robots", "fragment"),
    [
        pytest.param(1, 1, "3 to 8 seats", id="2-seats"),
        pytest.param(1, 8, "3 to 8 seats", id="9-seats"),
        pytest.param(0, 4, "at least 1 human", id="0-humans"),
        pytest.param(4, -1, "negative", id="negative-robots"),
        pytest.param(None, 3, "needs both", id="humans-missing"),
        pytest.param(2, None, "needs both", id="robots-missing"),
    ],
)
def test_template_custom_rejects_bad_seats(
    humans: int | None, robots: int | None, fragment: str
) -> None:
    with pytest.raises(TemplateError, match=fragment):
        BOOK.resolve("custom", humans=humans, robots=robots)


def test_template_unknown_name_rejected() -> None:
    with pytest.raises(TemplateError, match="unknown template 'trio'") as caught:
        BOOK.resolve("trio")
    assert "classic, duo, custom" in str(caught.value)


def test_template_timing_override_applies() -> None:
    template = BOOK.resolve("duo", rounds=2, answer_timeout_s=10, max_answer_chars=50)
    assert template.timings.rounds == 2
    assert template.timings.answer_timeout_s == 10
    assert template.timings.max_answer_chars == 50
    assert template.timings.vote_timeout_s == 30


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"rounds": 0}, id="zero-rounds"),
        pytest.param({"answer_timeout_s": -1}, id="negative-timeout"),
        pytest.param({"max_answer_chars": 5000}, id="too-many-chars"),
    ],
)
def test_template_bad_timing_override_rejected(overrides: dict[str, Any]) -> None:
    with pytest.raises(TemplateError, match="invalid timing override"):
        BOOK.resolve("classic", **overrides)


def test_template_unknown_timing_override_rejected() -> None:
    with pytest.raises(TemplateError):
        BOOK.resolve("classic", round=1)  # a typo of "rounds"


def test_invite_code_uses_unambiguous_alphabet() -> None:
    rng = random.Random(3)
    codes = {new_invite_code(rng) for _ in range(50)}
    assert len(codes) == 50
    for code in codes:
        assert len(code) == 6
        assert set(code) <= set(INVITE_ALPHABET)
    assert not set(INVITE_ALPHABET) & set("01OIL")


def test_create_match_sets_invite_expiry_only_with_code() -> None:
    template = BOOK.resolve("classic")
    [with_code] = create_match(template, NOW, "ABC234")
    [without] = create_match(template, NOW)
    assert with_code.type == "match_created" and without.type == "match_created"
    assert with_code.invite_expires_at == NOW + timedelta(seconds=900)
    assert without.invite_code is None and without.invite_expires_at is None


# --- joining and starting ------------------------------------------------------


def test_join_solo_classic_starts_at_once() -> None:
    match = new_match("classic")
    events = match.join("h1")

    assert types(events) == [
        "player_joined",
        "robots_assigned",
        "match_started",
        "round_started",
    ]
    state = match.state
    assert state.phase == "answering"
    assert len(state.seats) == 4
    assert set(state.seats.values()) == {"h1", *state.personas}
    assert len(state.robot_seats()) == 3
    assert sorted(state.personas.values()) == sorted(PERSONAS)
    assert state.totals == dict.fromkeys(state.seats, 0)
    round_started = only(events, RoundStarted)
    assert round_started.round == 1
    assert round_started.deadline == NOW + timedelta(seconds=45)
    assert round_started.prompt == PROMPTS.get(round_started.prompt_id).text


def test_join_duo_waits_in_lobby_until_second_human() -> None:
    match = new_match("duo")

    assert types(match.join("h1")) == ["player_joined"]
    assert match.phase == "lobby"
    assert match.state.seats == {}

    events = match.join("h2")
    assert types(events)[0] == "player_joined"
    assert only(events, MatchStarted)
    assert match.phase == "answering"
    assert match.state.players == ["h1", "h2"]
    assert [match.state.kind_of(s) for s in sorted(match.state.seats)].count(
        "human"
    ) == 2
    assert len(set(match.state.personas.values())) == 2


def test_join_custom_with_more_robots_than_personas_reuses_personas() -> None:
    match = new_match("custom", humans=1, robots=7)
    match.join("h1")
    personas = Counter(match.state.personas.values())
    assert sum(personas.values()) == 7
    assert set(personas) == set(PERSONAS)
    assert max(personas.values()) - min(personas.values()) <= 1


def test_join_seat_labels_do_not_reveal_the_human() -> None:
    human_labels: Counter[str] = Counter()
    human_positions: Counter[int] = Counter()
    for seed in range(200):
        match = started("classic", seed=seed)
        seat = match.seat("h1")
        human_labels[seat] += 1
        human_positions[sorted(match.state.seats).index(seat)] += 1
        assert set(match.state.seats) <= set(SEAT_LABELS)

    assert set(human_labels) == set(SEAT_LABELS)
    assert max(human_labels.values()) < 200 // 4
    assert set(human_positions) == {0, 1, 2, 3}
    assert all(20 <= count <= 80 for count in human_positions.values())


def test_join_same_seed_gives_same_match() -> None:
    first, second = started("duo", seed=7), started("duo", seed=7)
    assert [e.payload for e in first.log] == [e.payload for e in second.log]


# --- rejected commands ---------------------------------------------------------

Setup = Callable[[], Match]
Command = Callable[[Match], object]


def _voting_with_missing_robot() -> Match:
    match = started("classic")
    absent = match.state.robot_seats()[0]
    for seat, occupant in match.state.seats.items():
        if seat != absent:
            match.answer(occupant)
    match.at(match.state.deadline()).advance()
    assert match.state.phase == "voting"
    return match


def _ended() -> Match:
    match = started("classic", rounds=1)
    match.answer("h1")
    match.at(match.state.deadline()).advance()
    assert match.state.phase == "ended"
    return match


def _duo_lobby() -> Match:
    match = new_match("duo")
    match.join("h1")
    return match


def _other_seat(match: Match, occupant: str) -> str:
    mine = match.seat(occupant)
    return next(s for s in sorted(match.state.seats) if s != mine)


SHAPES: dict[str, dict[str, int]] = {
    "classic": {},
    "duo": {},
    "custom": {"humans": 3, "robots": 2},
}


def _lobby(template: str) -> Match:
    """Before the last human joins: classic has nobody yet, others one human."""
    match = new_match(template, **SHAPES[template])
    assert match.state.settings is not None
    if match.state.settings.humans > 1:
        match.join("h1")
    assert match.state.phase == "lobby"
    return match


def _answering(template: str, **timings: Any) -> Match:
    return started(template, **SHAPES[template], **timings)


def _voting(template: str, *, no_show: str | None = None, **timings: Any) -> Match:
    """Voting is open; ``no_show`` (an occupant) gave no answer by the deadline."""
    match = _answering(template, **timings)
    for occupant in match.state.seats.values():
        if occupant != no_show:
            match.answer(occupant, f"answer of {occupant}")
    if no_show is not None:
        match.at(match.state.deadline()).advance()
    assert match.state.phase == "voting"
    return match


def _vote_all(match: Match) -> None:
    current = match.state.current
    assert current is not None
    for voter in current.order:
        target = next(seat for seat in current.order if seat != voter)
        match.vote(match.state.seats[voter], target)


def _intermission(template: str) -> Match:
    match = _voting(template, rounds=2)
    _vote_all(match)
    assert match.state.phase == "intermission"
    return match


def _ended_after_play(template: str) -> Match:
    match = _voting(template, rounds=1)
    _vote_all(match)
    assert match.state.phase == "ended"
    return match


def _last_human(match: Match) -> str:
    return match.humans()[-1]


def _voting_with_no_show(template: str) -> Match:
    """The last human to join gave no answer; in classic that is the only one."""
    last = f"h{BOOK.resolve(template, **SHAPES[template]).humans}"
    match = _voting(template, no_show=last)
    assert _last_human(match) == last
    return match


def _answered(template: str = "classic") -> Match:
    match = _answering(template)
    match.answer("h1", "first")
    return match


def _voted(template: str = "classic") -> Match:
    match = _voting(template)
    match.vote(match.robot_ids()[0], match.seat("h1"))
    return match


def _vote_again(match: Match) -> None:
    robot = match.robot_ids()[0]
    match.vote(robot, _other_seat(match, robot))


def _vote_for_no_show(match: Match) -> None:
    match.vote(match.robot_ids()[0], match.seat(_last_human(match)))


def _no_show_votes(match: Match) -> None:
    match.vote(_last_human(match), match.state.robot_seats()[0])


def _vote_for_missing(match: Match) -> None:
    missing = match.state.robot_seats()[0]
    match.vote("h1", missing)


def _missing_robot_votes(match: Match) -> None:
    missing = match.state.robot_seats()[0]
    match.vote(match.state.seats[missing], match.seat("h1"))


def _vote_late(match: Match) -> None:
    match.at(match.state.deadline())
    match.vote("h1", _other_seat(match, "h1"))


def _vote_h1(match: Match) -> None:
    match.vote("h1", _other_seat(match, "h1"))


def _rejections(template: str) -> list[Any]:
    """Every rejected answer and vote of one template, with code and wording."""
    t = template
    cases: list[tuple[Setup, Command, str, str, str]] = [
        (
            lambda: _lobby(t),
            lambda m: m.answer("h1"),
            "wrong_phase",
            "in its lobby phase, not answering",
            "answer-in-lobby",
        ),
        (
            lambda: _lobby(t),
            lambda m: m.vote("h1", "amber"),
            "wrong_phase",
            "in its lobby phase, not voting",
            "vote-in-lobby",
        ),
        (
            lambda: _answering(t),
            _vote_h1,
            "wrong_phase",
            "in its answering phase, not voting",
            "vote-during-answering",
        ),
        (
            lambda: _voting(t),
            lambda m: m.answer("h1"),
            "wrong_phase",
            "in its voting phase, not answering",
            "answer-in-voting",
        ),
        (
            lambda: _intermission(t),
            lambda m: m.answer("h1"),
            "wrong_phase",
            "in its intermission phase, not answering",
            "answer-in-intermission",
        ),
        (
            lambda: _intermission(t),
            _vote_h1,
            "wrong_phase",
            "in its intermission phase, not voting",
            "vote-in-intermission",
        ),
        (
            lambda: _ended_after_play(t),
            lambda m: m.answer("h1"),
            "match_ended",
            "the match is over",
            "answer-after-end",
        ),
        (
            lambda: _ended_after_play(t),
            _vote_h1,
            "match_ended",
            "the match is over",
            "vote-after-end",
        ),
        (
            lambda: _answered(t),
            lambda m: m.answer("h1", "second"),
            "already_answered",
            "already answered",
            "second-answer",
        ),
        (
            lambda: _voted(t),
            _vote_again,
            "already_voted",
            "already voted",
            "second-vote",
        ),
        (
            lambda: _voting(t),
            lambda m: m.vote("h1", m.seat("h1")),
            "self_vote",
            "cannot vote for itself",
            "vote-for-self",
        ),
        (
            lambda: _voting(t),
            lambda m: m.vote("h1", "nowhere"),
            "unknown_seat",
            "'nowhere' is not a seat on this round's ballot",
            "vote-for-unknown-seat",
        ),
        (
            lambda: _voting_with_no_show(t),
            _vote_for_no_show,
            "unknown_seat",
            "is not a seat on this round's ballot",
            "vote-for-seat-without-answer",
        ),
        (
            lambda: _voting_with_no_show(t),
            _no_show_votes,
            "no_answer_no_vote",
            "did not answer",
            "vote-by-seat-without-answer",
        ),
        (
            lambda: _answering(t),
            lambda m: m.answer("h1", "x" * 281),
            "answer_too_long",
            "at most 280 characters, got 281",
            "answer-too-long",
        ),
        (
            lambda: _answering(t),
            lambda m: m.answer("h1", ""),
            "empty_answer",
            "cannot be empty",
            "answer-empty",
        ),
        (
            lambda: _answering(t),
            lambda m: m.answer("h1", " \n\t  "),
            "empty_answer",
            "cannot be empty",
            "answer-whitespace-only",
        ),
    ]
    return [
        pytest.param(setup, command, code, fragment, id=f"{template}-{case}")
        for setup, command, code, fragment, case in cases
    ]


REJECTED: list[Any] = [
    *_rejections("classic"),
    *_rejections("duo"),
    *_rejections("custom"),
    pytest.param(
        _voting_with_missing_robot,
        _vote_for_missing,
        "unknown_seat",
        "is not a seat on this round's ballot",
        id="vote-for-robot-not-on-ballot",
    ),
    pytest.param(
        _voting_with_missing_robot,
        _missing_robot_votes,
        "no_answer_no_vote",
        "did not answer",
        id="vote-by-robot-without-answer",
    ),
    pytest.param(
        lambda: started(max_answer_chars=10),
        lambda m: m.answer("h1", "x" * 11),
        "answer_too_long",
        "at most 10 characters, got 11",
        id="too-long-custom-limit",
    ),
    pytest.param(
        lambda: started(max_answer_chars=10),
        lambda m: m.answer("h1", "  " + "x" * 11 + "  "),
        "answer_too_long",
        "at most 10 characters, got 11",
        id="too-long-counted-after-trim",
    ),
    pytest.param(
        _ended,
        lambda m: m.join("h9"),
        "match_ended",
        "the match is over",
        id="join-ended",
    ),
    pytest.param(
        lambda: Match(MatchState(match_id="ghost")),
        lambda m: m.join("h1"),
        "unknown_match",
        "match 'ghost' does not exist",
        id="join-unknown-match",
    ),
    pytest.param(
        lambda: Match(MatchState(match_id="ghost")),
        lambda m: m.answer("h1"),
        "unknown_match",
        "match 'ghost' does not exist",
        id="answer-unknown-match",
    ),
    pytest.param(
        started,
        lambda m: m.join("h2"),
        "match_full",
        "every human place is taken",
        id="join-full-match",
    ),
    pytest.param(
        _duo_lobby,
        lambda m: m.join("h1"),
        "already_joined",
        "already in the match",
        id="join-twice",
    ),
    pytest.param(
        started,
        lambda m: m.at(m.state.deadline()).answer("h1"),
        "deadline_passed",
        "the answer deadline has passed",
        id="answer-at-deadline",
    ),
    pytest.param(
        voting,
        _vote_late,
        "deadline_passed",
        "the vote deadline has passed",
        id="vote-at-deadline",
    ),
    pytest.param(
        started,
        lambda m: m.answer("stranger"),
        "not_in_match",
        "no seat in the match",
        id="answer-non-member",
    ),
    pytest.param(
        voting,
        lambda m: m.vote("stranger", m.seat("h1")),
        "not_in_match",
        "no seat in the match",
        id="vote-non-member",
    ),
    pytest.param(
        lambda: new_match("duo").at(NOW + timedelta(seconds=900)),
        lambda m: m.join("h1"),
        "invite_expired",
        "the invite code has expired",
        id="join-after-invite-expired",
    ),
]


@pytest.mark.parametrize(("setup", "command", "code", "fragment"), REJECTED)
def test_command_rejected_with_code_and_clear_message(
    setup: Setup, command: Command, code: str, fragment: str
) -> None:
    match = setup()

    with pytest.raises(RuleViolation) as caught:
        command(match)

    assert type(caught.value) is RuleViolation
    assert caught.value.code == code
    assert fragment in caught.value.message
    assert str(caught.value) == f"{code}: {caught.value.message}"


@pytest.mark.parametrize(("setup", "command", "code", "fragment"), REJECTED)
def test_command_rejected_leaves_state_unchanged(
    setup: Setup, command: Command, code: str, fragment: str
) -> None:
    match = setup()
    before = copy.deepcopy(match.state)
    log_before = len(match.log)

    with pytest.raises(RuleViolation):
        command(match)

    assert match.state == before
    assert len(match.log) == log_before


def test_rejection_table_covers_every_rule_violation_code() -> None:
    source = Path(rules.__file__).read_text()
    raised = set(re.findall(r'RuleViolation\(\s*"(\w+)"', source))

    covered = {param.values[2] for param in REJECTED}

    assert raised <= covered


@pytest.mark.parametrize("template", ["classic", "duo", "custom"])
def test_vote_by_seat_without_answer_message_says_it_cannot_vote(
    template: str,
) -> None:
    match = _voting_with_no_show(template)

    with pytest.raises(RuleViolation) as caught:
        _no_show_votes(match)

    assert "cannot vote" in caught.value.message


def test_answer_too_long_names_the_limit() -> None:
    match = started(max_answer_chars=10)
    with pytest.raises(RuleViolation, match="at most 10 characters, got 11"):
        match.answer("h1", "x" * 11)


def test_answer_at_limit_is_accepted_and_trimmed() -> None:
    match = started(max_answer_chars=10)
    [event] = match.answer("h1", "  " + "y" * 10 + "\n")
    assert isinstance(event, AnswerSubmitted)
    assert event.text == "y" * 10
    assert event.seat == match.seat("h1")


def test_join_just_before_invite_expires_is_accepted() -> None:
    match = new_match("duo").at(NOW + timedelta(seconds=899.999))
    assert types(match.join("h1")) == ["player_joined"]


@pytest.mark.parametrize(
    ("setup", "command"),
    [
        pytest.param(
            started,
            lambda m: submit_answer(m.state, "h1", "again", "dup", m.ctx),
            id="answer",
        ),
        pytest.param(
            voting,
            lambda m: cast_vote(m.state, "h1", _other_seat(m, "h1"), "dup", m.ctx),
            id="vote",
        ),
    ],
)
def test_command_duplicate_id_changes_nothing(
    setup: Setup, command: Callable[[Match], list[Payload]]
) -> None:
    match = setup()
    match.apply(command(match))
    before = copy.deepcopy(match.state)
    assert command(match) == []
    assert match.state == before


def test_command_duplicate_id_is_ignored_after_phase_moved_on() -> None:
    match = started()
    occupants = list(match.state.seats.values())
    for n, occupant in enumerate(occupants):
        match.apply(submit_answer(match.state, occupant, "hi", f"c{n}", match.ctx))
    assert match.state.phase == "voting"
    # A client retrying its answer after voting opened gets the same no-op.
    assert submit_answer(match.state, occupants[0], "hi", "c0", match.ctx) == []


# --- robot results -------------------------------------------------------------


def test_robot_answer_on_time_is_submitted() -> None:
    match = started()
    seat = match.state.robot_seats()[0]
    result = robot_answer(match, seat)
    [event] = match.robot(result)
    assert event == AnswerSubmitted(
        round=1, seat=seat, text="a robot's answer", command_id=result.command_id
    )


def test_robot_vote_on_time_is_cast() -> None:
    match = voting()
    seat = match.state.robot_seats()[0]
    result = VoteGenerated(
        command_id="m-0/r1/vote",
        robot_id=match.state.seats[seat],
        seat=seat,
        round=1,
        target=match.seat("h1"),
        latency_ms=5,
        brain="offline",
    )
    [event] = match.robot(result)
    assert event == VoteCast(
        round=1, voter=seat, target=match.seat("h1"), command_id="m-0/r1/vote"
    )


@pytest.mark.parametrize(
    ("when", "overrides"),
    [
        pytest.param(timedelta(seconds=45), {}, id="at-deadline"),
        pytest.param(timedelta(seconds=300), {}, id="long-after-deadline"),
        pytest.param(timedelta(0), {"round": 2}, id="wrong-round"),
    ],
)
def test_robot_answer_late_is_recorded(
    when: timedelta, overrides: dict[str, Any]
) -> None:
    match = started()
    seat = match.state.robot_seats()[1]
    result = robot_answer(match, seat, **overrides)
    match.now = NOW + when
    before_phase = match.state.phase
    events = match.robot(result)
    assert events == [
        LateResultRecorded(
            round=result.round,
            seat=seat,
            command_id=result.command_id,
            phase="answering",
        )
    ]
    assert seat not in (match.state.current.answers if match.state.current else {})
    assert match.state.phase == before_phase
    assert result.command_id in match.state.command_ids


def test_robot_answer_arriving_during_voting_is_late() -> None:
    match = _voting_with_missing_robot()
    seat = match.state.robot_seats()[0]
    [event] = match.robot(robot_answer(match, seat))
    assert isinstance(event, LateResultRecorded)
    assert event.phase == "answering"


@pytest.mark.parametrize("late", [False, True], ids=["after-accepted", "after-late"])
def test_robot_result_duplicate_changes_nothing(late: bool) -> None:
    match = started()
    result = robot_answer(match, match.state.robot_seats()[0])
    if late:
        match.now = NOW + timedelta(seconds=60)
    assert len(match.robot(result)) == 1
    before = copy.deepcopy(match.state)
    assert accept_robot_result(match.state, result, match.ctx) == []
    assert match.state == before


def test_robot_result_for_human_seat_rejected() -> None:
    match = started()
    result = robot_answer(match, match.state.robot_seats()[0], seat=match.seat("h1"))
    with pytest.raises(RuleViolation) as caught:
        accept_robot_result(match.state, result, match.ctx)
    assert caught.value.code == "not_in_match"


def test_robot_result_after_match_ended_ignored() -> None:
    match = _ended()
    result = robot_answer(match, match.state.robot_seats()[0])
    assert accept_robot_result(match.state, result, match.ctx) == []


# --- advance -------------------------------------------------------------------


def test_advance_before_deadline_does_nothing() -> None:
    match = started()
    match.now = NOW + timedelta(seconds=44.999)
    assert match.advance() == []
    assert match.state.phase == "answering"


def test_advance_answer_deadline_opens_voting_with_missing() -> None:
    match = started()
    answering_robot, *silent = match.state.robot_seats()
    match.answer("h1")
    match.robot(robot_answer(match, answering_robot))
    deadline = NOW + timedelta(seconds=45)

    events = match.at(deadline).advance()

    [opened] = events
    assert isinstance(opened, VotingOpened)
    assert opened.round == 1
    assert sorted(opened.order) == sorted([match.seat("h1"), answering_robot])
    assert opened.missing == tuple(sorted(silent))
    assert opened.deadline == deadline + timedelta(seconds=30)
    assert match.state.phase == "voting"


def test_advance_vote_deadline_scores_round() -> None:
    match = started()
    answering_robot = match.state.robot_seats()[0]
    match.answer("h1")
    match.robot(robot_answer(match, answering_robot))
    match.at(NOW + timedelta(seconds=45)).advance()
    match.vote("h1", answering_robot)  # the robot never votes
    vote_deadline = NOW + timedelta(seconds=75)

    [scored] = match.at(vote_deadline).advance()

    assert isinstance(scored, RoundScored)
    assert scored.votes == {match.seat("h1"): answering_robot}
    # The robot drew the human's vote; the human has no other voter to dodge.
    expected = dict.fromkeys(match.state.seats, 0)
    expected[answering_robot] = 1
    assert scored.points == expected
    assert scored.totals == expected
    assert scored.next_round_at == vote_deadline + timedelta(seconds=5)
    assert match.state.phase == "intermission"

    [started_round] = match.at(scored.next_round_at).advance()
    assert isinstance(started_round, RoundStarted)
    assert started_round.round == 2
    assert started_round.prompt_id != match.state.rounds[0].prompt_id


def _play_humans_only(match: Match) -> None:
    """Humans answer and vote; robots never do; only deadlines move the match."""
    for _ in range(100):
        state = match.state
        if state.phase == "ended":
            return
        current = state.current
        assert current is not None
        if state.phase == "answering":
            for human in match.humans():
                if match.seat(human) not in current.answers:
                    match.answer(human, f"{human} says hi")
        if state.phase == "voting":
            for human in match.humans():
                seat = match.seat(human)
                if seat in current.order and seat not in current.votes:
                    match.vote(human, next(s for s in current.order if s != seat))
        if match.phase != "ended":
            match.at(state.deadline()).advance()
    raise AssertionError("the match did not end")


@pytest.mark.parametrize(
    ("template", "human_points"),
    [
        pytest.param("classic", 0, id="classic-nobody-to-vote"),
        pytest.param("duo", 5, id="duo-humans-spot-each-other"),
    ],
)
def test_advance_ends_match_whose_robots_never_answer(
    template: str, human_points: int
) -> None:
    match = started(template)
    _play_humans_only(match)

    ended = match.state.ended
    assert ended is not None and ended.reason == "completed"
    scored = [e.payload for e in match.log if isinstance(e.payload, RoundScored)]
    assert [s.round for s in scored] == [1, 2, 3, 4, 5]
    opened = [e.payload for e in match.log if isinstance(e.payload, VotingOpened)]
    assert all(set(o.missing) == set(match.state.robot_seats()) for o in opened)
    human_seats = {match.seat(h) for h in match.humans()}
    expected = {s: human_points if s in human_seats else 0 for s in match.state.seats}
    assert ended.totals == expected
    assert ended.winners == winners(expected)
    assert fold(match.state.match_id, match.log) == match.state


def test_advance_lobby_expiry_abandons_match() -> None:
    match = _duo_lobby()
    assert match.at(NOW + timedelta(seconds=899)).advance() == []

    [ended] = match.at(NOW + timedelta(seconds=900)).advance()

    assert ended == MatchEnded(reason="abandoned", totals={}, winners=(), reveal=())
    assert match.state.phase == "ended"


def test_advance_lobby_without_invite_never_expires() -> None:
    match = new_match("duo", invite=False)
    match.join("h1")
    assert match.at(NOW + timedelta(days=365)).advance() == []
    assert match.state.phase == "lobby"


def test_advance_ended_match_does_nothing() -> None:
    match = _ended()
    assert match.at(NOW + timedelta(days=1)).advance() == []


# --- scoring -------------------------------------------------------------------

CLASSIC: Kinds = {
    "amber": "human",
    "birch": "robot",
    "cobalt": "robot",
    "dune": "robot",
}
DUO: Kinds = {"amber": "human", "birch": "human", "cobalt": "robot", "dune": "robot"}
ALL = ("amber", "birch", "cobalt", "dune")


@pytest.mark.parametrize(
    ("ballot", "votes", "kinds", "expected"),
    [
        pytest.param(ALL, {}, CLASSIC, [0, 0, 0, 0], id="no-votes"),
        pytest.param(
            ALL,
            {"birch": "amber", "cobalt": "amber", "dune": "amber", "amber": "birch"},
            CLASSIC,
            # robots detect +1 each; birch draws the human's vote; human dodges none
            [0, 2, 1, 1],
            id="robots-all-spot-the-human",
        ),
        pytest.param(
            ALL,
            {"amber": "birch", "birch": "cobalt", "cobalt": "dune", "dune": "birch"},
            CLASSIC,
            # human dodges 3 voters; birch draws 2 votes; cobalt, dune draw 1
            [3, 2, 1, 1],
            id="human-blends-in",
        ),
        pytest.param(
            ALL,
            {"birch": "amber", "cobalt": "dune"},
            CLASSIC,
            # amber and dune did not vote: birch detects, dune draws, amber dodges
            # cobalt only
            [1, 1, 0, 1],
            id="no-show-voters",
        ),
        pytest.param(
            ALL,
            {"amber": "birch", "birch": "cobalt", "cobalt": "amber", "dune": "birch"},
            DUO,
            # amber: detects birch +1, dodges birch and dune +2;
            # birch: dodges cobalt +1; cobalt: detects amber +1, draws birch +1;
            # dune: detects birch +1
            [3, 1, 2, 1],
            id="two-humans",
        ),
        pytest.param(
            ("birch", "cobalt", "dune"),
            {"birch": "cobalt", "cobalt": "dune", "dune": "birch"},
            CLASSIC,
            # the human gave no answer: off the ballot, scores nothing
            [0, 1, 1, 1],
            id="human-not-on-ballot",
        ),
        pytest.param(
            ("amber", "birch", "cobalt"),
            {"amber": "birch", "birch": "cobalt", "cobalt": "birch"},
            CLASSIC,
            # dune gave no answer: scores 0, and is not a voter the human dodged
            [2, 2, 1, 0],
            id="robot-not-on-ballot",
        ),
        pytest.param(
            ALL,
            {"amber": "birch", "birch": "amber"},
            DUO,
            # both humans detect each other, neither dodges the only other voter
            [1, 1, 0, 0],
            id="humans-spot-each-other",
        ),
    ],
)
def test_score_round_table(
    ballot: tuple[str, ...],
    votes: dict[str, str],
    kinds: Kinds,
    expected: list[int],
) -> None:
    points = score_round(ballot, votes, kinds)
    assert points == dict(zip(ALL, expected, strict=True))


@pytest.mark.parametrize(
    ("totals", "expected"),
    [
        pytest.param({}, (), id="no-seats"),
        pytest.param({"amber": 3, "birch": 1, "cobalt": 2}, ("amber",), id="single"),
        pytest.param(
            {"dune": 4, "amber": 1, "birch": 4}, ("birch", "dune"), id="tie-shares-win"
        ),
        pytest.param(
            {"cobalt": 0, "amber": 0, "birch": 0},
            ("amber", "birch", "cobalt"),
            id="all-zero",
        ),
    ],
)
def test_winners_table(totals: dict[str, int], expected: tuple[str, ...]) -> None:
    assert winners(totals) == expected


# --- pending robot commands ----------------------------------------------------


def test_pending_robot_commands_answering() -> None:
    match = started()
    commands = pending_robot_commands(match.state)

    assert all(isinstance(c, GenerateAnswer) for c in commands)
    assert [c.seat for c in commands] == match.state.robot_seats()
    for command in commands:
        assert isinstance(command, GenerateAnswer)
        assert command.command_id == f"m-0/r1/{command.seat}/answer"
        assert command.robot_id == match.state.seats[command.seat]
        assert command.persona == match.state.personas[command.robot_id]
        assert command.deadline == NOW + timedelta(seconds=45)
        assert command.max_chars == 280
        assert command.history == ()
    assert pending_robot_commands(match.state) == commands


def test_pending_robot_commands_skip_robots_that_answered() -> None:
    match = started()
    first, *rest = match.state.robot_seats()
    match.robot(robot_answer(match, first))
    assert [c.seat for c in pending_robot_commands(match.state)] == rest


def test_pending_robot_commands_voting() -> None:
    match = _voting_with_missing_robot()
    missing, *on_ballot = match.state.robot_seats()
    current = match.state.current
    assert current is not None

    commands = pending_robot_commands(match.state)

    assert [c.seat for c in commands] == on_ballot
    for command in commands:
        assert isinstance(command, GenerateVote)
        assert command.command_id == f"m-0/r1/{command.seat}/vote"
        assert [a.seat for a in command.answers] == list(current.order)
        assert missing not in [a.seat for a in command.answers]
        assert command.deadline == current.vote_deadline
    assert pending_robot_commands(match.state) == commands

    robot = match.state.seats[on_ballot[0]]
    match.vote(robot, match.seat("h1"))
    assert [c.seat for c in pending_robot_commands(match.state)] == on_ballot[1:]


def test_pending_robot_commands_none_once_all_acted() -> None:
    match = voting()
    match.vote("h1", match.state.robot_seats()[0])
    for robot in match.robot_ids():
        match.vote(robot, match.seat("h1"))
    assert match.state.phase == "intermission"
    assert pending_robot_commands(match.state) == []


@pytest.mark.parametrize(
    "setup",
    [
        pytest.param(lambda: new_match("classic"), id="lobby"),
        pytest.param(_ended, id="ended"),
        pytest.param(lambda: Match(MatchState(match_id="ghost")), id="unknown"),
    ],
)
def test_pending_robot_commands_none_outside_play(setup: Setup) -> None:
    assert pending_robot_commands(setup().state) == []


def test_pending_robot_commands_carry_history() -> None:
    match = voting()
    for occupant in match.state.seats.values():
        match.vote(occupant, _other_seat(match, occupant))
    match.at(match.state.deadline()).advance()
    assert match.state.current is not None and match.state.current.number == 2

    [command, *_] = pending_robot_commands(match.state)

    [past] = command.history
    first = match.state.rounds[0]
    assert past.round == 1 and past.prompt == first.prompt
    assert [(a.seat, a.text) for a in past.answers] == [
        (s, first.answers[s]) for s in first.order
    ]


# --- full matches --------------------------------------------------------------


def _play_full_match(match: Match) -> None:
    """Everyone acts every round: robots through their pending commands."""
    for _ in range(200):
        state = match.state
        if state.phase == "ended":
            return
        current = state.current
        assert current is not None
        if state.phase == "answering":
            for human in match.humans():
                match.answer(human, f"{human}: round {current.number}")
        for command in pending_robot_commands(match.state):
            if isinstance(command, GenerateAnswer):
                text = f"{command.persona} thinks about {command.prompt_id}"
                match.robot(robot_answer(match, command.seat, text=text))
            else:
                target = next(a.seat for a in command.answers if a.seat != command.seat)
                match.robot(
                    VoteGenerated(
                        command_id=command.command_id,
                        robot_id=command.robot_id,
                        seat=command.seat,
                        round=command.round,
                        target=target,
                        latency_ms=1,
                        brain="offline",
                    )
                )
        if match.state.phase == "voting":
            current = match.state.current
            assert current is not None
            for human in match.humans():
                seat = match.seat(human)
                if seat not in current.votes:
                    match.vote(human, next(s for s in current.order if s != seat))
        if match.state.phase == "intermission":
            match.at(match.state.deadline()).advance()
    raise AssertionError("the match did not end")


@pytest.mark.parametrize("template", ["classic", "duo"])
@pytest.mark.parametrize("seed", [1, 2])
def test_full_match_reveals_everyone(template: str, seed: int) -> None:
    match = started(template, seed=seed)
    _play_full_match(match)

    state = match.state
    ended = state.ended
    assert ended is not None and ended.reason == "completed"
    assert state.phase == "ended"
    assert len(state.rounds) == 5
    assert len({r.prompt_id for r in state.rounds}) == 5
    assert all(len(r.answers) == 4 and len(r.votes) == 4 for r in state.rounds)

    totals = {s: sum(r.points[s] for r in state.rounds) for s in state.seats}
    assert ended.totals == totals
    assert ended.winners == winners(totals)
    assert [r.seat for r in ended.reveal] == sorted(state.seats)
    for revealed in ended.reveal:
        assert revealed.occupant_id == state.seats[revealed.seat]
        if revealed.occupant_id in match.humans():
            assert revealed.kind == "human"
            assert revealed.persona is None
        else:
            assert revealed.kind == "robot"
            assert revealed.persona == state.personas[revealed.occupant_id]
            assert revealed.persona in PERSONAS
    assert sum(r.kind == "human" for r in ended.reveal) == len(match.humans())

    kinds = match.kinds()
    for rnd in state.rounds:
        assert rnd.points == score_round(rnd.order, rnd.votes, kinds)
    assert fold(state.match_id, match.log) == state
    log_types = [e.type for e in match.log]
    assert log_types.count("round_started") == 5
    assert log_types[-1] == "match_ended"
    assert only([e.payload for e in match.log], RobotsAssigned)
    assert [e.payload for e in match.log if isinstance(e.payload, PlayerJoined)]


def test_match_start_without_personas_fails_clearly() -> None:
    from game import GameError

    with pytest.raises(GameError, match="no robot personas"):
        rules._pick_personas((), 1, random.Random(0))


# --- prompt bank ---------------------------------------------------------------


def test_prompt_bank_shipped_bank_is_large_and_unique() -> None:
    bank = PromptBank.load(PROMPTS_FILE)

    assert len(bank.prompts) >= MIN_PROMPTS
    assert len({p.id for p in bank.prompts}) == len(bank.prompts)
    assert len({p.text.casefold() for p in bank.prompts}) == len(bank.prompts)


def _bank_entries(count: int) -> list[dict[str, Any]]:
    return [
        {"id": f"p{n:03d}", "text": f"Prompt number {n}?", "topic": ["word"]}
        for n in range(1, count + 1)
    ]


def _with_duplicate_id() -> list[dict[str, Any]]:
    entries = _bank_entries(MIN_PROMPTS)
    entries[7]["id"] = "p003"
    return entries


def _with_duplicate_text() -> list[dict[str, Any]]:
    entries = _bank_entries(MIN_PROMPTS)
    entries[9]["text"] = "  prompt NUMBER   4?"
    return entries


@pytest.mark.parametrize(
    ("entries", "fragments"),
    [
        pytest.param(
            _bank_entries(MIN_PROMPTS - 1),
            ["has 59 prompts", f"expected at least {MIN_PROMPTS}", "add prompts"],
            id="too-few",
        ),
        pytest.param(
            _with_duplicate_id(),
            ["prompt ids ['p003'] appear more than once", "unique ids"],
            id="duplicate-id",
        ),
        pytest.param(
            _with_duplicate_text(),
            ["prompt texts ['prompt number 4?'] appear more than once"],
            id="duplicate-text",
        ),
        pytest.param(
            _bank_entries(3) * 2,
            ["has 6 prompts", "prompt ids", "prompt texts"],
            id="every-problem-at-once",
        ),
    ],
)
def test_prompt_bank_refuses_invalid_bank(
    tmp_path: Path, entries: list[dict[str, Any]], fragments: list[str]
) -> None:
    path = tmp_path / "prompts.yaml"
    path.write_text(yaml.safe_dump({"prompts": entries}))

    with pytest.raises(GameError) as caught:
        PromptBank.load(path)

    message = str(caught.value)
    assert message.startswith(f"cannot load prompts from {path}: ")
    for fragment in fragments:
        assert fragment in message
