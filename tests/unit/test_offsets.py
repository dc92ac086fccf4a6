"""The offset tracker: what may be committed when records finish out of order."""

from __future__ import annotations

import pytest

from events.offsets import OffsetTracker

COMMANDS = ("robot-commands", 0)
EVENTS = ("match-events", 0)
EVENTS_1 = ("match-events", 1)


def tracking(tp: tuple[str, int], *offsets: int) -> OffsetTracker:
    tracker = OffsetTracker()
    for offset in offsets:
        tracker.add(tp, offset)
    return tracker


def test_offset_tracker_in_order_done_moves_position_each_time() -> None:
    tracker = tracking(EVENTS, 10, 11, 12)

    positions = [tracker.done(EVENTS, offset) for offset in (10, 11, 12)]

    assert positions == [11, 12, 13]
    assert tracker.in_flight() == 0


@pytest.mark.parametrize(
    ("finish_order", "expected_positions"),
    [
        pytest.param([2, 1, 0], [None, None, 3], id="reversed"),
        pytest.param([1, 0, 2], [None, 2, 3], id="second-first"),
        pytest.param([0, 2, 1], [1, None, 3], id="gap-in-the-middle"),
        pytest.param([2, 0, 1], [None, 1, 3], id="last-then-first"),
    ],
)
def test_offset_tracker_out_of_order_moves_only_past_done_prefix(
    finish_order: list[int], expected_positions: list[int | None]
) -> None:
    tracker = tracking(EVENTS, 0, 1, 2)

    positions = [tracker.done(EVENTS, offset) for offset in finish_order]

    assert positions == expected_positions


def test_offset_tracker_position_never_passes_a_pending_record() -> None:
    tracker = tracking(EVENTS, 100, 101, 102, 103, 104)

    tracker.done(EVENTS, 100)
    tracker.done(EVENTS, 102)
    tracker.done(EVENTS, 104)
    position = tracker.done(EVENTS, 103)

    assert position is None
    assert tracker.in_flight() == 1
    assert tracker.done(EVENTS, 101) == 105


def test_offset_tracker_sparse_offsets_commit_past_the_last_done() -> None:
    # Compacted topics and transaction markers leave gaps between offsets.
    tracker = tracking(EVENTS, 3, 7, 20)

    first = tracker.done(EVENTS, 7)
    second = tracker.done(EVENTS, 3)

    assert (first, second) == (None, 8)


def test_offset_tracker_partitions_are_independent() -> None:
    tracker = OffsetTracker()
    for tp in (EVENTS, EVENTS_1, COMMANDS):
        for offset in (0, 1):
            tracker.add(tp, offset)

    moved_events = tracker.done(EVENTS, 0)
    blocked_other_partition = tracker.done(EVENTS_1, 1)
    blocked_other_topic = tracker.done(COMMANDS, 1)

    assert moved_events == 1
    assert blocked_other_partition is None
    assert blocked_other_topic is None
    assert tracker.in_flight() == 3
    assert tracker.done(EVENTS_1, 0) == 2
    assert tracker.done(COMMANDS, 0) == 2
    assert tracker.in_flight() == 1


@pytest.mark.parametrize(
    ("tp", "offset"),
    [
        pytest.param(EVENTS, 9, id="offset-never-added"),
        pytest.param(EVENTS_1, 0, id="partition-never-added"),
    ],
)
def test_offset_tracker_done_for_unknown_record_is_ignored(
    tp: tuple[str, int], offset: int
) -> None:
    tracker = tracking(EVENTS, 0)

    position = tracker.done(tp, offset)

    assert position is None
    assert tracker.in_flight() == 1


def test_offset_tracker_done_twice_moves_position_once() -> None:
    tracker = tracking(EVENTS, 0, 1)
    tracker.done(EVENTS, 1)

    again = tracker.done(EVENTS, 1)

    assert again is None
    assert tracker.done(EVENTS, 0) == 2
    assert tracker.done(EVENTS, 1) is None


def test_offset_tracker_redelivered_while_pending_counts_once() -> None:
    tracker = tracking(EVENTS, 5, 6)

    tracker.add(EVENTS, 5)

    assert tracker.in_flight() == 2
    assert tracker.done(EVENTS, 5) == 6
    assert tracker.done(EVENTS, 6) == 7
    assert tracker.in_flight() == 0


def test_offset_tracker_redelivered_after_commit_is_not_tracked_again() -> None:
    tracker = tracking(EVENTS, 5)
    tracker.done(EVENTS, 5)

    tracker.add(EVENTS, 5)
    position = tracker.done(EVENTS, 5)

    assert position is None
    assert tracker.in_flight() == 0


def test_offset_tracker_redelivered_old_record_never_moves_position_back() -> None:
    tracker = tracking(EVENTS, 5, 6)
    assert tracker.done(EVENTS, 5) == 6
    tracker.add(EVENTS, 5)  # redelivered after the position passed it
    assert tracker.done(EVENTS, 6) == 7

    position = tracker.done(EVENTS, 5)

    assert position is None or position >= 7


def test_offset_tracker_forget_drops_partition_records() -> None:
    tracker = OffsetTracker()
    for tp in (EVENTS, EVENTS_1):
        tracker.add(tp, 0)

    tracker.forget(EVENTS)

    assert tracker.in_flight() == 1
    assert tracker.done(EVENTS, 0) is None
    assert tracker.done(EVENTS_1, 0) == 1


def test_offset_tracker_forget_unknown_partition_is_harmless() -> None:
    tracker = tracking(EVENTS, 0)

    tracker.forget(EVENTS_1)

    assert tracker.in_flight() == 1


def test_offset_tracker_after_forget_starts_afresh_from_redelivery() -> None:
    tracker = tracking(EVENTS, 0, 1, 2)
    tracker.done(EVENTS, 2)
    tracker.forget(EVENTS)  # revoked, then assigned again from offset 0

    for offset in (0, 1, 2):
        tracker.add(EVENTS, offset)
    positions = [tracker.done(EVENTS, offset) for offset in (0, 1, 2)]

    assert positions == [1, 2, 3]
