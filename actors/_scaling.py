"""When to grow or shrink a persona's pool: pure, with delays against flapping."""

from __future__ import annotations

import math
from dataclasses import dataclass

from actors.personas import PoolBounds


@dataclass(frozen=True)
class ScaleDecision:
    """A new pool size and why."""

    workers: int
    reason: str


def capped_bounds(bounds: PoolBounds, cpus: float, pools: int) -> PoolBounds:
    """A persona's bounds with max_workers cut to its pool's share of ``cpus``.

    For workers that ask Ray for no CPU and no custom resource: nothing
    else then stops a burst from starting more worker processes than the
    machines can run. The offline brain is pure CPU work and a Bedrock
    worker waits on the network for hundreds of calls at once, so neither
    gains from more worker processes than CPUs; past that, each new worker
    only takes CPU from the running ones (its start alone costs about a
    second of it). On two cores, four personas scaling to 24 workers halved
    the matches a load test finished per minute.

    Args:
        bounds: the persona's configured bounds.
        cpus: CPUs in the cluster.
        pools: pools sharing them (personas times orchestrators).

    Returns:
        The bounds, with max_workers at most the share (never below one,
        nor below min_workers).
    """
    share = max(1, int(cpus // max(1, pools)), bounds.min_workers)
    if share >= bounds.max_workers:
        return bounds
    return bounds.model_copy(update={"max_workers": share})


@dataclass
class ScalePolicy:
    """Desired workers = ceil((lag + in_flight) / target per worker), bounded.

    A change in one direction must be wanted for the whole delay of that
    direction (upscale is usually quick, downscale slow) before it happens;
    any reading that wants otherwise restarts the clock.
    """

    bounds: PoolBounds
    upscale_delay_s: float
    downscale_delay_s: float
    _direction: int = 0
    _since: float = 0.0

    def desired(self, lag: int, in_flight: int) -> int:
        """Workers the work calls for, within the persona's bounds."""
        wanted = math.ceil((lag + in_flight) / self.bounds.target_in_flight)
        return max(self.bounds.min_workers, min(self.bounds.max_workers, wanted))

    def decide(
        self, current: int, lag: int, in_flight: int, now: float
    ) -> ScaleDecision | None:
        """A decision when the pool should change size now, else None."""
        desired = self.desired(lag, in_flight)
        direction = (desired > current) - (desired < current)
        if direction == 0:
            self._direction = 0
            return None
        if direction != self._direction:
            self._direction, self._since = direction, now
        delay = self.upscale_delay_s if direction > 0 else self.downscale_delay_s
        if now - self._since < delay:
            return None
        self._direction = 0
        reason = (
            f"lag={lag} in_flight={in_flight} target_per_worker="
            f"{self.bounds.target_in_flight} desired={desired}"
        )
        if current < self.bounds.min_workers:
            reason = f"below min_workers={self.bounds.min_workers}; {reason}"
        return ScaleDecision(desired, reason)
