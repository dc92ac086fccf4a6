"""Actions bound for one engine leave in few calls, each outcome to its sender."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from ray.exceptions import ActorUnavailableError

from actors._engine_core import Outcome
from actors.errors import UnknownMatch
from serve_app.gateway import _CALLS_IN_FLIGHT, Action, EngineActions


class HeldEngine:
    """An engine whose ``act_many`` calls wait until the test lets them end."""

    def __init__(self) -> None:
        self.calls: list[list[Action]] = []
        self.release: list[asyncio.Event] = []
        self.act_many = self
        self.fail_call: BaseException | None = None

    def remote(self, actions: list[Action]) -> Any:
        self.calls.append(list(actions))
        gate = asyncio.Event()
        self.release.append(gate)
        return self._answer(actions, gate)

    async def _answer(self, actions: list[Action], gate: asyncio.Event) -> list[Any]:
        await gate.wait()
        if self.fail_call is not None:
            raise self.fail_call
        return [
            UnknownMatch(match_id)
            if match_id == "gone"
            else Outcome(True, match_id, data={"echo": command_id})
            for _, match_id, _, _, command_id in actions
        ]


def action(n: int, match_id: str = "m-1") -> Action:
    return ("answer", match_id, f"p-{n}", "hello", f"c-{n}")


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_actions_go_at_once_then_wait_for_a_call_to_end_and_leave_together() -> (
    None
):
    engine = HeldEngine()
    actions = EngineActions(lambda: engine)

    first = [actions.submit(action(n)) for n in range(_CALLS_IN_FLIGHT)]
    await settle()
    waiting = [actions.submit(action(n)) for n in range(10, 15)]
    await settle()
    assert [len(c) for c in engine.calls] == [1] * _CALLS_IN_FLIGHT

    engine.release[0].set()
    await settle()
    assert [len(c) for c in engine.calls] == [1] * _CALLS_IN_FLIGHT + [5]
    for gate in engine.release:
        gate.set()
    outcomes = await asyncio.gather(*first, *waiting)

    sent = [a[4] for call in engine.calls for a in call]
    assert [o.data["echo"] for o in outcomes] == sent
    assert actions.calls == _CALLS_IN_FLIGHT + 1


async def test_an_action_error_fails_only_its_own_sender() -> None:
    engine = HeldEngine()
    actions = EngineActions(lambda: engine)
    for _ in range(_CALLS_IN_FLIGHT):  # keep the calls busy, so the next two batch
        actions.submit(action(0))
    await settle()
    good, bad = actions.submit(action(1)), actions.submit(action(2, "gone"))
    for gate in engine.release:
        gate.set()
    await settle()
    for gate in engine.release:
        gate.set()

    assert (await good).data["echo"] == "c-1"
    with pytest.raises(UnknownMatch):
        await bad


async def test_an_unreachable_engine_fails_every_action_of_the_call() -> None:
    engine = HeldEngine()
    engine.fail_call = ActorUnavailableError("restarting", None)
    actions = EngineActions(lambda: engine)

    futures = [actions.submit(action(n)) for n in range(3)]
    await settle()
    for gate in engine.release:
        gate.set()
    await settle()
    for gate in engine.release:
        gate.set()
    results = await asyncio.gather(*futures, return_exceptions=True)

    assert all(isinstance(r, ActorUnavailableError) for r in results)
