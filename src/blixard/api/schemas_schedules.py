"""Request and response schemas of the cron schedules API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from blixard.api.schemas import JobIn, JobOut


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScheduleIn(_In):
    name: str = Field(description="Unique within the tenant.")
    tenant: str = Field("default", description="The tenant of the schedule and its jobs.")
    cron: str = Field(
        description="5 fields (minute hour day-of-month month day-of-week), 6 with seconds "
        "first, or an alias: @yearly @monthly @weekly @daily @hourly.",
        examples=["*/5 * * * *"],
    )
    timezone: str = Field("UTC", description="IANA time zone the expression is read in.")
    misfire: Literal["skip", "catch_up"] = Field(
        "skip",
        description="Slots missed by more than 60 s: skip = dropped; catch_up = fired, oldest "
        "first, up to 100 per second.",
    )
    no_overlap: bool = Field(
        False, description="Drop slots while the job of the previous slot is not terminal."
    )
    paused: bool = Field(False, description="Create it paused.")
    job: JobIn = Field(
        description="The job each slot submits, as for POST /jobs, without run_at, delay_s "
        "or idempotency_key (each fired job's key is schedule:<id>:<slot epoch>)."
    )


class JobTemplateOut(BaseModel):
    """A schedule's job template; the body of a POST /jobs."""

    payload: dict[str, Any]
    queue: str
    tenant: str
    worker_types: list[str]
    requirements: dict[str, Any]
    priority: int
    max_attempts: int
    backoff: dict[str, float]
    timeout_s: float | None
    concurrency_key: str | None
    concurrency_limit: int | None
    preferences: list[dict[str, Any]]
    model_config = ConfigDict(extra="allow")


class ScheduleOut(BaseModel):
    id: str
    tenant: str
    name: str
    cron: str
    timezone: str
    misfire: Literal["skip", "catch_up"]
    no_overlap: bool
    paused: bool
    next_fire_at: datetime = Field(description="The earliest slot not fired yet.")
    last_fired_at: datetime | None = Field(description="The slot of the latest job it fired.")
    last_job_id: str | None
    created_at: datetime
    updated_at: datetime
    job: JobTemplateOut
    upcoming: list[datetime] | None = Field(
        None, description="Its next slots (GET /schedules/{id} only; empty while paused)."
    )
    recent_jobs: list[JobOut] | None = Field(
        None, description="The latest jobs it fired, newest first (GET /schedules/{id} only)."
    )
