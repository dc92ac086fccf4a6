"""One player's WebSocket: frames in, match updates out."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from actors._metrics import gateway_metrics
from serve_app.feeds import MatchFeed
from serve_app.gateway import GatewayCore, Refused, Seat, json_object, refusal_for
from serve_app.views import match_view, public_event

logger = logging.getLogger(__name__)

CLOSE_TOO_BIG = 1009
CLOSE_POLICY = 1008

# serve.flood_close_after refused frames within this window close a socket;
# spread over longer, they only earn rate_limited errors. A module constant
# until ServeSettings grows a field for it.
FLOOD_WINDOW_S = 10.0
# How long a resume waits for this replica's feed to reach the client's
# last_seq, which another replica may have sent, before refusing it.
_CATCH_UP_S = 1.0

Clock = Callable[[], float]


class FrameLimiter:
    """Frames a connection may send: a token bucket without debt."""

    def __init__(
        self, rate_per_s: float, burst: int, clock: Clock = time.monotonic
    ) -> None:
        self.rate_per_s, self.burst = rate_per_s, burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()

    def allow(self) -> bool:
        """Take a token if there is one."""
        now = self._clock()
        self._tokens = min(
            self.burst, self._tokens + (now - self._updated) * self.rate_per_s
        )
        self._updated = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class FloodWatch:
    """Tells a flood from bursts: ``limit`` refused frames within ``window_s``."""

    def __init__(
        self, limit: int, window_s: float, clock: Clock = time.monotonic
    ) -> None:
        self.limit, self.window_s = limit, window_s
        self._clock = clock
        self._refused: deque[float] = deque(maxlen=limit)

    def flooding(self) -> bool:
        """Count one refused frame; whether the last ``limit`` fit in the window."""
        now = self._clock()
        self._refused.append(now)
        full = len(self._refused) == self.limit
        return full and now - self._refused[0] < self.window_s


class Session:
    """Serves one socket: a player joins or resumes, acts, and is kept up to date."""

    def __init__(self, websocket: WebSocket, core: GatewayCore) -> None:
        self.ws = websocket
        self.core = core
        serve = core.settings.serve
        self.limiter = FrameLimiter(serve.frames_per_s, serve.frame_burst)
        self.max_frame_bytes = serve.max_frame_bytes
        self.seat: Seat | None = None
        self.feed: MatchFeed | None = None
        self.flood = FloodWatch(serve.flood_close_after, FLOOD_WINDOW_S)
        self.sent_seq = 0
        self._send_lock = asyncio.Lock()

    async def run(self) -> None:
        """Accept the socket and serve it until the client goes away."""
        await self.ws.accept()
        self.core.open_sockets += 1
        gateway_metrics().open_sockets.set(self.core.open_sockets)
        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if not await self._admit(message):
                    return
        except WebSocketDisconnect:
            return
        finally:
            self.core.open_sockets -= 1
            gateway_metrics().open_sockets.set(self.core.open_sockets)
            if self.feed is not None:
                self.feed.unsubscribe(self.push)

    async def _admit(self, message: MutableMapping[str, Any]) -> bool:
        raw = message.get("text")
        if raw is None:
            raw = (message.get("bytes") or b"").decode("utf-8", "replace")
        if len(raw.encode()) > self.max_frame_bytes:
            await self.ws.close(
                CLOSE_TOO_BIG, f"frames are at most {self.max_frame_bytes} bytes"
            )
            return False
        if not self.limiter.allow():
            if self.flood.flooding():
                await self.ws.close(CLOSE_POLICY, "too many frames")
                return False
            await self.error("rate_limited", "slow down: too many frames per second")
            return True
        try:
            await self.handle(_parse(raw))
        except Exception as exc:
            refused = refusal_for(exc)
            if refused is None:
                raise
            await self.error(refused.code, refused.message)
        return True

    async def handle(self, frame: dict[str, Any]) -> None:
        """Dispatch one parsed frame.

        Args:
            frame: a client frame with a string ``type``.

        Raises:
            Refused: the frame is refused; ``bad_seq`` for a ``resume`` whose
                ``last_seq`` is ahead of the match.
            Exception: an error from an engine call, for ``refusal_for``.
        """
        kind = frame["type"]
        if kind == "ping":
            await self.send({"type": "pong", "server_time": _now()})
        elif kind == "create":
            template = _field(frame, "template", str)
            humans = _optional(frame, "humans", int)
            robots = _optional(frame, "robots", int)
            await self._attach(*await self.core.create(template, humans, robots))
        elif kind == "join":
            await self._attach(*await self.core.join(_field(frame, "code", str)))
        elif kind == "resume":
            await self._resume(frame)
        elif kind == "answer":
            seat = self._seat(frame)
            text = _field(frame, "text", str)
            await self.core.answer(seat, text, self._command_id(frame))
        elif kind == "vote":
            seat = self._seat(frame)
            target = _field(frame, "seat", str)
            await self.core.vote(seat, target, self._command_id(frame))
        else:
            raise Refused("unknown_type", f"unknown frame type {kind!r}")

    async def _attach(self, seat: Seat, outcome: Any) -> None:
        await self.send(
            {
                "type": "joined",
                "match_id": seat.match_id,
                "token": seat.token,
                "invite_code": outcome.data.get("invite_code"),
            }
        )
        await self._follow(seat, 0)

    async def _resume(self, frame: dict[str, Any]) -> None:
        match_id = _field(frame, "match_id", str)
        token = _field(frame, "token", str)
        last_seq = max(0, _optional(frame, "last_seq", int) or 0)
        seat, feed = await self.core.seat_of(match_id, token)
        await feed.wait_for_public(last_seq, timeout_s=_CATCH_UP_S)
        if last_seq > len(feed.public):
            raise Refused(
                "bad_seq",
                f"last_seq {last_seq} is ahead of the match, which is at seq "
                f"{len(feed.public)}; resume with the seq of an update you "
                "received, or 0 for everything",
            )
        await self._follow(seat, last_seq)

    async def _follow(self, seat: Seat, from_seq: int) -> None:
        if self.feed is not None:
            self.feed.unsubscribe(self.push)
        self.seat, self.sent_seq = seat, from_seq
        self.feed = self.core.feeds.get(seat.match_id)
        self.feed.subscribe(self.push)

    def _seat(self, frame: dict[str, Any]) -> Seat:
        if self.seat is None:
            raise Refused("not_joined", "create, join or resume a match first")
        token = _field(frame, "token", str)
        if token != self.seat.token:
            raise Refused("bad_token", "this token does not belong to your seat")
        return self.seat

    def _command_id(self, frame: dict[str, Any]) -> str:
        given = _optional(frame, "command_id", str)
        if given is not None and not 0 < len(given) <= 64:
            raise Refused("bad_frame", "command_id has 1 to 64 characters")
        return given or uuid.uuid4().hex

    async def push(self) -> None:
        """Send the player every public event they have not seen, with the view."""
        async with self._send_lock:
            feed, seat = self.feed, self.seat
            if feed is None or seat is None or len(feed.public) <= self.sent_seq:
                return
            state = feed.state
            you = state.seat_of.get(seat.player_id)
            events = [
                public_event(event, n, you)
                for n, event in enumerate(feed.public, start=1)
                if n > self.sent_seq
            ]
            seq = len(feed.public)
            view = match_view(state, seat.player_id, datetime.now(UTC))
            await self.send(
                {"type": "update", "seq": seq, "events": events, "view": view}
            )
            self.sent_seq = seq

    async def error(self, code: str, message: str) -> None:
        """Tell the client a frame was refused; nothing changed."""
        await self.send({"type": "error", "code": code, "message": message})

    async def send(self, frame: dict[str, Any]) -> None:
        """Send one JSON frame."""
        await self.ws.send_text(json.dumps(frame, separators=(",", ":")))


def _parse(raw: str) -> dict[str, Any]:
    frame = json_object(raw, "a frame")
    if not isinstance(frame.get("type"), str):
        raise Refused("bad_frame", 'a frame needs a string "type"')
    return frame


def _field(frame: dict[str, Any], name: str, kind: type) -> Any:
    value = frame.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise Refused(
            "bad_frame",
            f"{frame['type']!r} needs {name!r} as {kind.__name__}, got {value!r:.40}",
        )
    return value


def _optional(frame: dict[str, Any], name: str, kind: type) -> Any:
    if frame.get(name) is None:
        return None
    return _field(frame, name, kind)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
