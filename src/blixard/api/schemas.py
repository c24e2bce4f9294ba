"""Request and response schemas of the HTTP API; separate from the domain objects."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["blocked", "pending", "claimed", "in_progress", "completed", "failed", "cancelled"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConstraintIn(_In):
    label: str
    op: Literal["eq", "ne", "in", "not_in", "exists", "not_exists"] = "eq"
    values: list[str] = Field(
        default_factory=list, description="One value for eq/ne, 1-64 for in/not_in, none else."
    )


class PreferenceIn(_In):
    label: str
    values: list[str] = Field(min_length=1)
    weight: int = Field(1, ge=1, le=1000)


class RequirementsIn(_In):
    cpu: float = Field(0, ge=0, description="CPU cores the job needs (fractions allowed).")
    memory_mb: int = Field(0, ge=0)
    gpu: int = Field(0, ge=0)
    labels: dict[str, str] = Field(
        default_factory=dict, description="Labels the worker must carry, exactly."
    )
    constraints: list[ConstraintIn] = Field(
        default_factory=list,
        description="Other label rules the worker must meet (ne, in, not_in, exists, ...).",
    )


class BackoffIn(_In):
    base_s: float = 1.0
    factor: float = 2.0
    max_s: float = 300.0
    jitter: float = 0.5


class JobIn(_In):
    payload: dict[str, Any] = Field(description="Any JSON object; backends interpret it.")
    queue: str = "default"
    tenant: str = "default"
    worker_types: list[str] = Field(
        default_factory=list, description="Worker types that may run it; empty = any."
    )
    requirements: RequirementsIn | None = None
    priority: int = Field(0, description="Higher runs first.")
    run_at: datetime | None = Field(None, description="Not before this time (ISO 8601).")
    delay_s: float | None = Field(None, ge=0, description="Not before now + delay_s.")
    max_attempts: int = Field(3, description="Attempts in all, the first included.")
    backoff: BackoffIn | None = None
    timeout_s: float | None = Field(None, description="Per attempt; the attempt is killed.")
    idempotency_key: str | None = Field(
        None, description="A second submit with the same key (per tenant) returns the first job."
    )
    concurrency_key: str | None = Field(
        None, description="Jobs sharing this key run at most concurrency_limit at once, fleet-wide."
    )
    concurrency_limit: int | None = Field(
        None, ge=1, description="With concurrency_key; 1 when omitted."
    )
    depends_on: list[str] = Field(
        default_factory=list, description="Job ids (same tenant) that must complete first."
    )
    on_parent_failure: Literal["cancel", "run"] = Field(
        "cancel", description="When a parent fails or is cancelled: cancel this job, or run it."
    )
    group_id: str | None = Field(
        None, description="Join a group (a bulk submit makes one for its jobs otherwise)."
    )
    preferences: list[PreferenceIn] = Field(
        default_factory=list,
        description="Soft label preferences: workers meeting them take the job first.",
    )


class BulkJobsIn(_In):
    jobs: list[JobIn]


class CancelIn(_In):
    reason: str = Field("cancelled by request", max_length=1000)


class RetryIn(_In):
    attempts: int = Field(1, ge=1, le=1000, description="Attempts added to the job's budget.")


class JobErrorOut(BaseModel):
    kind: str
    message: str
    model_config = ConfigDict(extra="allow")


class AttemptOut(BaseModel):
    attempt: int
    worker_id: str | None
    claimed_at: datetime | None
    started_at: datetime | None
    finished_at: datetime
    outcome: str
    error: dict[str, Any] | None


class JobOut(BaseModel):
    id: str
    queue: str
    tenant: str
    payload: dict[str, Any]
    worker_types: list[str]
    requirements: RequirementsIn
    priority: int
    run_at: datetime
    max_attempts: int
    backoff: BackoffIn
    timeout_s: float | None
    idempotency_key: str | None
    status: Status
    attempt: int
    claimed_by: str | None
    claimed_at: datetime | None
    lease_expires_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    result: Any
    error: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    concurrency_key: str | None = None
    concurrency_limit: int | None = None
    depends_on: list[str] = Field(default_factory=list)
    on_parent_failure: Literal["cancel", "run"] = "cancel"
    deps_pending: int = Field(0, description="Parents that have not ended yet.")
    group_id: str | None = None
    step: str | None = Field(None, description="The step name, for a job of a workflow.")
    schedule_id: str | None = Field(None, description="The cron schedule that fired it.")
    preferences: list[PreferenceIn] = Field(default_factory=list)
    attempts: list[AttemptOut] | None = Field(
        None, description="Finished attempts (on GET /jobs/{id} only)."
    )
    unschedulable: str | None = Field(
        None,
        description="Why no online worker could ever run this waiting job (no worker of its "
        "types, with its labels, or big enough); null when one could.",
    )


class SubmittedOut(BaseModel):
    jobs: list[JobOut]
    created: int = Field(description="How many were new (the rest matched idempotency keys).")
    group_id: str | None = Field(None, description="The group a bulk submit made.")


class JobPageOut(BaseModel):
    jobs: list[JobOut]
    next_cursor: str | None


class ResourcesIn(_In):
    cpu: float = Field(0, ge=0)
    memory_mb: int = Field(0, ge=0)
    gpu: int = Field(0, ge=0)


class WorkerIn(_In):
    id: str = Field(min_length=1, max_length=128)
    worker_type: str
    name: str = Field("", max_length=200)
    concurrency: int = Field(1, ge=1)
    resources: ResourcesIn = Field(default_factory=lambda: ResourcesIn())  # noqa: PLW0108
    labels: dict[str, str] = Field(default_factory=dict)
    capabilities: dict[str, Any] = Field(default_factory=dict)
    host: str = Field("", max_length=255)
    pid: int = 0
    version: str = Field("", max_length=64)


class WorkerOut(BaseModel):
    id: str
    worker_type: str
    name: str
    status: Literal["online", "draining", "offline"]
    concurrency: int
    running: int
    resources: ResourcesIn
    used: ResourcesIn
    labels: dict[str, str]
    capabilities: dict[str, Any]
    host: str
    pid: int
    version: str
    registered_at: datetime
    last_seen_at: datetime


class RegisteredOut(BaseModel):
    worker: WorkerOut
    lease_ttl_s: float
    heartbeat_interval_s: float


class RunningIn(_In):
    job_id: str
    attempt: int


class HeartbeatIn(_In):
    running: list[RunningIn] = Field(default_factory=list)


class HeartbeatOut(BaseModel):
    cancel: list[str] = Field(description="Jobs to stop now: cancelled, reassigned or unknown.")
    drain: bool = Field(description="Stop claiming; exit once running jobs are done.")
    status: Literal["online", "draining", "offline"]


class AssignmentOut(BaseModel):
    id: str
    attempt: int
    queue: str
    tenant: str
    payload: dict[str, Any]
    timeout_s: float | None
    requirements: RequirementsIn
    parent_results: dict[str, Any] | None = Field(
        None, description="The results of the job's parents, by step name (or job id)."
    )


class ClaimOut(BaseModel):
    jobs: list[AssignmentOut]
    results: list[ReportResultOut] = Field(description="One per report sent with the claim.")


class ErrorIn(BaseModel):
    kind: str = Field(min_length=1, max_length=100)
    message: str = Field(max_length=100_000)
    model_config = ConfigDict(extra="allow")


class ReportFields(_In):
    attempt: int = Field(ge=1)
    kind: Literal["started", "completed", "failed"]
    result: Any = None
    error: ErrorIn | None = None
    retryable: bool = True
    started_at: datetime | None = None


class ReportIn(ReportFields):
    job_id: str


class WorkerReportIn(ReportFields):
    worker_id: str


class ReportsIn(_In):
    reports: list[ReportIn] = Field(max_length=10_000)


class ClaimIn(_In):
    limit: int = Field(1, ge=1, description="At most this many jobs.")
    wait_s: float = Field(0, ge=0, description="Long-poll up to this long when none is ready.")
    reports: list[ReportIn] = Field(
        default_factory=list,
        max_length=10_000,
        description="Reports applied before claiming (saves a round trip; frees capacity).",
    )


class ReportResultOut(BaseModel):
    job_id: str
    applied: bool
    status: Status | None
    reason: str


class ReportsOut(BaseModel):
    results: list[ReportResultOut]


class UnschedulableReasonOut(BaseModel):
    reason: str
    count: int


class UnschedulableOut(BaseModel):
    count: int = Field(description="Waiting jobs that fit no online worker.")
    reasons: list[UnschedulableReasonOut] = Field(description="Most jobs first.")


class StatsOut(BaseModel):
    tenant: str | None = Field(description="The tenant the job counts are scoped to, if any.")
    jobs_by_status: dict[str, int]
    jobs_by_queue: dict[str, dict[str, int]]
    jobs_by_tenant: dict[str, dict[str, int]]
    workers_by_status: dict[str, int]
    oldest_pending_at: datetime | None
    unschedulable: UnschedulableOut
    reaper: dict[str, Any]
    scheduler: dict[str, Any] = Field(
        description="The cron scheduler on this server: leader, runs, fired_total."
    )


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    database: str
    version: str
    schema_version: int


class ProblemOut(BaseModel):
    status: int
    code: str
    title: str
    detail: str
    field: str | None = None
    model_config = ConfigDict(extra="allow")


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ProblemOut, "description": description}
    for status, description in (
        (404, "No such job or worker"),
        (409, "The change does not apply to the job's current state"),
        (413, "The payload is over the size limit"),
        (422, "Invalid input; `field` names it"),
        (503, "The database is unreachable"),
    )
}
"""Every route can answer these problems; documented once, for the whole API."""
