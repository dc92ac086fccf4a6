"""A scripted human player that talks to the engines through Ray."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import ray
from ray.exceptions import ActorUnavailableError, RayActorError

from actors._engine_core import Outcome
from actors.engines import engine_index
from configs import AppSettings
from events import Envelope
from events.match_events import MatchEnded
from game import MatchState


class ScriptedPlayer:
    """Plays one match: answers each prompt, votes, records every event seen.

    Calls are retried while an engine restarts; every command carries an id,
    so a retry of a command that already landed changes nothing.
    """

    def __init__(
        self, player_id: str, engines: list[Any], settings: AppSettings
    ) -> None:
        self.player_id = player_id
        self.engines = engines
        self.settings = settings
        self.match_id = ""
        self.state = MatchState("")
        self.received: list[Envelope] = []
        self.retries = 0
        self.on_event: Callable[[ScriptedPlayer, Envelope], Any] | None = None

    def engine_for(self, match_id: str) -> Any:
        return self.engines[engine_index(match_id, self.settings)]

    async def call(self, engine: Any, method: str, *args: Any, **kw: Any) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 90
        while True:
            try:
                return await getattr(engine, method).remote(*args, **kw)
            except (RayActorError, ActorUnavailableError):
                if loop.time() > deadline:
                    raise
                self.retries += 1
                await asyncio.sleep(0.5)

    async def create(self, template: str, **kw: Any) -> Outcome:
        engine = self.engines[0]
        outcome: Outcome = await self.call(
            engine, "create_match", template, self.player_id, **kw
        )
        self.adopt(outcome.match_id)
        return outcome

    def adopt(self, match_id: str) -> None:
        self.match_id = match_id
        self.state = MatchState(match_id)

    async def play(self, answer: Callable[[int], str] | None = None) -> MatchState:
        """Follow the match to its end, acting when it is this player's turn."""
        answered: set[int] = set()
        voted: set[int] = set()
        engine = self.engine_for(self.match_id)
        while self.state.phase != "ended":
            events: list[Envelope] = await self.call(
                engine, "events_since", self.match_id, len(self.received), 1.0
            )
            for event in events:
                self.received.append(event)
                self.state.apply(event)
                if self.on_event is not None:
                    await self.on_event(self, event)
            current = self.state.current
            if current is None or self.player_id not in self.state.seat_of:
                continue
            seat = self.state.seat_of[self.player_id]
            number = current.number
            if self.state.phase == "answering" and number not in answered:
                answered.add(number)
                text = answer(number) if answer else f"my honest take, round {number}"
                await self.command(engine, "submit_answer", text, f"a{number}")
            elif self.state.phase == "voting" and number not in voted:
                voted.add(number)
                others = [s for s in current.order if s != seat]
                if seat in current.order and others:
                    await self.command(engine, "cast_vote", others[0], f"v{number}")
        assert isinstance(self.received[-1].payload, MatchEnded)
        return self.state

    async def command(self, engine: Any, method: str, arg: str, tag: str) -> None:
        command_id = f"{self.player_id}-{self.match_id}-{tag}"
        outcome: Outcome = await self.call(
            engine, method, self.match_id, self.player_id, arg, command_id
        )
        # A deadline can pass between seeing the phase and acting in it.
        assert outcome.ok or outcome.code in {"deadline_passed", "wrong_phase"}, outcome


def fresh_player() -> str:
    return f"player-{uuid.uuid4().hex[:8]}"


def kill_engine(engine: Any) -> None:
    """Kill an engine actor the hard way; Ray restarts it."""
    ray.kill(engine, no_restart=False)
