"""Agent settings: one object, built by the CLI from flags and BLIXARD_* variables."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from blixard.domain.workers import Resources


def total_memory_mb() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024))
    except (ValueError, OSError, AttributeError):
        return 0


def default_resources() -> Resources:
    return Resources(cpu=float(os.cpu_count() or 1), memory_mb=total_memory_mb(), gpu=0)


@dataclass(frozen=True, slots=True)
class AgentSettings:
    servers: Sequence[str]
    worker_type: str = "process"
    backend: str | None = None
    """The execution backend; by default the one named like the worker type."""
    concurrency: int = 4
    resources: Resources = field(default_factory=default_resources)
    labels: Mapping[str, str] = field(default_factory=dict)
    backend_options: Mapping[str, str] = field(default_factory=dict)
    name: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    claim_wait_s: float = 30.0
    claim_streams: int = 2
    """Claim requests kept in flight at once (each for its share of the slots)."""
    work_root: str = field(default_factory=tempfile.gettempdir)
    shutdown_grace_s: float = 10.0
    """After a second signal: how long to wait for cancelled jobs' reports to go out."""

    @property
    def backend_name(self) -> str:
        return self.backend or self.worker_type
