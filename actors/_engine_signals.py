"""Wake-ups for callers waiting on new events of an engine's matches."""

from __future__ import annotations

import asyncio
import contextlib


class ChangeSignals:
    """One event per match being waited on, and one for any match at all.

    Each event is set once and then replaced, so a waiter never sees a
    change that happened before it began to wait as still pending.
    """

    def __init__(self) -> None:
        self._by_match: dict[str, asyncio.Event] = {}
        self._any: asyncio.Event | None = None

    async def wait_for(self, match_id: str, wait_s: float) -> None:
        """Wait up to ``wait_s`` for the match to change."""
        signal = self._by_match.setdefault(match_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(signal.wait(), wait_s)

    async def wait_any(self, wait_s: float) -> None:
        """Wait up to ``wait_s`` for any match to change, or a ``wake``."""
        if self._any is None:
            self._any = asyncio.Event()
        signal = self._any
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(signal.wait(), wait_s)

    def wake(self) -> None:
        """End every ``wait_any`` now."""
        signal, self._any = self._any, None
        if signal is not None:
            signal.set()

    def changed(self, match_id: str) -> None:
        """End the waits on this match and every ``wait_any``."""
        signal = self._by_match.pop(match_id, None)
        if signal is not None:
            signal.set()
        self.wake()

    def forget(self, match_id: str) -> None:
        """Drop an evicted match's event; nobody will set it any more."""
        self._by_match.pop(match_id, None)
