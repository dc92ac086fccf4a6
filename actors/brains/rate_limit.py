"""Request rate limits per model, shared by every robot worker of the cluster."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import ray
from ray.actor import ActorHandle
from ray.exceptions import RayError

logger = logging.getLogger(__name__)

RATE_LIMITER_NAME = "robot-orchestra-rate-limiter"
NAMESPACE = "robot-orchestra"

Clock = Callable[[], float]


class RateLimiter(Protocol):
    """Hands out request slots for a model."""

    async def reserve(self, model_id: str, rate_per_s: float, burst: int) -> float:
        """Reserve one request and return the seconds to wait before sending it."""
        ...


class TokenBucket:
    """A token bucket that hands out reservations.

    Tokens may go negative: each caller takes its token at once and is told
    how long to wait for it, so concurrent callers queue in arrival order
    instead of all retrying at the same instant.
    """

    def __init__(
        self, rate_per_s: float, burst: int, clock: Clock = time.monotonic
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError(
                f"a token bucket needs rate_per_s > 0 and burst >= 1, "
                f"got rate_per_s={rate_per_s} burst={burst}"
            )
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()

    def reserve(self, now: float | None = None) -> float:
        """Take one token.

        Args:
            now: the current time on the bucket's clock; read from it if None.

        Returns:
            Seconds the caller must wait before using its token (0 if none).
        """
        now = self._clock() if now is None else now
        self._refill(now)
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate_per_s

    def _refill(self, now: float) -> None:
        # A clock read before the last update (another caller's `now`) adds nothing.
        elapsed_s = max(0.0, now - self._updated)
        self._tokens = min(
            float(self.burst), self._tokens + elapsed_s * self.rate_per_s
        )
        self._updated = max(self._updated, now)


class _Buckets:
    """One token bucket per model id, created on first use."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def reserve(self, model_id: str, rate_per_s: float, burst: int) -> float:
        bucket = self._buckets.get(model_id)
        if bucket is None:
            bucket = TokenBucket(rate_per_s, burst, self._clock)
            self._buckets[model_id] = bucket
        elif (bucket.rate_per_s, bucket.burst) != (rate_per_s, burst):
            # The quota belongs to the model, so one bucket serves every persona
            # using it; the first caller's numbers stay in force.
            logger.warning(
                "rate limit mismatch model_id=%s kept_rate_per_s=%s kept_burst=%s "
                "asked_rate_per_s=%s asked_burst=%s",
                model_id,
                bucket.rate_per_s,
                bucket.burst,
                rate_per_s,
                burst,
            )
        return bucket.reserve()


class LocalRateLimiter:
    """A rate limiter for one process: a bucket per model id, no Ray needed."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._buckets = _Buckets(clock)

    async def reserve(self, model_id: str, rate_per_s: float, burst: int) -> float:
        """Reserve one request to a model.

        Args:
            model_id: the model whose quota the request uses.
            rate_per_s: the model's sustained request rate.
            burst: how many requests may go at once after a quiet spell.

        Returns:
            Seconds to wait before sending the request.
        """
        return self._buckets.reserve(model_id, rate_per_s, burst)


@ray.remote(num_cpus=0)
class SharedRateLimiter:
    """The cluster's rate limiter: every worker of a model draws on one bucket."""

    def __init__(self) -> None:
        self._buckets = _Buckets(time.monotonic)

    async def reserve(self, model_id: str, rate_per_s: float, burst: int) -> float:
        """Reserve one request to a model; returns the seconds to wait."""
        # No await inside: an async actor runs one call at a time up to its
        # first await, so the bucket needs no lock.
        return self._buckets.reserve(model_id, rate_per_s, burst)


class RemoteRateLimiter:
    """A ``RateLimiter`` backed by the shared actor."""

    def __init__(
        self,
        handle: ActorHandle[Any],
        reconnect: Callable[[], ActorHandle[Any]] | None = None,
    ) -> None:
        self.handle = handle
        self._reconnect = reconnect

    async def reserve(self, model_id: str, rate_per_s: float, burst: int) -> float:
        """Reserve one request through the shared actor.

        Args:
            model_id: the model whose quota the request uses.
            rate_per_s: the model's sustained request rate.
            burst: how many requests may go at once after a quiet spell.

        Returns:
            Seconds to wait before sending the request; 0 if the actor could
            not be reached (Bedrock's own throttling then limits the rate).
        """
        try:
            wait_s: float = await self.handle.reserve.remote(
                model_id, rate_per_s, burst
            )
        except RayError as exc:
            logger.warning(
                "rate limiter unreachable model_id=%s error=%s; sending unlimited",
                model_id,
                type(exc).__name__,
            )
            # Ray restarts the actor after a node loss (max_restarts=-1); one
            # killed for good is created again, so the next call is limited.
            if self._reconnect is not None:
                self.handle = self._reconnect()
            return 0.0
        return wait_s


def rate_limiter(namespace: str = NAMESPACE) -> RemoteRateLimiter:
    """The cluster's shared rate limiter, created by the first caller.

    Args:
        namespace: the Ray namespace holding the detached actor.

    Returns:
        A ``RateLimiter`` backed by the ``SharedRateLimiter`` actor named
        ``robot-orchestra-rate-limiter``; its ``handle`` is the actor itself.
    """
    return RemoteRateLimiter(
        _shared_limiter(namespace), lambda: _shared_limiter(namespace)
    )


def _shared_limiter(namespace: str) -> ActorHandle[Any]:
    handle: ActorHandle[Any] = SharedRateLimiter.options(  # type: ignore[attr-defined]
        name=RATE_LIMITER_NAME,
        namespace=namespace,
        lifetime="detached",
        get_if_exists=True,
        max_restarts=-1,
    ).remote()
    return handle
