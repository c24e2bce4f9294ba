"""Server-side settings: one object, built by the CLI from flags and BLIXARD_* variables."""

from __future__ import annotations

from dataclasses import dataclass

from blixard.domain.validation import DEFAULT_MAX_PAYLOAD_BYTES
from blixard.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class ServerSettings:
    lease_ttl_s: float = 15.0
    """How long a claim lives without a heartbeat; a dead worker's jobs return after this."""
    worker_ttl_s: float = 30.0
    """A worker not seen for this long is marked offline."""
    reaper_interval_s: float = 1.0
    scheduler_interval_s: float = 1.0
    """How often the cron scheduler looks for due schedules (on the server that leads it)."""
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    max_claim_wait_s: float = 60.0
    max_claim_batch: int = 1000
    max_bulk_submit: int = 10_000
    max_wait_s: float = 300.0
    poll_backstop_s: float = 1.0
    """Long-polls re-check the store at least this often (other processes may write)."""

    def __post_init__(self) -> None:
        if self.lease_ttl_s < 0.2:
            raise ConfigurationError("lease_ttl_s must be at least 0.2 seconds")
        if self.worker_ttl_s < self.lease_ttl_s:
            raise ConfigurationError("worker_ttl_s must be at least lease_ttl_s")
        if self.reaper_interval_s <= 0:
            raise ConfigurationError("reaper_interval_s must be positive")
        if self.scheduler_interval_s <= 0:
            raise ConfigurationError("scheduler_interval_s must be positive")

    @property
    def heartbeat_interval_s(self) -> float:
        """Agents heartbeat three times per lease, so one lost heartbeat costs nothing."""
        return self.lease_ttl_s / 3
