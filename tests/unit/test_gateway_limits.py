"""The gateway's limits: allowed origins, the frame rate and the flood close."""

from __future__ import annotations

import time

import pytest

from serve_app import origin_allowed
from serve_app.sessions import FloodWatch, FrameLimiter

HOST = "game.example.com"
ALLOWED = ("https://play.example.org", "http://localhost:5173")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s

    def tick(self, seconds: float) -> None:
        self.now_s += seconds


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        pytest.param(None, True, id="no-origin"),
        pytest.param(f"https://{HOST}", True, id="same-origin"),
        pytest.param(f"http://{HOST}", True, id="same-host-http"),
        pytest.param("https://play.example.org", True, id="allow-listed"),
        pytest.param("http://localhost:5173", True, id="allow-listed-port"),
        pytest.param("null", False, id="null"),
        pytest.param("", False, id="empty"),
        pytest.param(f"https://{HOST}.evil.net", False, id="host-suffix"),
        pytest.param(f"https://evil{HOST}", False, id="host-prefix"),
        pytest.param(f"https://www.{HOST}", False, id="subdomain"),
        pytest.param(f"https://{HOST}:8443", False, id="other-port"),
        pytest.param(f"https://{HOST}@evil.net", False, id="userinfo"),
        pytest.param(f"https://{HOST}/play", False, id="path"),
        pytest.param(f"ftp://{HOST}", False, id="scheme"),
        pytest.param(f"//{HOST}", False, id="no-scheme"),
        pytest.param("https://play.example.org.evil.net", False, id="allow-suffix"),
        pytest.param("https://www.play.example.org", False, id="allow-subdomain"),
        pytest.param("https://play.example.org:444", False, id="allow-other-port"),
        pytest.param("http://play.example.org", False, id="allow-other-scheme"),
        pytest.param("http://localhost:5174", False, id="allow-wrong-port"),
    ],
)
def test_origin_allowed_is_exact(origin: str | None, allowed: bool) -> None:
    assert origin_allowed(origin, HOST, ALLOWED) is allowed


def test_frame_limiter_allows_a_burst_then_refuses() -> None:
    clock = Clock()
    limiter = FrameLimiter(rate_per_s=10.0, burst=5, clock=clock)

    taken = [limiter.allow() for _ in range(8)]

    assert taken == [True] * 5 + [False] * 3


def test_frame_limiter_refills_at_its_rate_without_debt() -> None:
    clock = Clock()
    limiter = FrameLimiter(rate_per_s=10.0, burst=5, clock=clock)
    for _ in range(20):
        limiter.allow()  # refused frames take nothing: no debt to pay off

    clock.tick(0.25)
    refilled = [limiter.allow() for _ in range(3)]

    assert refilled == [True, True, False]


def test_frame_limiter_never_holds_more_than_its_burst() -> None:
    clock = Clock()
    limiter = FrameLimiter(rate_per_s=10.0, burst=5, clock=clock)

    clock.tick(3600.0)
    taken = [limiter.allow() for _ in range(6)]

    assert taken == [True] * 5 + [False]


def test_frame_limiter_refills_on_the_real_clock() -> None:
    limiter = FrameLimiter(rate_per_s=100.0, burst=2)
    assert [limiter.allow() for _ in range(3)] == [True, True, False]

    deadline = time.monotonic() + 0.2
    while not limiter.allow():
        assert time.monotonic() < deadline, (
            "no frame allowed 0.2 s after a 100/s refill"
        )


def test_flood_watch_trips_on_limit_refusals_within_the_window() -> None:
    clock = Clock()
    watch = FloodWatch(limit=5, window_s=10.0, clock=clock)

    verdicts: list[bool] = []
    for _ in range(5):
        verdicts.append(watch.flooding())
        clock.tick(1.0)

    assert verdicts == [False] * 4 + [True]


def test_flood_watch_forgives_bursts_spread_over_a_long_session() -> None:
    clock = Clock()
    watch = FloodWatch(limit=5, window_s=10.0, clock=clock)

    verdicts: list[bool] = []
    for _ in range(10):  # bursts of three refusals, a minute apart
        verdicts.extend(watch.flooding() for _ in range(3))
        clock.tick(60.0)

    assert not any(verdicts)


def test_flood_watch_trips_when_refusals_only_pause_briefly() -> None:
    clock = Clock()
    watch = FloodWatch(limit=5, window_s=10.0, clock=clock)
    for _ in range(4):
        watch.flooding()

    clock.tick(9.0)

    assert watch.flooding()
