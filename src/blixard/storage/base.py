"""The Store protocol: everything the service needs from a database.

Each method is one transaction: a use case's storage step either happens whole or not at
all. Every job transition is a compare-and-set on the job's current status (and, for agent
reports, on the claiming worker and attempt), so a stale or duplicate request changes
nothing. Drivers translate rows into domain objects and driver errors into ``StorageError``.
Decisions (retry or fail, backoff) come from ``domain``; drivers only apply them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from blixard.domain.groups import GroupStatus
from blixard.domain.jobs import Attempt, Job, NewJob, Requirements
from blixard.domain.queues import Queue, RateLimit, Tenant
from blixard.domain.reports import Report, ReportKind, ReportResult
from blixard.domain.schedules import DueSchedule, Schedule
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
    """Counts over every job, or over one tenant's jobs when ``tenant`` is set (workers are
    shared: always all of them)."""

    jobs_by_status: dict[str, int]
    jobs_by_queue: dict[str, dict[str, int]]
    workers_by_status: dict[str, int]
    oldest_pending_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    jobs_by_tenant: dict[str, dict[str, int]] = field(default_factory=dict)
    tenant: str | None = None


class Unset(enum.Enum):
    """A field a partial update leaves alone (None is a value there: "no limit")."""

    UNSET = "unset"


UNSET: Final = Unset.UNSET


def _running(counts: dict[str, int]) -> int:
    return counts.get("claimed", 0) + counts.get("in_progress", 0)


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """A queue's settings with its jobs: counts by status (every status, zeros included)
    and when the oldest pending job was created."""

    queue: Queue
    jobs_by_status: dict[str, int]
    oldest_pending_at: float | None = None

    @property
    def running(self) -> int:
        """Jobs claimed or in progress: what ``max_running`` caps."""
        return _running(self.jobs_by_status)


@dataclass(frozen=True, slots=True)
class TenantInfo:
    tenant: Tenant
    jobs_by_status: dict[str, int]
    oldest_pending_at: float | None = None

    @property
    def running(self) -> int:
        return _running(self.jobs_by_status)


@dataclass(frozen=True, slots=True)
class GroupSummary:
    """A group's jobs counted by status (every status, zeros included), its aggregate
    status (``domain.groups``) and times: first created, last updated, and when the last
    job ended (None until every job has)."""

    group_id: str
    status: GroupStatus
    jobs_by_status: dict[str, int]
    total: int
    created_at: float
    updated_at: float
    finished_at: float | None


@dataclass(frozen=True, slots=True)
class PendingShape:
    """Waiting (pending or blocked) jobs that ask for the same worker types and
    requirements (labels and constraints included): what the unschedulable diagnosis
    looks at, once per shape instead of once per job."""

    worker_types: tuple[str, ...]
    requirements: Requirements
    count: int


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

    async def next_token_at(self, now: float) -> float | None:
        """When a rate-limited queue that ran out of tokens, with due jobs waiting, gets a
        token back; None when no such queue waits."""
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

    async def stats(self, tenant: str | None = None) -> Stats:
        """Jobs by status, queue and tenant (only ``tenant``'s jobs when given), workers by
        status, and the creation time of the oldest pending job."""
        ...

    # queues, tenants and groups (drivers: storage/*/queues.py) ---------------------------
    async def list_queues(self) -> list[QueueInfo]:
        """Every queue (a row, or a job naming it), by name, with its job counts."""
        ...

    async def get_queue(self, name: str) -> QueueInfo | None:
        """None when no row and no job names the queue."""
        ...

    async def configure_queue(
        self,
        name: str,
        *,
        paused: bool | None = None,
        max_running: int | Unset | None = UNSET,
        rate: RateLimit | Unset | None = UNSET,
        now: float,
    ) -> QueueInfo:
        """Change the given settings (None for ``paused``, UNSET for the others: leave it),
        creating the queue if it is missing. Setting a rate limit fills its bucket; None
        removes a limit. Values are validated by the caller (``domain.queues``). Resuming
        the queue or loosening a limit announces new work to other servers."""
        ...

    async def list_tenants(self) -> list[TenantInfo]:
        """Every tenant (a row, or a job naming it), by name, with its job counts."""
        ...

    async def get_tenant(self, name: str) -> TenantInfo | None: ...

    async def configure_tenant(
        self,
        name: str,
        *,
        weight: float | None = None,
        max_running: int | Unset | None = UNSET,
        now: float,
    ) -> TenantInfo:
        """Like ``configure_queue``: a partial update that creates the tenant if missing."""
        ...

    async def group_summary(self, group_id: str) -> GroupSummary | None:
        """None when no job carries ``group_id``."""
        ...

    async def cancel_group(self, group_id: str, now: float, reason: str) -> list[Job]:
        """Cancel every job of the group that has not ended (blocked, pending, claimed or
        in progress; running ones get an attempt row, as ``cancel_job`` does), and settle
        their dependants outside the group. The jobs cancelled; GroupNotFound when no job
        carries ``group_id``."""
        ...

    async def pending_shapes(self, tenant: str | None = None) -> list[PendingShape]:
        """The distinct (worker types, requirements) of waiting jobs (pending or blocked),
        of ``tenant`` or of all, with how many jobs have each; most common first."""
        ...

    # schedules (drivers: storage/*/schedules.py) -----------------------------------------
    async def create_schedule(self, schedule: Schedule) -> Schedule:
        """Insert it; Conflict when its tenant already has a schedule of that name."""
        ...

    async def get_schedule(self, schedule_id: str) -> Schedule | None: ...

    async def list_schedules(self, tenant: str | None = None) -> list[Schedule]:
        """Every schedule (of ``tenant`` when given), by tenant and name."""
        ...

    async def set_schedule_paused(
        self, schedule_id: str, paused: bool, now: float, next_fire_at: float | None = None
    ) -> Schedule:
        """Pause or resume; ``next_fire_at``, when given, replaces the next slot (a resume
        starts after the pause). ScheduleNotFound."""
        ...

    async def delete_schedule(self, schedule_id: str) -> None:
        """ScheduleNotFound when there is none. The jobs it fired stay."""
        ...

    async def due_schedules(self, now: float, limit: int) -> list[DueSchedule]:
        """Up to ``limit`` unpaused schedules whose ``next_fire_at`` <= ``now``, earliest
        first, each with the status of the last job it fired."""
        ...

    async def advance_schedule(
        self,
        schedule_id: str,
        expected_next_fire_at: float,
        next_fire_at: float,
        now: float,
        last_fired_at: float | None = None,
        last_job_id: str | None = None,
    ) -> bool:
        """Compare-and-set: move ``next_fire_at`` on from ``expected_next_fire_at`` and,
        when given, record the last fired slot and its job. False (nothing changed) when
        the schedule's next slot is not ``expected_next_fire_at`` any more (another server
        advanced it, or it was resumed) or it is gone."""
        ...

    async def schedule_jobs(self, schedule_id: str, limit: int) -> list[Job]:
        """The latest ``limit`` jobs the schedule fired, newest first."""
        ...

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
    "UNSET",
    "ClaimRequest",
    "GroupSummary",
    "HeartbeatResult",
    "Inserted",
    "JobPage",
    "JobQuery",
    "PendingShape",
    "QueueInfo",
    "Reaped",
    "Report",
    "ReportKind",
    "ReportResult",
    "RunningJob",
    "Stats",
    "Store",
    "TenantInfo",
    "Unset",
]
