"""Encoding, decoding and the versioning rule of event envelopes."""

from __future__ import annotations

import json
import types
import typing
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import AwareDatetime, BaseModel
from pydantic.fields import FieldInfo

from events import Envelope, EventDecodeError, Payload, decode, encode, new_event
from events.match_events import (
    AnswerSubmitted,
    AssignedRobot,
    LateResultRecorded,
    MatchCreated,
    MatchEnded,
    MatchStarted,
    PlayerJoined,
    RevealedSeat,
    RobotsAssigned,
    RoundScored,
    RoundStarted,
    SeatAssignment,
    VoteCast,
    VotingOpened,
)
from events.robot_events import (
    POOL_PAYLOADS,
    AnswerGenerated,
    GenerateAnswer,
    GenerateVote,
    GenerationFailed,
    PastRound,
    PoolScaled,
    RobotStarted,
    RobotStopped,
    SeatAnswer,
    VoteGenerated,
)

NOW = datetime(2030, 5, 17, 12, 30, 15, 123456, tzinfo=UTC)
DEADLINE = NOW + timedelta(seconds=45)
MATCH_ID = "match-7f3a"
HISTORY = (
    PastRound(
        round=1,
        prompt="Describe your perfect sandwich in one sentence.",
        answers=(
            SeatAnswer(seat="amber", text="Rye, pastrami, too much mustard."),
            SeatAnswer(seat="cobalt", text="grilled cheese, no debate"),
        ),
    ),
)

PAYLOADS: list[Payload] = [
    MatchCreated(
        template="classic",
        humans=1,
        robots=3,
        rounds=5,
        answer_timeout_s=45.0,
        vote_timeout_s=30.0,
        intermission_s=5.0,
        max_answer_chars=280,
        invite_code="K7QX2M",
        invite_expires_at=NOW + timedelta(minutes=15),
    ),
    PlayerJoined(player_id="player-1", token_sha256="ab" * 32),
    RobotsAssigned(
        robots=(
            AssignedRobot(robot_id="robot-00000000beef", persona="curious_student"),
            AssignedRobot(robot_id="robot-00000000cafe", persona="creative_artist"),
        )
    ),
    MatchStarted(
        seats=(
            SeatAssignment(seat="amber", occupant_id="robot-00000000beef"),
            SeatAssignment(seat="cobalt", occupant_id="player-1"),
            SeatAssignment(seat="fern", occupant_id="robot-00000000cafe"),
        )
    ),
    RoundStarted(
        round=2,
        prompt_id="p002",
        prompt="Describe your perfect sandwich in one sentence.",
        deadline=DEADLINE,
    ),
    AnswerSubmitted(
        round=2, seat="cobalt", text='Toast with "jam" 🍓\nand butter', command_id="c-1"
    ),
    VotingOpened(
        round=2, order=("fern", "amber"), missing=("cobalt",), deadline=DEADLINE
    ),
    VoteCast(round=2, voter="amber", target="fern", command_id="c-2"),
    RoundScored(
        round=2,
        votes={"amber": "fern", "fern": "amber"},
        points={"amber": 1, "cobalt": 0, "fern": 1},
        totals={"amber": 3, "cobalt": 2, "fern": 1},
        next_round_at=NOW + timedelta(seconds=5),
    ),
    LateResultRecorded(
        round=2, seat="fern", command_id=f"{MATCH_ID}/r2/fern/vote", phase="voting"
    ),
    MatchEnded(
        reason="completed",
        totals={"amber": 3, "cobalt": 3, "fern": 1},
        winners=("amber", "cobalt"),
        reveal=(
            RevealedSeat(
                seat="amber",
                kind="robot",
                occupant_id="robot-00000000beef",
                persona="curious_student",
            ),
            RevealedSeat(seat="cobalt", kind="human", occupant_id="player-1"),
        ),
    ),
    GenerateAnswer(
        command_id=f"{MATCH_ID}/r2/amber/answer",
        robot_id="robot-00000000beef",
        persona="curious_student",
        seat="amber",
        round=2,
        prompt_id="p002",
        prompt="Describe your perfect sandwich in one sentence.",
        max_chars=280,
        deadline=DEADLINE,
        history=HISTORY,
    ),
    GenerateVote(
        command_id=f"{MATCH_ID}/r2/amber/vote",
        robot_id="robot-00000000beef",
        persona="curious_student",
        seat="amber",
        round=2,
        prompt="Describe your perfect sandwich in one sentence.",
        answers=(SeatAnswer(seat="fern", text="a tall club"),),
        deadline=DEADLINE,
        history=HISTORY,
    ),
    AnswerGenerated(
        command_id=f"{MATCH_ID}/r2/amber/answer",
        robot_id="robot-00000000beef",
        seat="amber",
        round=2,
        text="Sourdough, tomato, basil.",
        latency_ms=812.5,
        brain="offline",
    ),
    VoteGenerated(
        command_id=f"{MATCH_ID}/r2/amber/vote",
        robot_id="robot-00000000beef",
        seat="amber",
        round=2,
        target="cobalt",
        latency_ms=95.0,
        brain="bedrock",
        fallback=True,
    ),
    GenerationFailed(
        command_id=f"{MATCH_ID}/r2/fern/vote",
        robot_id="robot-00000000cafe",
        seat="fern",
        round=2,
        reason="model timed out",
        latency_ms=30000.0,
        brain="bedrock",
    ),
    RobotStarted(
        persona="curious_student", robot_id="robot-00000000beef", node_id="node-a"
    ),
    RobotStopped(
        persona="curious_student", robot_id="robot-00000000beef", reason="scale down"
    ),
    PoolScaled(
        persona="creative_artist",
        workers_before=2,
        workers_after=4,
        reason="lag above target",
        lag=37,
        in_flight=6,
    ),
]


def _union_types() -> set[str]:
    union = typing.get_args(Payload)[0]
    return {model.model_fields["type"].default for model in typing.get_args(union)}


def _envelope(payload: Payload) -> Envelope:
    match_id = None if isinstance(payload, POOL_PAYLOADS) else MATCH_ID
    return new_event(
        payload,
        match_id=match_id,
        producer="unit-test",
        occurred_at=NOW,
        causation_id=uuid.UUID(int=1),
        correlation_id=uuid.UUID(int=2),
    )


def test_codec_examples_cover_every_payload_type() -> None:
    assert len(_union_types()) == 19
    assert {p.type for p in PAYLOADS} == _union_types()


@pytest.mark.parametrize("payload", [pytest.param(p, id=p.type) for p in PAYLOADS])
def test_codec_round_trips_every_payload(payload: Payload) -> None:
    event = _envelope(payload)
    data = encode(event)
    assert isinstance(data, bytes)
    assert decode(data) == event
    assert decode(data.decode()) == event


# --- invalid records ---------------------------------------------------------


def _valid_record() -> dict[str, Any]:
    event = new_event(
        RoundStarted(
            round=1, prompt_id="p001", prompt="What is for breakfast?", deadline=NOW
        ),
        match_id=MATCH_ID,
        producer="unit-test",
        occurred_at=NOW,
    )
    record: dict[str, Any] = json.loads(encode(event))
    return record


def _edit(*changes: Callable[[dict[str, Any]], None]) -> bytes:
    record = _valid_record()
    for change in changes:
        change(record)
    return json.dumps(record).encode()


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(record: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for part in parents:
            record = record[part]
        record[last] = value

    return change


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def change(record: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for part in parents:
            record = record[part]
        del record[last]

    return change


def _unknown_type(record: dict[str, Any]) -> None:
    record["type"] = "match_paused"
    record["payload"]["type"] = "match_paused"


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        pytest.param(b"{not json", "<record>", "not valid JSON", id="not-json"),
        pytest.param(b"\xff\xfe\x00", "<record>", "not valid JSON", id="not-utf8"),
        pytest.param(b"[1, 2, 3]", "<record>", "a JSON object", id="json-array"),
        pytest.param(b'"text"', "<record>", "a JSON object", id="json-string"),
        pytest.param(None, "<record>", "empty value", id="none"),
        pytest.param(
            _edit(_unknown_type), "payload.type", "one of", id="unknown-payload-type"
        ),
        pytest.param(
            _edit(_set("schema_version", "2.0")),
            "schema_version",
            "major version 1",
            id="major-2.0",
        ),
        pytest.param(
            _edit(_set("schema_version", "0.9")),
            "schema_version",
            "major version 1",
            id="major-0.9",
        ),
        pytest.param(
            _edit(_set("schema_version", "2.0"), _set("payload.mood", "sunny")),
            "schema_version",
            "major version 1",
            id="major-2.0-with-new-field",
        ),
        pytest.param(
            _edit(_set("schema_version", "one")),
            "schema_version",
            "MAJOR.MINOR",
            id="malformed-version",
        ),
        pytest.param(
            _edit(_set("schema_version", 1)),
            "schema_version",
            "MAJOR.MINOR",
            id="version-not-a-string",
        ),
        pytest.param(
            _edit(_delete("schema_version")),
            "schema_version",
            "MAJOR.MINOR",
            id="version-missing",
        ),
        pytest.param(
            _edit(_delete("payload.prompt")),
            "payload.prompt",
            "field required",
            id="missing-payload-field",
        ),
        pytest.param(
            _edit(_set("payload.round", "1")),
            "payload.round",
            "valid integer",
            id="round-as-string",
        ),
        pytest.param(
            _edit(_set("payload.round", 0)),
            "payload.round",
            "greater than or equal to 1",
            id="round-zero",
        ),
        pytest.param(
            _edit(_set("payload.mood", "sunny")),
            "payload.mood",
            "extra inputs are not permitted",
            id="extra-payload-field-same-minor",
        ),
        pytest.param(
            _edit(_set("trace_id", "abc")),
            "trace_id",
            "extra inputs are not permitted",
            id="extra-envelope-field-same-minor",
        ),
        pytest.param(
            _edit(_set("occurred_at", "2030-05-17T14:30:15+02:00")),
            "occurred_at",
            "utc",
            id="non-utc-occurred-at",
        ),
        pytest.param(
            _edit(_set("occurred_at", "2030-05-17T12:30:15")),
            "occurred_at",
            "timezone",
            id="naive-occurred-at",
        ),
        pytest.param(
            _edit(_set("payload.deadline", "2030-05-17T07:30:15-05:00")),
            "payload.deadline",
            "utc",
            id="non-utc-payload-deadline",
        ),
        pytest.param(
            _edit(_set("type", "player_joined")),
            "type",
            "'round_started', the type of its payload",
            id="envelope-type-differs",
        ),
        pytest.param(
            _edit(_set("match_id", None)),
            "match_id",
            "a round_started record needs a match_id",
            id="match-id-null",
        ),
        pytest.param(
            _edit(_delete("match_id")),
            "match_id",
            "field required",
            id="match-id-absent",
        ),
        pytest.param(
            _edit(_set("event_id", "not-a-uuid")),
            "event_id",
            "uuid",
            id="bad-event-id",
        ),
    ],
)
def test_decode_rejects_invalid_record(
    data: bytes | None, field: str, fragment: str
) -> None:
    with pytest.raises(EventDecodeError) as caught:
        decode(data)
    error = caught.value
    assert error.field == field
    assert fragment.lower() in error.expected.lower()
    assert fragment.lower() in str(error).lower()
    assert str(error).startswith(f"cannot decode event: field {field!r}")


def test_decode_mismatch_error_names_field_and_value() -> None:
    with pytest.raises(EventDecodeError) as caught:
        decode(_edit(_set("type", "player_joined")))

    assert str(caught.value) == (
        "cannot decode event: field 'type' has value 'player_joined'; "
        "expected 'round_started', the type of its payload"
    )


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _record_with_prompt(prompt_json: str) -> str:
    record = json.dumps(_valid_record())
    return record.replace('"What is for breakfast?"', prompt_json)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(_nested(5000), "nested too deeply", id="array-5000"),
        pytest.param(
            '{"a": ' * 5000 + "1" + "}" * 5000, "nested too deeply", id="object-5000"
        ),
        pytest.param(
            _nested(5000).encode(), "nested too deeply", id="array-5000-bytes"
        ),
        pytest.param(_nested(100_000), "nested too deeply", id="array-100000"),
        pytest.param(
            _record_with_prompt(_nested(5000)),
            "nested too deeply",
            id="record-field-5000",
        ),
        pytest.param(
            _record_with_prompt(_nested(300)),
            "recursion limit exceeded",
            id="record-field-300",
        ),
    ],
)
def test_decode_refuses_deeply_nested_json_with_decode_error(
    data: str | bytes, reason: str
) -> None:
    with pytest.raises(EventDecodeError) as caught:
        decode(data)

    error = caught.value
    assert error.field == "<record>"
    assert error.expected.startswith("valid JSON; the record is not valid JSON: ")
    assert reason in error.expected
    assert str(error).startswith("cannot decode event: field '<record>' has value ")
    assert len(str(error)) < 250


def test_decode_refuses_invalid_json_escape_without_odd_wording() -> None:
    with pytest.raises(EventDecodeError) as caught:
        decode(_record_with_prompt('"tea \\ud800"'))

    assert "expected invalid json" not in str(caught.value).lower()
    assert "the record is not valid JSON: " in str(caught.value)


def test_decode_turns_unexpected_failure_into_decode_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(_data: bytes | str) -> Envelope:
        raise RuntimeError("parser bug")

    monkeypatch.setattr(Envelope, "model_validate_json", explode)

    with pytest.raises(EventDecodeError) as caught:
        decode(encode(_envelope(PAYLOADS[0])))

    assert caught.value.field == "<record>"
    assert caught.value.expected == (
        "a record the codec can decode; decoding failed with RuntimeError: parser bug"
    )
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_decode_error_message_truncates_long_values() -> None:
    with pytest.raises(EventDecodeError) as caught:
        decode(json.dumps(list(range(500))))
    assert "..." in str(caught.value)
    assert len(str(caught.value)) < 250


# --- versioning ----------------------------------------------------------------


def test_decode_newer_minor_drops_unknown_fields() -> None:
    original = new_event(
        VoteCast(round=3, voter="amber", target="fern", command_id="c-9"),
        match_id=MATCH_ID,
        producer="unit-test",
        occurred_at=NOW,
    )
    record: dict[str, Any] = json.loads(encode(original))
    record["schema_version"] = "1.7"
    record["payload"]["confidence"] = 0.8
    record["trace"] = {"span": "abc"}

    decoded = decode(json.dumps(record))

    assert decoded.payload == original.payload
    assert "confidence" not in decoded.payload.model_dump()
    assert "trace" not in decoded.model_dump()
    assert decoded.event_id == original.event_id
    assert decoded.schema_version == "1.7"
    assert decoded.model_copy(update={"schema_version": "1.0"}) == original


def test_decode_newer_minor_still_validates_known_fields() -> None:
    record = _valid_record()
    record["schema_version"] = "1.7"
    record["payload"]["round"] = "one"
    record["trace"] = "x"
    with pytest.raises(EventDecodeError) as caught:
        decode(json.dumps(record))
    assert caught.value.field == "payload.round"


def test_decode_newer_minor_refuses_new_payload_type() -> None:
    record = _valid_record()
    record["schema_version"] = "1.7"
    _unknown_type(record)
    with pytest.raises(EventDecodeError) as caught:
        decode(json.dumps(record))
    assert caught.value.field == "payload.type"


# --- keys ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [pytest.param(p, id=p.type) for p in PAYLOADS if isinstance(p, POOL_PAYLOADS)],
)
def test_envelope_pool_event_is_keyed_by_persona(payload: Payload) -> None:
    event = new_event(payload, match_id=None, producer="pool")
    assert event.match_id is None
    assert isinstance(payload, POOL_PAYLOADS)
    assert event.key == payload.persona
    assert decode(encode(event)).key == payload.persona


@pytest.mark.parametrize(
    "payload",
    [pytest.param(p, id=p.type) for p in PAYLOADS if not isinstance(p, POOL_PAYLOADS)],
)
def test_envelope_match_event_is_keyed_by_match_id(payload: Payload) -> None:
    event = new_event(payload, match_id=MATCH_ID, producer="game")
    assert event.key == MATCH_ID
    assert decode(encode(event)).key == MATCH_ID


@pytest.mark.parametrize(
    "payload",
    [pytest.param(p, id=p.type) for p in PAYLOADS if not isinstance(p, POOL_PAYLOADS)],
)
def test_envelope_match_event_needs_match_id(payload: Payload) -> None:
    with pytest.raises(ValueError, match="needs a match_id"):
        new_event(payload, match_id=None, producer="game")


def test_new_event_stamps_version_time_and_fresh_id() -> None:
    payload = PlayerJoined(player_id="p1")
    first = new_event(payload, match_id=MATCH_ID, producer="game")
    second = new_event(payload, match_id=MATCH_ID, producer="game")
    assert first.schema_version == "1.0"
    assert first.type == "player_joined"
    assert first.occurred_at.utcoffset() == timedelta(0)
    assert first.event_id != second.event_id


# --- hypothesis round trips ----------------------------------------------------

texts = st.text()  # any unicode scalar values: emoji, quotes, newlines, NULs
identifiers = st.text(min_size=1, max_size=128)
utc_datetimes = st.datetimes(timezones=st.just(UTC))
MAX_ITEMS = 4


def _payload_models() -> list[type[BaseModel]]:
    """Every model of the payload union, read from the union itself."""
    union = typing.get_args(Payload)[0]
    return list(typing.get_args(union))


def _bounded(kind: type, constraints: list[Any]) -> st.SearchStrategy[Any]:
    bounds: dict[str, Any] = {}
    for constraint in constraints:
        for name in ("ge", "gt", "le", "lt", "min_length", "max_length"):
            if getattr(constraint, name, None) is not None:
                bounds[name] = getattr(constraint, name)
    if kind is str:
        return st.text(
            min_size=bounds.get("min_length", 0), max_size=bounds.get("max_length")
        )
    low = bounds.get("ge", bounds.get("gt"))
    high = bounds.get("le", bounds.get("lt"))
    if kind is int:
        low = low + 1 if "gt" in bounds else low
        high = high - 1 if "lt" in bounds else high
        return st.integers(min_value=low, max_value=high)
    return st.floats(
        min_value=low,
        max_value=high,
        exclude_min="gt" in bounds,
        exclude_max="lt" in bounds,
        allow_nan=False,
        allow_infinity=False,
    )


def _strategy(annotation: Any, constraints: list[Any]) -> st.SearchStrategy[Any]:
    """Values that fit a schema field's annotation and its pydantic constraints."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        extra = list(constraints)
        for item in args[1:]:
            extra.extend(item.metadata if isinstance(item, FieldInfo) else [item])
        return _strategy(args[0], extra)
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin in (types.UnionType, typing.Union):
        return st.one_of([_strategy(arg, constraints) for arg in args])
    if origin is tuple:
        assert args[1:] == (Ellipsis,), f"only tuple[X, ...] is handled: {annotation}"
        items = _strategy(args[0], [])
        return st.lists(items, max_size=MAX_ITEMS).map(tuple)
    if origin is dict:
        keys, values = _strategy(args[0], []), _strategy(args[1], [])
        return st.dictionaries(keys, values, max_size=MAX_ITEMS)
    if annotation is type(None):
        return st.none()
    if annotation is bool:
        return st.booleans()
    if annotation in (str, int, float):
        return _bounded(annotation, constraints)
    if annotation in (datetime, AwareDatetime):
        return utc_datetimes  # every timestamp of the schemas is UTC
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _model_strategy(annotation)
    raise TypeError(
        f"no strategy for field type {annotation!r}; teach _strategy in "
        "tests/unit/test_codec.py to generate it"
    )


def _model_strategy(model: type[BaseModel]) -> st.SearchStrategy[Any]:
    fields = {
        name: _strategy(info.annotation, list(info.metadata))
        for name, info in model.model_fields.items()
    }
    return st.builds(model, **fields)


def _wrapped(model: type[BaseModel]) -> st.SearchStrategy[Envelope]:
    pool = model in POOL_PAYLOADS
    return st.builds(
        new_event,
        _model_strategy(model),
        match_id=st.none() | identifiers if pool else identifiers,
        producer=texts,
        causation_id=st.none() | st.uuids(),
        correlation_id=st.none() | st.uuids(),
        occurred_at=utc_datetimes,
        event_id=st.uuids(),
    )


def test_codec_generated_models_are_the_whole_union() -> None:
    models = _payload_models()

    names = {model.model_fields["type"].default for model in models}

    assert names == _union_types()
    assert len(models) == len(names)


@pytest.mark.parametrize(
    "model",
    [pytest.param(m, id=m.model_fields["type"].default) for m in _payload_models()],
)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_codec_round_trips_generated_events(
    model: type[BaseModel], data: st.DataObject
) -> None:
    event = data.draw(_wrapped(model))

    encoded = encode(event)

    assert decode(encoded) == event
    assert decode(encoded.decode("utf-8")) == event
