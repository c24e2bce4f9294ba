"""Workers: what an agent registers, and the worker record the control plane keeps."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from blixard.domain import validation as v


class WorkerStatus(enum.StrEnum):
    ONLINE = "online"
    DRAINING = "draining"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class Resources:
    cpu: float = 0.0
    memory_mb: int = 0
    gpu: int = 0


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What an agent says about itself when it registers."""

    id: str
    worker_type: str
    name: str
    concurrency: int
    resources: Resources
    labels: Mapping[str, str] = field(default_factory=dict)
    capabilities: Mapping[str, Any] = field(default_factory=dict)
    host: str = ""
    pid: int = 0
    version: str = ""

    def __post_init__(self) -> None:
        v.check_name("worker_type", self.worker_type)
        v.check_range("concurrency", self.concurrency, 1, 100_000)
        v.check_range("resources.cpu", self.resources.cpu, 0, 100_000)
        v.check_range("resources.memory_mb", self.resources.memory_mb, 0, 1 << 40)
        v.check_range("resources.gpu", self.resources.gpu, 0, 1024)
        object.__setattr__(self, "labels", v.check_labels("labels", self.labels))


@dataclass(frozen=True, slots=True)
class Worker:
    id: str
    worker_type: str
    name: str
    concurrency: int
    resources: Resources
    labels: Mapping[str, str]
    capabilities: Mapping[str, Any]
    host: str
    pid: int
    version: str
    status: WorkerStatus
    registered_at: float
    last_seen_at: float
    running: int = 0
    used: Resources = Resources()
