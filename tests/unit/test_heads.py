"""The pool reads a command's head; bad heads fail as the full decode words them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events import EventDecodeError, decode, encode, new_event
from events.heads import decode_command_head
from events.match_events import PlayerJoined
from events.robot_events import GenerateAnswer, GenerateVote, SeatAnswer

DEADLINE = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def answer_record() -> bytes:
    command = GenerateAnswer(
        command_id="cmd-1",
        robot_id="robot-1",
        persona="curious-student",
        seat="amber",
        round=2,
        prompt_id="p002",
        prompt="What would you take to a desert island?",
        max_chars=280,
        deadline=DEADLINE,
    )
    envelope = new_event(
        command, match_id="m-1", producer="engine", correlation_id=uuid.uuid4()
    )
    return encode(envelope)


def vote_record() -> bytes:
    command = GenerateVote(
        command_id="cmd-2",
        robot_id="robot-2",
        persona="skeptical-scientist",
        seat="cobalt",
        round=5,
        prompt="What would you take to a desert island?",
        answers=(SeatAnswer(seat="amber", text="a boat"),),
        deadline=DEADLINE + timedelta(seconds=5),
    )
    return encode(new_event(command, match_id="m-2", producer="engine"))


@pytest.mark.parametrize("record", [answer_record(), vote_record()])
def test_head_carries_what_the_full_decode_reads(record: bytes) -> None:
    head, whole = decode_command_head(record), decode(record)

    assert (head.event_id, head.match_id, head.correlation_id) == (
        whole.event_id,
        whole.match_id,
        whole.correlation_id,
    )
    assert head.key == whole.key
    full = whole.payload.model_dump()
    assert head.payload.model_dump() == {k: full[k] for k in head.payload.model_dump()}


def edited(**changes: Any) -> bytes:
    raw = json.loads(answer_record())
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = raw
        for part in parents:
            target = target[part]
        target[last] = value
    return json.dumps(raw).encode()


@pytest.mark.parametrize(
    ("record", "field", "expected"),
    [
        pytest.param(b'{"poison": true', "<record>", "valid JSON", id="not-json"),
        pytest.param(None, "<record>", "a JSON object", id="empty"),
        pytest.param(
            edited(schema_version="2.0"), "schema_version", "major", id="major"
        ),
        pytest.param(
            edited(payload__deadline="2030-01-01T12:00:00+02:00"),
            "payload.deadline",
            "UTC",
            id="not-utc",
        ),
        pytest.param(edited(payload__round=0), "payload.round", "1", id="round-0"),
        pytest.param(
            edited(payload__command_id=""), "payload.command_id", "", id="empty-id"
        ),
        pytest.param(
            encode(new_event(PlayerJoined(player_id="p"), match_id="m", producer="e")),
            "payload.type",
            "generate_answer or generate_vote",
            id="not-a-command",
        ),
    ],
)
def test_bad_head_is_refused_with_the_codecs_words(
    record: bytes | None, field: str, expected: str
) -> None:
    with pytest.raises(EventDecodeError) as raised:
        decode_command_head(record)

    assert raised.value.field == field
    assert expected in raised.value.expected


def test_head_skips_fields_the_worker_checks() -> None:
    # A field beyond the head is the worker's to refuse, not the pool's.
    record = edited(payload__max_chars=0)

    assert decode_command_head(record).payload.command_id == "cmd-1"
    with pytest.raises(EventDecodeError, match="max_chars"):
        decode(record)
