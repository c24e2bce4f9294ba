"""API inputs to domain objects; domain ValidationErrors keep naming the field."""

from __future__ import annotations

import time

from blixard.api.schemas import JobIn, ReportFields, WorkerIn
from blixard.api.serialize import epoch
from blixard.domain.constraints import parse_constraints, parse_preferences
from blixard.domain.jobs import JobSpec, Requirements
from blixard.domain.reports import Report, ReportKind
from blixard.domain.retry import Backoff
from blixard.domain.workers import Resources, WorkerSpec
from blixard.errors import ValidationError


def job_spec(
    item: JobIn, *, max_payload_bytes: int, prefix: str = "", group_id: str | None = None
) -> JobSpec:
    """``group_id``: the group of a job that names none (a bulk submit's)."""
    try:
        if item.run_at is not None and item.delay_s is not None:
            raise ValidationError("run_at", "give run_at or delay_s, not both")
        run_at = epoch(item.run_at)
        if item.delay_s is not None:
            run_at = time.time() + item.delay_s
        req = item.requirements
        constraints = (
            parse_constraints(
                "requirements.constraints",
                [c.model_dump(exclude_defaults=False) for c in req.constraints],
            )
            if req is not None and req.constraints
            else ()
        )
        return JobSpec.build(
            item.payload,
            queue=item.queue,
            tenant=item.tenant,
            worker_types=item.worker_types,
            requirements=(
                Requirements(
                    cpu=req.cpu,
                    memory_mb=req.memory_mb,
                    gpu=req.gpu,
                    labels=req.labels,
                    constraints=constraints,
                )
                if req is not None
                else None
            ),
            priority=item.priority,
            run_at=run_at,
            max_attempts=item.max_attempts,
            backoff=Backoff(**item.backoff.model_dump()) if item.backoff is not None else None,
            timeout_s=item.timeout_s,
            idempotency_key=item.idempotency_key,
            concurrency_key=item.concurrency_key,
            concurrency_limit=item.concurrency_limit,
            depends_on=item.depends_on,
            on_parent_failure=item.on_parent_failure,
            group_id=item.group_id or group_id,
            preferences=parse_preferences(
                "preferences", [p.model_dump() for p in item.preferences]
            ),
            max_payload_bytes=max_payload_bytes,
        )
    except ValidationError as exc:
        if not prefix:
            raise
        details = {k: v for k, v in exc.details.items() if k != "field"}
        raise type(exc)(f"{prefix}{exc.field}", exc.message.split(": ", 1)[-1], **details) from exc


def worker_spec(item: WorkerIn) -> WorkerSpec:
    return WorkerSpec(
        id=item.id,
        worker_type=item.worker_type,
        name=item.name or item.id,
        concurrency=item.concurrency,
        resources=Resources(
            cpu=item.resources.cpu, memory_mb=item.resources.memory_mb, gpu=item.resources.gpu
        ),
        labels=item.labels,
        capabilities=item.capabilities,
        host=item.host,
        pid=item.pid,
        version=item.version,
    )


def report(job_id: str, item: ReportFields) -> Report:
    return Report(
        job_id=job_id,
        attempt=item.attempt,
        kind=ReportKind(item.kind),
        result=item.result,
        error=item.error.model_dump() if item.error is not None else None,
        retryable=item.retryable,
        started_at=epoch(item.started_at),
    )
