"""/api/v1/jobs: submit, get, list, cancel, retry, wait."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from blixard.api import convert, serialize
from blixard.api.deps import plane
from blixard.api.responses import FastJSONResponse
from blixard.api.schemas import (
    PROBLEM_RESPONSES,
    BulkJobsIn,
    CancelIn,
    JobIn,
    JobOut,
    JobPageOut,
    RetryIn,
    Status,
    SubmittedOut,
)
from blixard.domain.states import JobStatus
from blixard.ids import new_id
from blixard.storage.base import JobQuery

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], responses=PROBLEM_RESPONSES)


@router.post(
    "",
    response_model=JobOut,
    status_code=201,
    summary="Submit a job (200 with the existing job for a repeated idempotency key)",
)
async def submit(body: JobIn, request: Request) -> Response:
    cp = plane(request)
    spec = convert.job_spec(body, max_payload_bytes=cp.settings.max_payload_bytes)
    (inserted,) = await cp.jobs.submit([spec])
    return FastJSONResponse(
        serialize.job_dict(inserted.job), status_code=201 if inserted.created else 200
    )


@router.post(
    "/bulk",
    response_model=SubmittedOut,
    status_code=201,
    summary="Submit many jobs in one transaction",
)
async def submit_bulk(body: BulkJobsIn, request: Request) -> Response:
    cp = plane(request)
    limit = cp.settings.max_payload_bytes
    # Jobs submitted together share a group: a new one, for those that name none.
    group_id = new_id() if any(item.group_id is None for item in body.jobs) else None
    specs = [
        convert.job_spec(item, max_payload_bytes=limit, prefix=f"jobs[{i}].", group_id=group_id)
        for i, item in enumerate(body.jobs)
    ]
    inserted = await cp.jobs.submit(specs)
    created = sum(1 for i in inserted if i.created)
    return FastJSONResponse(
        {
            "jobs": [serialize.job_dict(i.job) for i in inserted],
            "created": created,
            "group_id": group_id,
        },
        status_code=201 if created else 200,
    )


@router.get(
    "",
    response_model=JobPageOut,
    summary="List jobs, newest first, with cursor pagination",
)
async def list_jobs(
    request: Request,
    status: Annotated[list[Status] | None, Query()] = None,
    queue: str | None = None,
    tenant: str | None = None,
    worker_type: str | None = None,
    group_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: str | None = None,
) -> Response:
    query = JobQuery(
        status=tuple(JobStatus(s) for s in status or ()),
        queue=queue,
        tenant=tenant,
        worker_type=worker_type,
        group_id=group_id,
        limit=limit,
        before=cursor,
    )
    cp = plane(request)
    page = await cp.jobs.list_jobs(query)
    reasons = await cp.diagnosis.for_jobs(page.jobs)
    return FastJSONResponse(
        {
            "jobs": [serialize.job_dict(j, unschedulable=reasons.get(j.id)) for j in page.jobs],
            "next_cursor": page.next_cursor,
        }
    )


@router.get(
    "/{job_id}",
    response_model=JobOut,
    summary="A job with every finished attempt",
)
async def get_job(job_id: str, request: Request) -> Response:
    cp = plane(request)
    job = await cp.jobs.get(job_id)
    attempts = await cp.jobs.attempts(job_id)
    reason = await cp.diagnosis.for_job(job)
    return FastJSONResponse(serialize.job_dict(job, attempts, unschedulable=reason))


@router.post(
    "/{job_id}/cancel",
    response_model=JobOut,
    summary="Cancel a pending or running job (a running one is killed)",
)
async def cancel(job_id: str, request: Request, body: CancelIn | None = None) -> Response:
    reason = body.reason if body else "cancelled by request"
    job = await plane(request).jobs.cancel(job_id, reason)
    return FastJSONResponse(serialize.job_dict(job))


@router.post(
    "/{job_id}/retry",
    response_model=JobOut,
    summary="Run a failed or cancelled job again",
)
async def retry(job_id: str, request: Request, body: RetryIn | None = None) -> Response:
    job = await plane(request).jobs.retry(job_id, body.attempts if body else 1)
    return FastJSONResponse(serialize.job_dict(job))


@router.get(
    "/{job_id}/wait",
    response_model=JobOut,
    summary="Long-poll until the job is terminal or the timeout runs out",
)
async def wait(
    job_id: str,
    request: Request,
    timeout: Annotated[float, Query(ge=0, le=300, description="Seconds.")] = 30.0,  # noqa: ASYNC109
) -> Response:
    cp = plane(request)
    job = await cp.jobs.wait(job_id, timeout)
    attempts = await cp.jobs.attempts(job_id)
    return FastJSONResponse(serialize.job_dict(job, attempts))
