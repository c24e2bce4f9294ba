"""Worker use cases: register, heartbeat, claim (long-poll), report, drain."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from blixard.domain.jobs import Job
from blixard.domain.reports import Report, ReportResult
from blixard.domain.states import JobStatus
from blixard.domain.workers import Worker, WorkerSpec, WorkerStatus
from blixard.errors import JobNotFound, StaleReport, ValidationError, WorkerNotFound
from blixard.service.context import UseCases
from blixard.storage.base import ClaimRequest, RunningJob

StillWanted = Callable[[], Awaitable[bool]]


async def _always() -> bool:
    return True


@dataclass(frozen=True, slots=True)
class HeartbeatAnswer:
    worker: Worker
    cancel: list[str]
    drain: bool


class WorkerService(UseCases):
    async def register(self, spec: WorkerSpec) -> Worker:
        worker = await self._store.register_worker(spec, self._clock.now())
        self._work.notify()
        return worker

    async def get(self, worker_id: str) -> Worker:
        worker = await self._store.get_worker(worker_id)
        if worker is None:
            raise WorkerNotFound(worker_id)
        return worker

    async def list_workers(self, status: WorkerStatus | None = None) -> list[Worker]:
        return await self._store.list_workers(status)

    async def heartbeat(self, worker_id: str, running: Sequence[RunningJob]) -> HeartbeatAnswer:
        result = await self._store.heartbeat(
            worker_id, running, self._clock.now(), self._settings.lease_ttl_s
        )
        drain = result.worker.status is WorkerStatus.DRAINING
        return HeartbeatAnswer(result.worker, result.cancel, drain)

    async def claim(
        self, worker_id: str, limit: int, wait_s: float, still_wanted: StillWanted = _always
    ) -> list[Job]:
        """Claim up to ``limit`` jobs; with none ready, wait up to ``wait_s`` for some."""
        if not 1 <= limit <= self._settings.max_claim_batch:
            raise ValidationError(
                "limit", f"must be between 1 and {self._settings.max_claim_batch}"
            )
        wait_s = min(max(wait_s, 0.0), self._settings.max_claim_wait_s)
        deadline = time.monotonic() + wait_s
        request = ClaimRequest(worker_id, limit, self._settings.lease_ttl_s)
        while True:
            epoch = self._work.epoch
            jobs = await self._store.claim_jobs(request, self._clock.now())
            remaining = deadline - time.monotonic()
            if jobs or remaining <= 0 or self._work.closed:
                return jobs
            sleep = min(remaining, self._settings.poll_backstop_s)
            next_due = await self._store.next_due_at()
            now = self._clock.now()
            if next_due is not None and next_due > now:  # delayed work: wake when it is due
                sleep = min(sleep, next_due - now)
            next_token = await self._store.next_token_at(now)
            if next_token is not None:  # a rate-limited queue refills: try again then
                sleep = min(sleep, max(next_token - now, 0.001))
            # Otherwise nothing is due, or what is due does not fit this worker now: a submit,
            # a requeue or freed capacity notifies the signal.
            await self._work.wait(epoch, sleep)
            if not await still_wanted():
                return []

    async def report(self, worker_id: str, reports: Sequence[Report]) -> list[ReportResult]:
        if not reports:
            return []
        results = await self._store.apply_reports(worker_id, reports, self._clock.now())
        changed = [r.job_id for r in results if r.applied]
        if changed:
            self._watchers.notify(changed)
        if any(r.applied and r.status is not JobStatus.IN_PROGRESS for r in results):
            self._work.notify()  # requeued work, or capacity freed on this worker
        return results

    async def report_one(self, worker_id: str, report: Report) -> ReportResult:
        """A single report; a stale or duplicate one raises StaleReport (HTTP 409)."""
        (result,) = await self.report(worker_id, [report])
        if result.status is None:
            raise JobNotFound(result.job_id)
        if not result.applied:
            raise StaleReport(
                f"report not applied to job {result.job_id}: {result.reason}",
                job_id=result.job_id,
                reason=result.reason,
                job_status=None if result.status is None else str(result.status),
            )
        return result

    async def drain(self, worker_id: str) -> Worker:
        """No new claims; running jobs finish; the agent exits when they have."""
        worker = await self.get(worker_id)
        if worker.status is WorkerStatus.ONLINE:
            worker = await self._store.set_worker_status(
                worker_id, WorkerStatus.DRAINING, self._clock.now()
            )
        return worker

    async def deregister(self, worker_id: str) -> Worker:
        """The agent is leaving: offline now, its unreported jobs come back by lease expiry."""
        return await self._store.set_worker_status(
            worker_id, WorkerStatus.OFFLINE, self._clock.now()
        )
