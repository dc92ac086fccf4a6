"""Which offsets may be committed when records finish out of order."""

from __future__ import annotations

from collections import OrderedDict

TopicPartition = tuple[str, int]


class OffsetTracker:
    """Tracks records in flight per partition.

    A partition's commit position only moves past a record once it and
    every earlier record of that partition are done, so a crash never
    skips a record that was still being worked on.
    """

    def __init__(self) -> None:
        self._pending: dict[TopicPartition, OrderedDict[int, bool]] = {}
        self._position: dict[TopicPartition, int] = {}

    def add(self, tp: TopicPartition, offset: int) -> None:
        """A record was handed out for processing.

        A record redelivered below the partition's commit position is not
        tracked again: finishing it must not move the position back.
        """
        if offset < self._position.get(tp, -1):
            return
        pending = self._pending.get(tp)
        if pending is None:
            pending = self._pending[tp] = OrderedDict()
        pending[offset] = False

    def done(self, tp: TopicPartition, offset: int) -> int | None:
        """Mark a record done; returns the new commit position if it moved."""
        pending = self._pending.get(tp)
        if pending is None or offset not in pending:
            return None
        pending[offset] = True
        position = None
        while pending:
            first, finished = next(iter(pending.items()))
            if not finished:
                break
            pending.popitem(last=False)
            position = first + 1
        if position is not None:
            self._position[tp] = position
        return position

    def forget(self, tp: TopicPartition) -> None:
        """Drop a partition that was taken away in a rebalance."""
        self._pending.pop(tp, None)
        self._position.pop(tp, None)

    def in_flight(self) -> int:
        """Records handed out and not yet done, over all partitions."""
        return sum(1 for p in self._pending.values() for done in p.values() if not done)
