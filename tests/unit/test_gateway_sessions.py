"""A player's socket: resuming at a sequence number, and engine errors as frames.

The engine is a stand-in answering like a Ray actor handle, so no Ray runs;
errors it raises are wrapped the way Ray wraps an actor's errors.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from ray.exceptions import RayTaskError
from starlette.websockets import WebSocket

from actors.errors import UnknownMatch
from configs import AppSettings
from events import DeliveryError, Envelope, Payload, new_event
from game import (
    Context,
    MatchState,
    PromptBank,
    TemplateBook,
    TemplateError,
    advance,
    create_match,
    evolve,
    join_match,
)
from serve_app.gateway import GatewayCore, Refused, token_hash
from serve_app.sessions import Session
from tests.unit.remote import Remote

START = datetime(2030, 1, 1, tzinfo=UTC)
MATCH_ID = "m-resume"
TOKEN = "secret-token"


def abandoned_match() -> list[Envelope]:
    """A duo match whose second player never came: three public events."""
    state = MatchState(MATCH_ID)
    ctx = Context(START, random.Random(1), PromptBank.load(), ("curious_student",))
    created = create_match(TemplateBook.load().resolve("duo"), START, "K7M2QX")
    joined = join_match(state_after(state, created), "p-first", token_hash(TOKEN), ctx)
    state_after(state, joined)
    expired = advance(state, replace(ctx, now=START + timedelta(days=1)))
    state_after(state, expired)
    assert state.phase == "ended"
    return [
        new_event(p, match_id=MATCH_ID, producer="test")
        for p in [*created, *joined, *expired]
    ]


def state_after(state: MatchState, payloads: list[Payload]) -> MatchState:
    for payload in payloads:
        evolve(state, payload)
    return state


def from_actor(cause: BaseException) -> BaseException:
    """What awaiting an actor call raises when the actor raised ``cause``."""
    error = RayTaskError("method", "Traceback: ...", cause, "ray::E", 1, "10.0.0.1")
    return cast(BaseException, error.as_instanceof_cause())


class StandInEngine:
    """Holds one ended match; every command fails as a broken backend would."""

    def __init__(self, log: list[Envelope]) -> None:
        self.log = log
        self.events_since = Remote(self._events_since)
        self.create_match = Remote(self._create_match)
        self.act_many = Remote(self._act_many)

    async def _events_since(
        self, match_id: str, after: int, _wait_s: float
    ) -> list[Envelope]:
        if match_id != MATCH_ID:
            raise from_actor(UnknownMatch(match_id))
        return self.log[after:]

    async def _create_match(self, *_args: Any, **_kwargs: Any) -> Any:
        raise from_actor(TemplateError("invalid timing override: rounds is 0"))

    async def _act_many(self, actions: list[tuple[str, ...]]) -> list[Any]:
        # An engine hands back each action's error as a value.
        return [DeliveryError("match-events", MATCH_ID, "broker down") for _ in actions]


class StandInCore(GatewayCore):
    """The real gateway with every engine call going to one stand-in."""

    def __init__(self, engine: StandInEngine) -> None:
        super().__init__(AppSettings())
        self.stand_in = engine

    def engine(self, index: int) -> Any:
        return self.stand_in


class Socket:
    """A WebSocket the test talks through: frames in, frames out."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.closed_with: int | None = None

    async def accept(self) -> None:
        pass

    async def receive(self) -> dict[str, Any]:
        return await self.inbox.get()

    async def send_text(self, text: str) -> None:
        self.outbox.put_nowait(json.loads(text))

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.closed_with = code

    def say(self, frame: dict[str, Any]) -> None:
        self.inbox.put_nowait({"type": "websocket.receive", "text": json.dumps(frame)})

    def hang_up(self) -> None:
        self.inbox.put_nowait({"type": "websocket.disconnect"})

    async def next(self, kind: str) -> dict[str, Any]:
        while True:
            frame = await asyncio.wait_for(self.outbox.get(), timeout=2.0)
            if frame["type"] == kind:
                return frame


def open_session() -> tuple[Session, Socket]:
    socket = Socket()
    core = StandInCore(StandInEngine(abandoned_match()))
    return Session(cast(WebSocket, socket), core), socket


def resume(last_seq: int, match_id: str = MATCH_ID) -> dict[str, Any]:
    return {
        "type": "resume",
        "match_id": match_id,
        "token": TOKEN,
        "last_seq": last_seq,
    }


@pytest.mark.parametrize(
    "last_seq", [pytest.param(4, id="one"), pytest.param(99, id="far")]
)
async def test_session_resume_refuses_last_seq_ahead_of_the_match(
    last_seq: int,
) -> None:
    session, _ = open_session()

    with pytest.raises(Refused) as refused:
        await session.handle(resume(last_seq))

    assert refused.value.code == "bad_seq"
    assert f"last_seq {last_seq} " in refused.value.message
    assert "at seq 3" in refused.value.message


@pytest.mark.parametrize(
    ("last_seq", "sent"),
    [
        pytest.param(0, [1, 2, 3], id="from-start"),
        pytest.param(1, [2, 3], id="behind"),
        pytest.param(-5, [1, 2, 3], id="negative"),
    ],
)
async def test_session_resume_sends_events_after_last_seq(
    last_seq: int, sent: list[int]
) -> None:
    session, socket = open_session()

    await session.handle(resume(last_seq))
    update = await socket.next("update")

    assert update["seq"] == 3
    assert [e["seq"] for e in update["events"]] == sent


async def test_session_resume_at_the_current_seq_is_accepted() -> None:
    session, _ = open_session()

    await session.handle(resume(3))

    assert session.sent_seq == 3 and session.seat is not None


async def test_session_answers_engine_errors_with_error_frames() -> None:
    session, socket = open_session()
    serving = asyncio.create_task(session.run())

    socket.say({"type": "create", "template": "classic"})
    bad_template = await socket.next("error")
    socket.say(resume(0, match_id="m-gone"))
    unknown = await socket.next("error")
    socket.say(resume(0))
    await socket.next("update")
    socket.say({"type": "answer", "token": TOKEN, "text": "tea", "command_id": "a1"})
    unavailable = await socket.next("error")
    socket.hang_up()
    await asyncio.wait_for(serving, timeout=2.0)

    assert bad_template["code"] == "bad_template"
    assert "rounds is 0" in bad_template["message"]
    assert unknown["code"] == "unknown_match"
    assert "'m-gone'" in unknown["message"]
    assert unavailable["code"] == "unavailable"
    assert "command_id" in unavailable["message"]
    assert socket.closed_with is None
