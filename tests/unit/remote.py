"""A stand-in for one Ray actor method, for unit tests of the gateway."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any


class Remote:
    """One actor method: ``remote(...)`` gives something to await."""

    def __init__(self, call: Callable[..., Awaitable[Any]]) -> None:
        self._call = call

    def remote(self, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        return self._call(*args, **kwargs)
