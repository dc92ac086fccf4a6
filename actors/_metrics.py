"""Metrics exported through Ray's metrics agent (Prometheus format).

Ray prefixes every name with ``ray_``; ``docs/deploy.md`` lists them.
Metrics are created on first use, inside the actor process that reports
them, because a metric object is bound to the Ray worker that made it.
"""

from __future__ import annotations

from functools import cache

from ray.util.metrics import Counter, Gauge, Histogram

LATENCY_BOUNDARIES_MS: list[float] = [
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000,
]  # fmt: skip


class PoolMetrics:
    """Per persona: pool size, lag, in-flight work, latency and fallbacks."""

    def __init__(self) -> None:
        tags = ("persona",)
        self.workers = Gauge(
            "robot_orchestra_pool_workers", "Live robot workers", tag_keys=tags
        )
        self.lag = Gauge(
            "robot_orchestra_pool_lag", "Commands not yet consumed", tag_keys=tags
        )
        self.in_flight = Gauge(
            "robot_orchestra_pool_in_flight",
            "Commands taken and not yet published",
            tag_keys=tags,
        )
        self.latency_ms = Histogram(
            "robot_orchestra_generation_latency_ms",
            "Time a brain took per generation",
            boundaries=LATENCY_BOUNDARIES_MS,
            tag_keys=tags,
        )
        self.fallbacks = Counter(
            "robot_orchestra_fallbacks_total",
            "Generations answered by the fallback brain",
            tag_keys=tags,
        )


class EngineMetrics:
    """Matches an engine holds."""

    def __init__(self) -> None:
        self.active_matches = Gauge(
            "robot_orchestra_active_matches",
            "Matches not yet ended",
            tag_keys=("engine",),
        )


class GatewayMetrics:
    """Sockets a gateway replica holds."""

    def __init__(self) -> None:
        self.open_sockets = Gauge(
            "robot_orchestra_open_sockets", "Open match WebSockets on this replica"
        )


@cache
def pool_metrics() -> PoolMetrics:
    """The pool metrics of this process."""
    return PoolMetrics()


@cache
def engine_metrics() -> EngineMetrics:
    """The engine metrics of this process."""
    return EngineMetrics()


@cache
def gateway_metrics() -> GatewayMetrics:
    """The gateway metrics of this process."""
    return GatewayMetrics()
