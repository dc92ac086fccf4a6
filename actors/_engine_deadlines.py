"""When an engine's matches next need it: phase deadlines and retention."""

from __future__ import annotations

from datetime import datetime, timedelta

from actors._deadlines import DeadlineQueue
from game import MatchState

# A phase the broker would not let close is tried again this soon, rather
# than waiting for a deadline that has already passed and will not recur.
RETRY_DELAY = timedelta(seconds=0.5)


class Timetable:
    """The deadlines the tick closes and the ended matches it later evicts."""

    def __init__(self) -> None:
        self.deadlines = DeadlineQueue()
        # Kept in order of end time, so a scan for expired matches can stop
        # at the first one still inside the retention window.
        self.ended_at: dict[str, datetime] = {}

    def note(self, match_id: str, state: MatchState, now: datetime) -> None:
        """Queue the match's live deadline; remember when it ended, once."""
        deadline = state.deadline()
        if deadline is not None:
            self.deadlines.push(deadline, match_id)
        if state.phase == "ended":
            self.ended_at.setdefault(match_id, now)

    def ended(self, match_id: str, at: datetime) -> None:
        """Record a rebuilt match's real end; call ``sort`` after the last."""
        self.ended_at[match_id] = at

    def sort(self) -> None:
        """Put the end times back in order after a rebuild recorded them."""
        self.ended_at = dict(sorted(self.ended_at.items(), key=lambda item: item[1]))

    def due(self, now: datetime) -> list[str]:
        """Matches with a deadline at or before ``now``, each once."""
        return self.deadlines.pop_due(now)

    def retry(self, match_id: str, now: datetime) -> None:
        """Try the match's passed deadline again shortly."""
        self.deadlines.push(now + RETRY_DELAY, match_id)

    def ended_before(self, cutoff: datetime) -> list[str]:
        """Matches that ended before ``cutoff``, earliest first."""
        expired: list[str] = []
        for match_id, ended in self.ended_at.items():
            if ended >= cutoff:
                break
            expired.append(match_id)
        return expired

    def forget(self, match_id: str) -> None:
        """Drop an evicted match's end time; its queued deadlines go stale."""
        self.ended_at.pop(match_id, None)

    def __len__(self) -> int:
        return len(self.deadlines)
