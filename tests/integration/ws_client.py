"""A real WebSocket client that plays like a person, and records every frame."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection


class WsPlayer:
    """Connects to ``/ws``, plays, and keeps every frame it received."""

    def __init__(self, base_url: str, origin: str | None = None) -> None:
        self.url = base_url.replace("http://", "ws://") + "/ws"
        self.origin = origin
        self.ws: ClientConnection | None = None
        self.frames: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.view: dict[str, Any] = {}
        self.match_id = ""
        self.token = ""
        self.seq = 0
        self.invite_code: str | None = None

    async def connect(self) -> WsPlayer:
        headers = {"Origin": self.origin} if self.origin else None
        self.ws = await websockets.connect(
            self.url, additional_headers=headers, open_timeout=30, max_size=2**20
        )
        return self

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    async def send(self, frame: dict[str, Any] | str) -> None:
        assert self.ws is not None
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self, timeout_s: float = 30.0) -> dict[str, Any]:
        """The next frame; updates are folded into ``view`` and ``events``."""
        assert self.ws is not None
        frame: dict[str, Any] = json.loads(
            await asyncio.wait_for(self.ws.recv(), timeout_s)
        )
        self.frames.append(frame)
        if frame["type"] == "joined":
            self.match_id, self.token = frame["match_id"], frame["token"]
            self.invite_code = frame["invite_code"]
        elif frame["type"] == "update":
            self.events.extend(frame["events"])
            self.view, self.seq = frame["view"], frame["seq"]
        elif frame["type"] == "error":
            self.errors.append(frame)
        return frame

    async def expect(self, kind: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """Read frames until one of ``kind`` arrives."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            frame = await self.recv(max(0.1, deadline - loop.time()))
            if frame["type"] == kind:
                return frame

    async def until(self, predicate: Any, timeout_s: float = 60.0) -> None:
        """Read frames until the view satisfies ``predicate``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not (self.view and predicate(self.view)):
            await self.recv(max(0.1, deadline - loop.time()))

    async def create(self, template: str = "classic", **extra: Any) -> None:
        await self.send({"type": "create", "template": template, **extra})
        await self.expect("joined")

    async def join(self, code: str) -> None:
        await self.send({"type": "join", "code": code})
        await self.expect("joined")

    async def resume(self, last_seq: int) -> None:
        await self.send(
            {"type": "resume", "match_id": self.match_id, "token": self.token,
             "last_seq": last_seq}
        )  # fmt: skip

    async def answer(self, text: str, command_id: str | None = None) -> None:
        frame = {"type": "answer", "token": self.token, "text": text}
        if command_id:
            frame["command_id"] = command_id
        await self.send(frame)

    async def vote(self, seat: str, command_id: str | None = None) -> None:
        frame = {"type": "vote", "token": self.token, "seat": seat}
        if command_id:
            frame["command_id"] = command_id
        await self.send(frame)

    async def play_round(self, number: int, text: str | None = None) -> None:
        """Answer round ``number``, vote, and wait for it to be scored."""
        await self.until(
            lambda v: (
                (v["round"] >= number and v["phase"] in ("answering", "voting"))
                or v["phase"] == "ended"
            )
        )
        if self.view["phase"] == "answering" and self.view["round"] == number:
            await self.answer(text or f"honestly? round {number} is about snacks",
                              f"a{number}")  # fmt: skip
        await self.until(
            lambda v: (
                v["round"] > number or v["phase"] in ("voting", "intermission", "ended")
            )
        )
        view = self.view
        if view["phase"] == "voting" and view["round"] == number:
            others = [a["seat"] for a in view["answers"] if a["seat"] != view["you"]]
            if others and view["you"] in [a["seat"] for a in view["answers"]]:
                await self.vote(others[0], f"v{number}")
        await self.until(
            lambda v: v["round"] > number or v["phase"] in ("intermission", "ended")
        )

    async def play_match(self, rounds: int = 5) -> None:
        for number in range(1, rounds + 1):
            await self.play_round(number)
        await self.until(lambda v: v["phase"] == "ended", 60)

    def seqs(self) -> list[int]:
        return [e["seq"] for e in self.events]
