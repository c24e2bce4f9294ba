"""Job use cases: submit, read, list, cancel, retry, wait."""

from __future__ import annotations

import time
from collections.abc import Sequence

from blixard.domain.jobs import Attempt, Job, JobSpec, NewJob
from blixard.errors import JobNotFound, ValidationError
from blixard.ids import new_ids
from blixard.service.context import UseCases
from blixard.storage.base import Inserted, JobPage, JobQuery


class JobService(UseCases):
    async def submit(self, specs: Sequence[JobSpec]) -> list[Inserted]:
        if not specs:
            raise ValidationError("jobs", "at least one job is required")
        if len(specs) > self._settings.max_bulk_submit:
            raise ValidationError(
                "jobs", f"at most {self._settings.max_bulk_submit} jobs per request"
            )
        now = self._clock.now()
        ids = new_ids(len(specs))
        jobs = [
            NewJob(
                id=job_id,
                spec=spec,
                created_at=now,
                run_at=spec.run_at if spec.run_at is not None else now,
            )
            for job_id, spec in zip(ids, specs, strict=True)
        ]
        inserted = await self._store.insert_jobs(jobs)
        self._work.notify()
        return inserted

    async def get(self, job_id: str) -> Job:
        job = await self._store.get_job(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    async def attempts(self, job_id: str) -> list[Attempt]:
        return await self._store.job_attempts(job_id)

    async def list_jobs(self, query: JobQuery) -> JobPage:
        return await self._store.list_jobs(query)

    async def cancel(self, job_id: str, reason: str = "cancelled by request") -> Job:
        job = await self._store.cancel_job(job_id, self._clock.now(), reason)
        self._watchers.notify([job_id])
        self._work.notify()  # dependants that run anyway may be claimable now
        return job

    async def retry(self, job_id: str, extra_attempts: int = 1) -> Job:
        if not 1 <= extra_attempts <= 1000:
            raise ValidationError("attempts", "must be between 1 and 1000")
        job = await self._store.retry_job(job_id, self._clock.now(), extra_attempts)
        self._work.notify()
        self._watchers.notify([job_id])
        return job

    async def wait(self, job_id: str, timeout_s: float) -> Job:
        """The job once it is terminal, or as it is when ``timeout_s`` runs out."""
        timeout_s = min(max(timeout_s, 0.0), self._settings.max_wait_s)
        deadline = time.monotonic() + timeout_s
        signal = self._watchers.watch(job_id)
        try:
            while True:
                epoch = signal.epoch
                job = await self.get(job_id)
                remaining = deadline - time.monotonic()
                if job.status.terminal or remaining <= 0 or self._work.closed:
                    return job
                await signal.wait(epoch, min(remaining, self._settings.poll_backstop_s))
        finally:
            self._watchers.unwatch(job_id)
