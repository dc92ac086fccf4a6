"""A queue of match deadlines; stale entries are dropped when popped."""

from __future__ import annotations

import heapq
from datetime import datetime


class DeadlineQueue:
    """Earliest deadline first. A match may be queued more than once; the
    caller re-checks the match's live deadline before acting on it."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, str]] = []
        self._queued: set[tuple[datetime, str]] = set()

    def push(self, when: datetime, match_id: str) -> None:
        """Remember that ``match_id`` has something due at ``when``."""
        entry = (when, match_id)
        if entry not in self._queued:
            self._queued.add(entry)
            heapq.heappush(self._heap, entry)

    def pop_due(self, now: datetime) -> list[str]:
        """Match ids with a deadline at or before ``now``, each once."""
        due: list[str] = []
        while self._heap and self._heap[0][0] <= now:
            entry = heapq.heappop(self._heap)
            self._queued.discard(entry)
            if entry[1] not in due:
                due.append(entry[1])
        return due

    def __len__(self) -> int:
        return len(self._heap)
