"""Queues and tenants as the scheduler sees them: pause, limits, rate, quota, weight.

Pure: no I/O. Queues and tenants are created on first use with no limits; operators then
pause a queue, cap how many of its jobs run at once across the fleet or how many start per
period, and give a tenant a quota of running jobs and a weight (its share under contention).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from blixard.domain import validation as v
from blixard.errors import ValidationError

MAX_LIMIT = 1_000_000
MAX_PERIOD_S = 86_400.0 * 366


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``limit`` starts per ``period_s``: a token bucket of ``limit`` tokens that
    refills continuously at ``limit / period_s`` per second (bursts up to ``limit``)."""

    limit: int
    period_s: float

    def validate(self) -> RateLimit:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int):
            raise ValidationError("rate_limit.limit", "must be an integer")
        v.check_range("rate_limit.limit", self.limit, 1, MAX_LIMIT)
        v.check_range("rate_limit.period_s", self.period_s, 0.001, MAX_PERIOD_S)
        return self

    def refill(self, tokens: float, updated_at: float, now: float) -> float:
        """The tokens in the bucket at ``now`` (a fresh bucket, updated_at 0, is full)."""
        if updated_at <= 0:
            return float(self.limit)
        gained = max(0.0, now - updated_at) * self.limit / self.period_s
        return min(float(self.limit), tokens + gained)

    def next_token_at(self, tokens: float, now: float) -> float:
        """When the bucket next holds a whole token."""
        if tokens >= 1:
            return now
        return now + (1 - tokens) * self.period_s / self.limit


@dataclass(frozen=True, slots=True)
class Queue:
    name: str
    paused: bool = False
    max_running: int | None = None
    rate: RateLimit | None = None
    rate_tokens: float = 0.0
    rate_updated_at: float = 0.0
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def restricted(self) -> bool:
        """Whether claims must look at this queue at all."""
        return self.paused or self.max_running is not None or self.rate is not None


@dataclass(frozen=True, slots=True)
class Tenant:
    name: str
    weight: float = 1.0
    max_running: int | None = None
    served_at: float = 0.0
    created_at: float = 0.0
    updated_at: float = 0.0


def next_token_at(buckets: Iterable[tuple[int, float, float, float]], now: float) -> float | None:
    """The earliest time one of these rate-limited queues (limit, period_s, tokens,
    updated_at), each with due jobs waiting, gets a token back; None if none is dry (a
    queue with tokens left waits for a worker that fits, not for time)."""
    times = []
    for limit, period_s, tokens, updated_at in buckets:
        rate = RateLimit(limit, period_s)
        left = rate.refill(tokens, updated_at, now)
        if left < 1:
            times.append(rate.next_token_at(left, now))
    return min(times, default=None)


def check_max_running(field: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, "must be an integer or null")
    v.check_range(field, value, 0, MAX_LIMIT)
    return value


def check_weight(value: float) -> float:
    v.check_range("weight", value, 0.001, 1000)
    return float(value)
