"""The heap keeper: frozen heaps, a larger young generation, and full collections."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from actors._heap import HeapKeeper


@pytest.fixture(autouse=True)
def _thawed() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


class Node:
    """Half of a reference cycle: freed by the collector, never by refcounting."""

    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> weakref.ref[Node]:
    first, second = Node(), Node()
    first.other, second.other = second, first
    return weakref.ref(first)


async def test_heap_keeper_freezes_and_grows_the_young_generation() -> None:
    gc.unfreeze()
    middle, old = gc.get_threshold()[1:]
    keeper = HeapKeeper(freeze_every_s=0.01, full_every_s=60, young_threshold=5000)

    keeper.start()
    await asyncio.sleep(0.1)

    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (5000, middle, old)
    keeper.stop()
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold()[0] != 5000


async def test_heap_keeper_frees_frozen_cycles_in_its_full_collection() -> None:
    keeper = HeapKeeper(freeze_every_s=0.01, full_every_s=0.2)
    keeper.start()
    gc.disable()  # only the keeper collects: the cycle lives until it is frozen
    try:
        await asyncio.sleep(0.05)
        garbage = cycle()
        await asyncio.sleep(0.05)  # frozen while still alive
        assert garbage() is not None
        gc.collect()
        assert garbage() is not None, "a frozen cycle escapes an ordinary collection"

        await asyncio.sleep(0.4)

        assert keeper.full_collections >= 1
        assert garbage() is None
    finally:
        gc.enable()
        keeper.stop()


def test_heap_keeper_refuses_a_freeze_interval_longer_than_a_full_one() -> None:
    with pytest.raises(ValueError, match="freeze_every_s <= full_every_s"):
        HeapKeeper(freeze_every_s=10, full_every_s=1)
