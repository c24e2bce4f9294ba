"""The Store protocol: everything the service needs from a database.

Each method is one transaction: a use case's storage step either happens whole or not at
all. Every job transition is a compare-and-set on the job's current status (and, for agent
reports, on the claiming worker and attempt), so a stale or duplicate request changes
nothing. Drivers translate rows into domain objects and driver errors into ``StorageError``.
Decisions (retry or fail, backoff) come from ``domain``; drivers only apply them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from blixard.domain.jobs import Attempt, Job, NewJob
from blixard.domain.reports import Report, ReportKind, ReportResult
from blixard.domain.states import JobStatus
from blixard.domain.workers import Worker, WorkerSpec, WorkerStatus

WorkListener = Callable[[], None]
JobsListener = Callable[[list[str]], None]


@dataclass(frozen=True, slots=True)
class Inserted:
    job: Job
    created: bool  # False: an existing job with the same (tenant, idempotency_key)


@dataclass(frozen=True, slots=True)
class JobQuery:
    status: Sequence[JobStatus] = ()
    queue: str | None = None
    tenant: str | None = None
    worker_type: str | None = None
    group_id: str | None = None
    limit: int = 50
    before: str | None = None  # cursor: return jobs with id < before (newest first)


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[Job]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    worker_id: str
    limit: int
    lease_ttl_s: float


@dataclass(frozen=True, slots=True)
class RunningJob:
    job_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    worker: Worker
    cancel: list[str]  # job ids the worker must stop: cancelled, reassigned or unknown
    renewed: int


@dataclass(frozen=True, slots=True)
class Reaped:
    job: Job
    reason: str  # "lease_expired" | "timeout"


@dataclass(frozen=True, slots=True)
class Stats:
    jobs_by_status: dict[str, int]
    jobs_by_queue: dict[str, dict[str, int]]
    workers_by_status: dict[str, int]
    oldest_pending_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Store(Protocol):
    """One database. ``open`` applies pending migrations; every other call is a transaction."""

    url: str

    async def open(self, *, migrate: bool = True) -> None:
        """Connect; with ``migrate``, apply pending migrations (SchemaTooNew if the database
        is newer than this code)."""
        ...

    async def close(self) -> None: ...

    async def migrate(self) -> list[int]:
        """Apply pending migrations; the versions applied."""
        ...

    async def schema_version(self) -> int: ...

    # jobs ------------------------------------------------------------------------------
    async def insert_jobs(self, jobs: Sequence[NewJob]) -> list[Inserted]:
        """Insert all or none; an idempotency key already used in the tenant returns the
        existing job with ``created=False``. Creates unknown queues and tenants. A job with
        ``depends_on`` starts blocked (or cancelled, if a parent already failed); every
        parent must exist in the job's tenant (or come earlier in the batch), else
        ValidationError naming it."""
        ...

    async def get_job(self, job_id: str) -> Job | None: ...

    async def get_jobs(self, job_ids: Sequence[str]) -> list[Job]: ...

    async def list_jobs(self, query: JobQuery) -> JobPage: ...

    async def job_attempts(self, job_id: str) -> list[Attempt]: ...

    async def cancel_job(self, job_id: str, now: float, reason: str) -> Job:
        """pending/claimed/in_progress -> cancelled; JobNotFound or InvalidTransition."""
        ...

    async def retry_job(self, job_id: str, now: float, extra_attempts: int) -> Job:
        """failed/cancelled -> pending with ``extra_attempts`` more attempts."""
        ...

    async def claim_jobs(self, request: ClaimRequest, now: float) -> list[Job]:
        """Atomically claim up to ``limit`` due pending jobs that fit the worker's type,
        labels, constraints and free capacity, within every queue, tenant and concurrency
        key limit, fairly between tenants (``domain.admission``); within a tenant in
        (priority desc, run_at, id) order. Jobs with parents carry ``parent_results``."""
        ...

    async def apply_reports(
        self, worker_id: str, reports: Sequence[Report], now: float
    ) -> list[ReportResult]:
        """Apply each report as a compare-and-set; one result per report, in order."""
        ...

    async def next_due_at(self) -> float | None:
        """The earliest run_at of any pending job, for sleeping until work is due."""
        ...

    async def reap_expired(self, now: float, limit: int) -> list[Reaped]:
        """Requeue (with backoff) or fail active jobs whose lease expired."""
        ...

    # workers ---------------------------------------------------------------------------
    async def register_worker(self, spec: WorkerSpec, now: float) -> Worker: ...

    async def heartbeat(
        self, worker_id: str, running: Sequence[RunningJob], now: float, lease_ttl_s: float
    ) -> HeartbeatResult:
        """Mark the worker seen, renew the leases of the listed jobs it still holds, and
        name the listed jobs it must stop. WorkerNotFound for an unknown worker."""
        ...

    async def get_worker(self, worker_id: str) -> Worker | None: ...

    async def list_workers(self, status: WorkerStatus | None = None) -> list[Worker]: ...

    async def set_worker_status(
        self, worker_id: str, status: WorkerStatus, now: float
    ) -> Worker: ...

    async def mark_lost_workers(self, now: float, older_than: float) -> list[Worker]:
        """Workers not seen since ``older_than`` become offline; those changed."""
        ...

    async def stats(self) -> Stats: ...

    # queues, tenants and groups (drivers: storage/*/queues.py) ---------------------------

    # schedules (drivers: storage/*/schedules.py) -----------------------------------------

    # copying a database ------------------------------------------------------------------
    async def export_jobs(self, after: str | None, limit: int) -> list[Job]:
        """Up to ``limit`` jobs with id > ``after``, in id order."""
        ...

    async def export_attempts(self, job_ids: Sequence[str]) -> list[Attempt]: ...

    async def import_records(
        self, jobs: Sequence[Job], attempts: Sequence[Attempt], workers: Sequence[Worker]
    ) -> int:
        """Insert verbatim, in one transaction; a record whose key already exists is left
        alone, so an interrupted copy can simply run again. The count of new jobs."""
        ...

    # several servers ---------------------------------------------------------------------
    async def listen(self, on_work: WorkListener, on_jobs: JobsListener) -> None:
        """Call ``on_work()`` when work may have become claimable and ``on_jobs(ids)`` when
        jobs changed, for changes made by other processes (PostgreSQL LISTEN/NOTIFY). A
        single-process store does nothing: the service already knows its own changes."""
        ...

    async def try_lead(self, role: str) -> bool:
        """True while this process holds the singleton ``role`` (the reaper, ...); a role
        whose holder died is taken over by the next caller."""
        ...


__all__ = [
    "ClaimRequest",
    "HeartbeatResult",
    "Inserted",
    "JobPage",
    "JobQuery",
    "Reaped",
    "Report",
    "ReportKind",
    "ReportResult",
    "RunningJob",
    "Stats",
    "Store",
]
