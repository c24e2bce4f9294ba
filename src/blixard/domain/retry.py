"""Retry policy: exponential backoff with jitter, and the decision after a failed attempt."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from blixard.errors import ValidationError


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before attempt n+1 = min(max_s, base_s * factor**(n-1)), less up to ``jitter``
    of it at random (0.5 = "equal jitter": somewhere in [delay/2, delay])."""

    base_s: float = 1.0
    factor: float = 2.0
    max_s: float = 300.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.base_s <= 86_400:
            raise ValidationError("backoff.base_s", "must be between 0 and 86400 seconds")
        if not 1 <= self.factor <= 100:
            raise ValidationError("backoff.factor", "must be between 1 and 100")
        if not 0 <= self.max_s <= 7 * 86_400:
            raise ValidationError("backoff.max_s", "must be between 0 and 604800 seconds")
        if not 0 <= self.jitter <= 1:
            raise ValidationError("backoff.jitter", "must be between 0 and 1")

    def delay(self, attempt: int, u: float) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based); ``u`` in [0, 1)."""
        exponent = max(attempt - 1, 0)
        # Cap the exponent so factor**exponent cannot overflow on absurd attempt counts.
        raw = self.base_s * (self.factor ** min(exponent, 64))
        capped = min(raw, self.max_s)
        return capped * (1.0 - self.jitter * u)

    def to_dict(self) -> dict[str, float]:
        return {
            "base_s": self.base_s,
            "factor": self.factor,
            "max_s": self.max_s,
            "jitter": self.jitter,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Backoff:
        return cls(**{k: float(v) for k, v in data.items()})


DEFAULT_BACKOFF = Backoff()


@dataclass(frozen=True, slots=True)
class FailureDecision:
    """What happens to a job whose attempt failed: back to pending at ``run_at``, or failed."""

    requeue: bool
    run_at: float | None


def decide_after_failure(
    *, attempt: int, max_attempts: int, backoff: Backoff, retryable: bool, now: float, u: float
) -> FailureDecision:
    if retryable and attempt < max_attempts:
        return FailureDecision(True, now + backoff.delay(attempt, u))
    return FailureDecision(False, None)
