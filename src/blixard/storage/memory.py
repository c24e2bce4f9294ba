"""An in-memory ``Store`` for tests (url ``memory://``).

Plain dicts behind one ``asyncio.Lock``: every method takes the lock and does no ``await``
while holding it, so each call is atomic, like a transaction. The semantics are the ones
every driver shares (the conformance suite in ``tests/storage`` pins them down); this driver
is the reference reading of them, kept short and obvious rather than fast.

Jobs are kept as frozen ``Job`` values and replaced on every change; JSON values (payload,
result, error) are normalised through a JSON round-trip on the way in and copied on the way
out, so callers never share mutable state with the store.
"""

from __future__ import annotations

import asyncio
import copy
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from blixard.domain import states
from blixard.domain.jobs import Attempt, Job, NewJob, error_info, pending_job
from blixard.domain.placement import Capacity, free_capacity, labels_match, type_matches
from blixard.domain.reports import JobState, WritePlan, plan_expiry, plan_reports
from blixard.domain.states import JobStatus
from blixard.domain.workers import Resources, Worker, WorkerSpec, WorkerStatus
from blixard.errors import JobNotFound, StorageError, ValidationError, WorkerNotFound
from blixard.storage.base import (
    ClaimRequest,
    HeartbeatResult,
    Inserted,
    JobPage,
    JobQuery,
    JobsListener,
    Reaped,
    Report,
    ReportResult,
    RunningJob,
    Stats,
    WorkListener,
)

SCHEMA_VERSION = 1


def _json_value(value: Any, field: str) -> Any:
    """A detached, JSON-normalised copy of ``value`` (what a SQL driver would read back)."""
    if value is None:
        return None
    try:
        return orjson.loads(orjson.dumps(value))
    except TypeError as exc:
        raise ValidationError(field, f"is not JSON-serialisable: {exc}") from exc


@dataclass(frozen=True, slots=True)
class _WorkerRow:
    spec: WorkerSpec
    status: WorkerStatus
    registered_at: float
    last_seen_at: float


class MemoryStore:
    """The ``Store`` protocol over Python dicts; for tests and experiments."""

    url = "memory://"

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._lock = asyncio.Lock()
        self._jobs: dict[str, Job] = {}
        self._deadlines: dict[str, float | None] = {}  # job id -> hard timeout deadline
        self._idempotency: dict[tuple[str, str], str] = {}  # (tenant, key) -> job id
        self._attempts: dict[str, list[Attempt]] = {}
        self._workers: dict[str, _WorkerRow] = {}

    # lifecycle -------------------------------------------------------------------------
    async def open(self, *, migrate: bool = True) -> None:
        return None

    async def close(self) -> None:
        return None

    async def migrate(self) -> list[int]:
        return []

    async def schema_version(self) -> int:
        return SCHEMA_VERSION

    # helpers (call with the lock held) ---------------------------------------------------
    @staticmethod
    def _out(job: Job) -> Job:
        """A snapshot the caller may keep: no mutable value shared with the store."""
        return replace(
            job,
            payload=copy.deepcopy(job.payload),
            result=copy.deepcopy(job.result),
            error=copy.deepcopy(job.error),
        )

    @staticmethod
    def _out_attempt(attempt: Attempt) -> Attempt:
        return replace(attempt, error=copy.deepcopy(attempt.error))

    def _active_jobs_of(self, worker_id: str) -> list[Job]:
        return [j for j in self._jobs.values() if j.status.active and j.claimed_by == worker_id]

    def _worker_out(self, row: _WorkerRow) -> Worker:
        active = self._active_jobs_of(row.spec.id)
        spec = row.spec
        return Worker(
            id=spec.id,
            worker_type=spec.worker_type,
            name=spec.name,
            concurrency=spec.concurrency,
            resources=spec.resources,
            labels=dict(spec.labels),
            capabilities=copy.deepcopy(dict(spec.capabilities)),
            host=spec.host,
            pid=spec.pid,
            version=spec.version,
            status=row.status,
            registered_at=row.registered_at,
            last_seen_at=row.last_seen_at,
            running=len(active),
            used=Resources(
                cpu=sum(j.requirements.cpu for j in active),
                memory_mb=sum(j.requirements.memory_mb for j in active),
                gpu=sum(j.requirements.gpu for j in active),
            ),
        )

    def _record_attempt(
        self,
        job: Job,
        now: float,
        outcome: str,
        error: dict[str, Any] | None,
    ) -> None:
        """Record the end of ``job``'s current attempt (``job`` as it was while active)."""
        self._attempts.setdefault(job.id, []).append(
            Attempt(
                job_id=job.id,
                attempt=job.attempt,
                worker_id=job.claimed_by,
                claimed_at=job.claimed_at,
                started_at=job.started_at,
                finished_at=now,
                outcome=outcome,
                error=copy.deepcopy(error),
            )
        )

    def _state(self, job: Job) -> JobState:
        return JobState(
            job.id,
            job.status,
            job.claimed_by,
            job.attempt,
            job.max_attempts,
            job.backoff,
            job.claimed_at,
            job.started_at,
            self._deadlines.get(job.id),
        )

    def _apply_plan(self, plan: WritePlan, now: float) -> None:
        """Execute a plan from ``domain.reports`` (the same one the SQL drivers execute)."""
        jobs = self._jobs
        for job_id, started_at in plan.starts:
            jobs[job_id] = replace(
                jobs[job_id], status=JobStatus.IN_PROGRESS, started_at=started_at, updated_at=now
            )
        for job_id, result, started_at in plan.completes:
            self._deadlines[job_id] = None
            jobs[job_id] = replace(
                jobs[job_id],
                status=JobStatus.COMPLETED,
                result=result,
                error=None,
                started_at=started_at,
                finished_at=now,
                lease_expires_at=None,
                updated_at=now,
            )
        for job_id, run_at, error in plan.requeues:
            self._deadlines[job_id] = None
            jobs[job_id] = replace(
                jobs[job_id],
                status=JobStatus.PENDING,
                run_at=run_at,
                error=error,
                claimed_by=None,
                claimed_at=None,
                started_at=None,
                lease_expires_at=None,
                updated_at=now,
            )
        for job_id, error in plan.fails:
            self._deadlines[job_id] = None
            jobs[job_id] = replace(
                jobs[job_id],
                status=JobStatus.FAILED,
                error=error,
                finished_at=now,
                lease_expires_at=None,
                updated_at=now,
            )
        for a in plan.attempts:
            self._attempts.setdefault(a.job_id, []).append(
                Attempt(
                    a.job_id,
                    a.attempt,
                    a.worker_id,
                    a.claimed_at,
                    a.started_at,
                    a.finished_at,
                    a.outcome,
                    copy.deepcopy(a.error),
                )
            )

    # jobs ------------------------------------------------------------------------------
    async def insert_jobs(self, jobs: Sequence[NewJob]) -> list[Inserted]:
        async with self._lock:
            # Build everything first so a bad entry inserts nothing (all or none).
            staged: dict[str, Job] = {}
            staged_keys: dict[tuple[str, str], str] = {}
            plan: list[tuple[str, bool]] = []
            for new in jobs:
                spec = new.spec
                if spec.idempotency_key is not None:
                    pair = (spec.tenant, spec.idempotency_key)
                    existing = self._idempotency.get(pair) or staged_keys.get(pair)
                    if existing is not None:
                        plan.append((existing, False))
                        continue
                    staged_keys[pair] = new.id
                if new.id in self._jobs or new.id in staged:
                    raise StorageError(f"duplicate job id {new.id}", job_id=new.id)
                staged[new.id] = pending_job(new)
                plan.append((new.id, True))
            self._jobs.update(staged)
            for job_id in staged:
                self._deadlines[job_id] = None
            self._idempotency.update(staged_keys)
            return [Inserted(self._out(self._jobs[jid]), created) for jid, created in plan]

    async def get_job(self, job_id: str) -> Job | None:
        async with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else self._out(job)

    async def get_jobs(self, job_ids: Sequence[str]) -> list[Job]:
        """The jobs that exist, in the order asked (each once); unknown ids are skipped."""
        async with self._lock:
            return [
                self._out(self._jobs[jid]) for jid in dict.fromkeys(job_ids) if jid in self._jobs
            ]

    async def list_jobs(self, query: JobQuery) -> JobPage:
        async with self._lock:
            wanted = set(query.status)
            page: list[Job] = []
            for job in sorted(self._jobs.values(), key=lambda j: j.id, reverse=True):
                if len(page) >= query.limit:
                    break
                if query.before is not None and not job.id < query.before:
                    continue
                if wanted and job.status not in wanted:
                    continue
                if query.queue is not None and job.queue != query.queue:
                    continue
                if query.tenant is not None and job.tenant != query.tenant:
                    continue
                if query.worker_type is not None and query.worker_type not in job.worker_types:
                    continue
                page.append(self._out(job))
            full = query.limit > 0 and len(page) == query.limit
            return JobPage(jobs=page, next_cursor=page[-1].id if full else None)

    async def job_attempts(self, job_id: str) -> list[Attempt]:
        async with self._lock:
            attempts = sorted(self._attempts.get(job_id, []), key=lambda a: a.attempt)
            return [self._out_attempt(a) for a in attempts]

    async def cancel_job(self, job_id: str, now: float, reason: str) -> Job:
        async with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise JobNotFound(job_id)
            states.CANCEL.check(job.status, job_id)
            error = error_info("cancelled", reason)
            if job.status.active:
                self._record_attempt(job, now, "cancelled", error)
            self._deadlines[job_id] = None
            job = replace(
                job,
                status=JobStatus.CANCELLED,
                error=error,
                finished_at=now,
                lease_expires_at=None,
                updated_at=now,
            )
            self._jobs[job_id] = job
            return self._out(job)

    async def retry_job(self, job_id: str, now: float, extra_attempts: int) -> Job:
        async with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise JobNotFound(job_id)
            states.RETRY.check(job.status, job_id)
            self._deadlines[job_id] = None
            job = replace(
                job,
                status=JobStatus.PENDING,
                run_at=now,
                max_attempts=job.attempt + extra_attempts,
                finished_at=None,
                result=None,
                error=None,
                claimed_by=None,
                claimed_at=None,
                started_at=None,
                lease_expires_at=None,
                updated_at=now,
            )
            self._jobs[job_id] = job
            return self._out(job)

    async def claim_jobs(self, request: ClaimRequest, now: float) -> list[Job]:
        async with self._lock:
            row = self._workers.get(request.worker_id)
            if row is None:
                raise WorkerNotFound(request.worker_id)
            if row.status is not WorkerStatus.ONLINE:
                return []
            worker = self._worker_out(row)
            capacity: Capacity = free_capacity(
                concurrency=worker.concurrency,
                cpu=worker.resources.cpu,
                memory_mb=worker.resources.memory_mb,
                gpu=worker.resources.gpu,
                running=worker.running,
                used_cpu=worker.used.cpu,
                used_memory_mb=worker.used.memory_mb,
                used_gpu=worker.used.gpu,
                limit=request.limit,
            )
            if capacity.slots <= 0:
                return []
            due = sorted(
                (
                    j
                    for j in self._jobs.values()
                    if j.status is JobStatus.PENDING and j.run_at <= now
                ),
                key=lambda j: (-j.priority, j.run_at, j.id),
            )
            claimed: list[Job] = []
            for job in due:
                if capacity.slots <= 0:
                    break
                if not type_matches(job.worker_types, worker.worker_type):
                    continue
                if not labels_match(job.requirements.labels, worker.labels):
                    continue
                if not capacity.fits(job.requirements):
                    continue
                capacity.take(job.requirements)
                taken = replace(
                    job,
                    status=JobStatus.CLAIMED,
                    attempt=job.attempt + 1,
                    claimed_by=worker.id,
                    claimed_at=now,
                    lease_expires_at=now + request.lease_ttl_s,
                    updated_at=now,
                )
                self._deadlines[job.id] = (
                    None if job.timeout_s is None else now + job.timeout_s + request.lease_ttl_s
                )
                self._jobs[job.id] = taken
                claimed.append(self._out(taken))
            return claimed

    async def apply_reports(
        self, worker_id: str, reports: Sequence[Report], now: float
    ) -> list[ReportResult]:
        async with self._lock:
            # Normalise every JSON value first, so a bad one applies nothing.
            reports = [
                replace(
                    r, result=_json_value(r.result, "result"), error=_json_value(r.error, "error")
                )
                for r in reports
            ]
            states = {
                r.job_id: self._state(self._jobs[r.job_id])
                for r in reports
                if r.job_id in self._jobs
            }
            results, plan = plan_reports(worker_id, reports, states, now, self._rng)
            self._apply_plan(plan, now)
            return results

    async def next_due_at(self) -> float | None:
        async with self._lock:
            due = [j.run_at for j in self._jobs.values() if j.status is JobStatus.PENDING]
            return min(due, default=None)

    async def reap_expired(self, now: float, limit: int) -> list[Reaped]:
        async with self._lock:
            expired = sorted(
                (
                    j
                    for j in self._jobs.values()
                    if j.status.active
                    and j.lease_expires_at is not None
                    and j.lease_expires_at < now
                ),
                key=lambda j: (j.lease_expires_at, j.id),
            )[: max(limit, 0)]
            reasons, plan = plan_expiry([self._state(j) for j in expired], now, self._rng)
            self._apply_plan(plan, now)
            return [Reaped(self._out(self._jobs[job_id]), reason) for job_id, reason in reasons]

    # workers ---------------------------------------------------------------------------
    async def register_worker(self, spec: WorkerSpec, now: float) -> Worker:
        async with self._lock:
            previous = self._workers.get(spec.id)
            row = _WorkerRow(
                spec=replace(
                    spec,
                    labels=dict(spec.labels),
                    capabilities=copy.deepcopy(dict(spec.capabilities)),
                ),
                status=WorkerStatus.ONLINE,
                registered_at=now if previous is None else previous.registered_at,
                last_seen_at=now,
            )
            self._workers[spec.id] = row
            return self._worker_out(row)

    async def heartbeat(
        self, worker_id: str, running: Sequence[RunningJob], now: float, lease_ttl_s: float
    ) -> HeartbeatResult:
        async with self._lock:
            row = self._workers.get(worker_id)
            if row is None:
                raise WorkerNotFound(worker_id)
            status = WorkerStatus.ONLINE if row.status is WorkerStatus.OFFLINE else row.status
            row = replace(row, status=status, last_seen_at=now)
            self._workers[worker_id] = row
            cancel: list[str] = []
            renewed = 0
            for item in running:
                job = self._jobs.get(item.job_id)
                if (
                    job is None
                    or not job.status.active
                    or job.claimed_by != worker_id
                    or job.attempt != item.attempt
                ):
                    cancel.append(item.job_id)
                    continue
                lease = now + lease_ttl_s
                deadline = self._deadlines.get(job.id)
                if deadline is not None:
                    lease = min(lease, deadline)
                self._jobs[job.id] = replace(job, lease_expires_at=lease)
                renewed += 1
            return HeartbeatResult(worker=self._worker_out(row), cancel=cancel, renewed=renewed)

    async def get_worker(self, worker_id: str) -> Worker | None:
        async with self._lock:
            row = self._workers.get(worker_id)
            return None if row is None else self._worker_out(row)

    async def list_workers(self, status: WorkerStatus | None = None) -> list[Worker]:
        async with self._lock:
            rows = sorted(self._workers.values(), key=lambda r: (r.registered_at, r.spec.id))
            return [self._worker_out(r) for r in rows if status is None or r.status is status]

    async def set_worker_status(self, worker_id: str, status: WorkerStatus, now: float) -> Worker:
        async with self._lock:
            row = self._workers.get(worker_id)
            if row is None:
                raise WorkerNotFound(worker_id)
            row = replace(row, status=status)
            self._workers[worker_id] = row
            return self._worker_out(row)

    async def mark_lost_workers(self, now: float, older_than: float) -> list[Worker]:
        async with self._lock:
            lost: list[_WorkerRow] = []
            for worker_id, row in self._workers.items():
                if row.status is not WorkerStatus.OFFLINE and row.last_seen_at < older_than:
                    changed = replace(row, status=WorkerStatus.OFFLINE)
                    self._workers[worker_id] = changed
                    lost.append(changed)
            lost.sort(key=lambda r: (r.registered_at, r.spec.id))
            return [self._worker_out(r) for r in lost]

    # copying -----------------------------------------------------------------------------
    async def export_jobs(self, after: str | None, limit: int) -> list[Job]:
        async with self._lock:
            ids = sorted(i for i in self._jobs if after is None or i > after)[:limit]
            return [self._jobs[i] for i in ids]

    async def export_attempts(self, job_ids: Sequence[str]) -> list[Attempt]:
        async with self._lock:
            return [
                a
                for i in job_ids
                for a in sorted(self._attempts.get(i, []), key=lambda a: a.attempt)
            ]

    async def import_records(
        self, jobs: Sequence[Job], attempts: Sequence[Attempt], workers: Sequence[Worker]
    ) -> int:
        async with self._lock:
            for w in workers:
                if w.id not in self._workers:
                    spec = WorkerSpec(
                        id=w.id,
                        worker_type=w.worker_type,
                        name=w.name,
                        concurrency=w.concurrency,
                        resources=w.resources,
                        labels=w.labels,
                        capabilities=w.capabilities,
                        host=w.host,
                        pid=w.pid,
                        version=w.version,
                    )
                    self._workers[w.id] = _WorkerRow(
                        spec, w.status, w.registered_at, w.last_seen_at
                    )
            created = 0
            for job in jobs:
                key = (job.tenant, job.idempotency_key) if job.idempotency_key else None
                if job.id in self._jobs or (key and key in self._idempotency):
                    continue
                self._jobs[job.id] = job
                self._deadlines[job.id] = None
                if key:
                    self._idempotency[key] = job.id
                created += 1
            for a in attempts:
                known = self._attempts.setdefault(a.job_id, [])
                if all(k.attempt != a.attempt for k in known):
                    known.append(a)
            return created

    # One process by definition: nothing to hear from others, every role is ours.
    async def listen(self, on_work: WorkListener, on_jobs: JobsListener) -> None:
        return None

    async def try_lead(self, role: str) -> bool:
        return True

    async def stats(self) -> Stats:
        async with self._lock:
            by_status = {str(s): 0 for s in JobStatus}
            by_queue: dict[str, dict[str, int]] = {}
            oldest: float | None = None
            for job in self._jobs.values():
                by_status[str(job.status)] += 1
                per_queue = by_queue.setdefault(job.queue, {})
                per_queue[str(job.status)] = per_queue.get(str(job.status), 0) + 1
                if job.status is JobStatus.PENDING and (oldest is None or job.created_at < oldest):
                    oldest = job.created_at
            workers = {str(s): 0 for s in WorkerStatus}
            for row in self._workers.values():
                workers[str(row.status)] += 1
            return Stats(
                jobs_by_status=by_status,
                jobs_by_queue=by_queue,
                workers_by_status=workers,
                oldest_pending_at=oldest,
            )
