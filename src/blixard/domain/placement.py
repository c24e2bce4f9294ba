"""Placement: which job fits which worker, given what the worker already runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from blixard.domain.jobs import Requirements


@dataclass(slots=True)
class Capacity:
    """What a worker has free right now; ``take`` books a job's share of it."""

    slots: int
    cpu: float
    memory_mb: int
    gpu: int

    def fits(self, req: Requirements) -> bool:
        return (
            self.slots >= 1
            and req.cpu <= self.cpu + 1e-9
            and req.memory_mb <= self.memory_mb
            and req.gpu <= self.gpu
        )

    def take(self, req: Requirements) -> None:
        self.slots -= 1
        self.cpu -= req.cpu
        self.memory_mb -= req.memory_mb
        self.gpu -= req.gpu


def type_matches(job_types: Sequence[str], worker_type: str) -> bool:
    """An empty list means any worker type may run the job."""
    return not job_types or worker_type in job_types


def labels_match(required: Mapping[str, str], worker_labels: Mapping[str, str]) -> bool:
    return all(worker_labels.get(k) == val for k, val in required.items())


def free_capacity(
    *,
    concurrency: int,
    cpu: float,
    memory_mb: int,
    gpu: int,
    running: int,
    used_cpu: float,
    used_memory_mb: int,
    used_gpu: int,
    limit: int,
) -> Capacity:
    return Capacity(
        slots=max(0, min(limit, concurrency - running)),
        cpu=cpu - used_cpu,
        memory_mb=memory_mb - used_memory_mb,
        gpu=gpu - used_gpu,
    )
