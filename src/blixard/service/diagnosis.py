"""The unschedulable diagnosis: which waiting jobs fit no online worker, and why.

A waiting (pending or blocked) job is unschedulable when no online worker could ever run
it, however idle: no worker of its types, none with its labels, none big enough
(``domain.placement.unschedulable_reason``). Such a job waits until a fitting worker
registers; it is not an error, but it is worth telling the operator. Jobs that merely wait
for free capacity, a limit or their parents are not unschedulable.

The summary for the stats groups the waiting jobs by shape in the store, which reads every
waiting job: a summary is reused for a while (at least ``REUSE_MIN_S``, longer when it was
slow to compute), so a dashboard polling the stats does not keep the database busy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from time import monotonic

from blixard.domain.jobs import Job
from blixard.domain.placement import unschedulable_reason
from blixard.domain.states import JobStatus
from blixard.domain.workers import Worker, WorkerStatus
from blixard.service.context import ServiceContext, UseCases

WAITING = frozenset({JobStatus.PENDING, JobStatus.BLOCKED})
REUSE_MIN_S = 1.0
REUSE_FACTOR = 20.0
"""A summary is reused for max(REUSE_MIN_S, REUSE_FACTOR x the time it took)."""
MAX_KEPT = 256


@dataclass(frozen=True, slots=True)
class Unschedulable:
    """How many waiting jobs fit no online worker, with each reason and its job count (most
    jobs first)."""

    count: int
    reasons: list[tuple[str, int]]


@dataclass(frozen=True, slots=True)
class _Kept:
    summary: Unschedulable
    until: float  # time.monotonic()


class Diagnosis(UseCases):
    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self._kept: dict[str | None, _Kept] = {}

    async def _online(self) -> list[Worker]:
        return await self._store.list_workers(WorkerStatus.ONLINE)

    async def for_jobs(self, jobs: Sequence[Job]) -> dict[str, str]:
        """The reason of each waiting job of ``jobs`` that fits no online worker, by id."""
        waiting = [j for j in jobs if j.status in WAITING]
        if not waiting:
            return {}
        online = await self._online()
        out: dict[str, str] = {}
        for job in waiting:
            reason = unschedulable_reason(job.worker_types, job.requirements, online)
            if reason is not None:
                out[job.id] = reason
        return out

    async def for_job(self, job: Job) -> str | None:
        return (await self.for_jobs([job])).get(job.id)

    async def summary(self, tenant: str | None = None) -> Unschedulable:
        """Over every waiting job (of ``tenant``, when given); possibly a few seconds old."""
        started = monotonic()
        kept = self._kept.get(tenant)
        if kept is not None and started < kept.until:
            return kept.summary
        summary = await self._summarise(tenant)
        done = monotonic()
        if len(self._kept) >= MAX_KEPT:
            self._kept.clear()
        self._kept[tenant] = _Kept(
            summary, done + max(REUSE_MIN_S, (done - started) * REUSE_FACTOR)
        )
        return summary

    async def _summarise(self, tenant: str | None) -> Unschedulable:
        shapes = await self._store.pending_shapes(tenant)
        if not shapes:
            return Unschedulable(0, [])
        online = await self._online()
        reasons: dict[str, int] = {}
        for shape in shapes:
            reason = unschedulable_reason(shape.worker_types, shape.requirements, online)
            if reason is not None:
                reasons[reason] = reasons.get(reason, 0) + shape.count
        ranked = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
        return Unschedulable(sum(reasons.values()), ranked)
