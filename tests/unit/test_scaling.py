"""The pool's scaling policy: desired size, bounds and delays."""

from __future__ import annotations

import pytest

from actors._scaling import ScalePolicy, capped_bounds
from actors.personas import PoolBounds

BOUNDS = PoolBounds(min_workers=1, max_workers=6, target_in_flight=10)


def policy(up_s: float = 0.0, down_s: float = 5.0) -> ScalePolicy:
    return ScalePolicy(BOUNDS, upscale_delay_s=up_s, downscale_delay_s=down_s)


@pytest.mark.parametrize(
    ("lag", "in_flight", "desired"),
    [
        pytest.param(0, 0, 1, id="idle-stays-at-min"),
        pytest.param(10, 0, 1, id="one-worker-of-work"),
        pytest.param(11, 0, 2, id="just-over-one"),
        pytest.param(20, 15, 4, id="lag-plus-in-flight"),
        pytest.param(500, 0, 6, id="capped-at-max"),
    ],
)
def test_scaling_desired_workers(lag: int, in_flight: int, desired: int) -> None:
    assert policy().desired(lag, in_flight) == desired


def test_scaling_upscale_waits_for_its_delay() -> None:
    scaler = policy(up_s=2.0)

    first = scaler.decide(current=1, lag=60, in_flight=0, now=100.0)
    early = scaler.decide(current=1, lag=60, in_flight=0, now=101.0)
    due = scaler.decide(current=1, lag=60, in_flight=0, now=102.0)

    assert first is None and early is None
    assert due is not None and due.workers == 6
    assert "lag=60" in due.reason and "desired=6" in due.reason


def test_scaling_downscale_needs_a_steady_quiet_period() -> None:
    scaler = policy(down_s=5.0)

    readings = [
        scaler.decide(current=4, lag=0, in_flight=0, now=0.0),
        scaler.decide(current=4, lag=0, in_flight=0, now=4.0),
        scaler.decide(current=4, lag=40, in_flight=0, now=4.5),  # work came back
        scaler.decide(current=4, lag=0, in_flight=0, now=5.0),
        scaler.decide(current=4, lag=0, in_flight=0, now=9.9),
        scaler.decide(current=4, lag=0, in_flight=0, now=10.0),
    ]

    assert readings[:5] == [None] * 5
    assert readings[5] is not None and readings[5].workers == 1


def test_scaling_below_min_says_so() -> None:
    decision = policy().decide(current=0, lag=0, in_flight=0, now=0.0)

    assert decision is not None and decision.workers == 1
    assert decision.reason.startswith("below min_workers=1")


def test_scaling_at_the_right_size_does_nothing() -> None:
    assert policy().decide(current=2, lag=15, in_flight=0, now=0.0) is None


@pytest.mark.parametrize(
    ("cpus", "pools", "min_workers", "max_workers"),
    [
        pytest.param(2, 4, 1, 1, id="two-cores-four-personas"),
        pytest.param(8, 4, 1, 2, id="eight-cores-four-personas"),
        pytest.param(64, 4, 1, 6, id="plenty-keeps-max"),
        pytest.param(2, 4, 3, 3, id="never-below-min"),
        pytest.param(1.5, 1, 0, 1, id="at-least-one"),
    ],
)
def test_scaling_bounds_capped_to_the_cpu_share(
    cpus: float, pools: int, min_workers: int, max_workers: int
) -> None:
    bounds = PoolBounds(min_workers=min_workers, max_workers=6, target_in_flight=10)

    capped = capped_bounds(bounds, cpus, pools)

    assert capped.max_workers == max_workers
    assert (capped.min_workers, capped.target_in_flight) == (min_workers, 10)
    assert ScalePolicy(capped, 0.0, 5.0).desired(10_000, 0) == max_workers
