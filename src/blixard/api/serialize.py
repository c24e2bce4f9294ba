"""Domain objects to the API's JSON shapes (see schemas.py), fast enough for the hot path."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from blixard.domain.jobs import Attempt, Job
from blixard.domain.reports import ReportResult
from blixard.domain.workers import Resources, Worker


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def job_dict(
    job: Job, attempts: list[Attempt] | None = None, *, unschedulable: str | None = None
) -> dict[str, Any]:
    """``unschedulable``: why no online worker could ever run the job (``Diagnosis``)."""
    out: dict[str, Any] = {
        "id": job.id,
        "queue": job.queue,
        "tenant": job.tenant,
        "payload": job.payload,
        "worker_types": list(job.worker_types),
        "requirements": job.requirements.to_dict(),
        "priority": job.priority,
        "run_at": iso(job.run_at),
        "max_attempts": job.max_attempts,
        "backoff": job.backoff.to_dict(),
        "timeout_s": job.timeout_s,
        "idempotency_key": job.idempotency_key,
        "status": str(job.status),
        "attempt": job.attempt,
        "claimed_by": job.claimed_by,
        "claimed_at": iso(job.claimed_at),
        "lease_expires_at": iso(job.lease_expires_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "result": job.result,
        "error": job.error,
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
        "concurrency_key": job.concurrency_key,
        "concurrency_limit": job.concurrency_limit,
        "depends_on": list(job.depends_on),
        "on_parent_failure": job.on_parent_failure,
        "deps_pending": job.deps_pending,
        "group_id": job.group_id,
        "step": job.step,
        "schedule_id": job.schedule_id,
        "preferences": [p.to_dict() for p in job.preferences],
        "unschedulable": unschedulable,
    }
    if attempts is not None:
        out["attempts"] = [attempt_dict(a) for a in attempts]
    return out


def attempt_dict(a: Attempt) -> dict[str, Any]:
    return {
        "attempt": a.attempt,
        "worker_id": a.worker_id,
        "claimed_at": iso(a.claimed_at),
        "started_at": iso(a.started_at),
        "finished_at": iso(a.finished_at),
        "outcome": a.outcome,
        "error": a.error,
    }


def assignment_dict(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "attempt": job.attempt,
        "queue": job.queue,
        "tenant": job.tenant,
        "payload": job.payload,
        "timeout_s": job.timeout_s,
        "requirements": job.requirements.to_dict(),
        "parent_results": None if job.parent_results is None else dict(job.parent_results),
    }


def _resources(r: Resources) -> dict[str, Any]:
    return {"cpu": r.cpu, "memory_mb": r.memory_mb, "gpu": r.gpu}


def worker_dict(w: Worker) -> dict[str, Any]:
    return {
        "id": w.id,
        "worker_type": w.worker_type,
        "name": w.name,
        "status": str(w.status),
        "concurrency": w.concurrency,
        "running": w.running,
        "resources": _resources(w.resources),
        "used": _resources(w.used),
        "labels": dict(w.labels),
        "capabilities": dict(w.capabilities),
        "host": w.host,
        "pid": w.pid,
        "version": w.version,
        "registered_at": iso(w.registered_at),
        "last_seen_at": iso(w.last_seen_at),
    }


def report_result_dict(r: ReportResult) -> dict[str, Any]:
    return {
        "job_id": r.job_id,
        "applied": r.applied,
        "status": None if r.status is None else str(r.status),
        "reason": r.reason,
    }
