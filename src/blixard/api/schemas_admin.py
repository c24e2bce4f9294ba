"""Request and response schemas of the administration API: queues, tenants and groups."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from blixard.api.schemas import JobOut

GroupStatusName = Literal["pending", "running", "completed", "failed", "cancelled"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RateLimitIn(_In):
    limit: int = Field(description="Jobs that may start per period (a burst of up to this).")
    period_s: float = Field(description="The period, in seconds.")


class QueuePatchIn(_In):
    """Only the fields given change; a queue that does not exist yet is created."""

    paused: bool | None = Field(
        None, description="A paused queue accepts jobs and hands none out (null: unchanged)."
    )
    max_running: int | None = Field(
        None, description="Jobs of the queue claimed or running at once, fleet-wide; null: none."
    )
    rate_limit: RateLimitIn | None = Field(
        None, description="At most `limit` starts per `period_s` (token bucket); null: none."
    )


class TenantPatchIn(_In):
    """Only the fields given change; a tenant that does not exist yet is created."""

    weight: float | None = Field(
        None, description="Share of the fleet under contention (default 1; null: unchanged)."
    )
    max_running: int | None = Field(
        None, description="Jobs of the tenant claimed or running at once; null: no quota."
    )


class RateLimitOut(BaseModel):
    limit: int
    period_s: float


class QueueOut(BaseModel):
    name: str
    paused: bool
    max_running: int | None
    rate_limit: RateLimitOut | None
    rate_tokens: float | None = Field(description="Starts available now (with a rate limit).")
    running: int = Field(description="Jobs claimed or in progress.")
    jobs_by_status: dict[str, int]
    oldest_pending_at: datetime | None
    created_at: datetime | None = Field(description="Null for a queue known only by its jobs.")
    updated_at: datetime | None


class TenantOut(BaseModel):
    name: str
    weight: float
    max_running: int | None
    running: int = Field(description="Jobs claimed or in progress.")
    jobs_by_status: dict[str, int]
    oldest_pending_at: datetime | None
    created_at: datetime | None = Field(description="Null for a tenant known only by its jobs.")
    updated_at: datetime | None


class GroupOut(BaseModel):
    id: str
    status: GroupStatusName = Field(
        description="running: a job runs, or some ended and others wait; pending: every job "
        "waits; completed / failed / cancelled: every job ended (failed if any failed, else "
        "cancelled if any was cancelled)."
    )
    total: int
    jobs_by_status: dict[str, int]
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = Field(description="When the last job ended, once all have.")


class GroupPageOut(BaseModel):
    group: GroupOut
    jobs: list[JobOut] = Field(description="The group's jobs, newest first.")
    next_cursor: str | None


class GroupCancelIn(_In):
    reason: str = Field("group cancelled by request", max_length=1000)


class GroupCancelledOut(BaseModel):
    group: GroupOut
    cancelled: list[JobOut] = Field(description="The jobs this request cancelled.")
