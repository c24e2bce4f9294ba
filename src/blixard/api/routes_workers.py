"""/api/v1/workers: register, heartbeat, claim, report, drain, list."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from blixard.api import convert, serialize
from blixard.api.deps import plane
from blixard.api.responses import FastJSONResponse
from blixard.api.schemas import (
    PROBLEM_RESPONSES,
    ClaimIn,
    ClaimOut,
    HeartbeatIn,
    HeartbeatOut,
    RegisteredOut,
    ReportResultOut,
    ReportsIn,
    ReportsOut,
    WorkerIn,
    WorkerOut,
    WorkerReportIn,
)
from blixard.domain.workers import WorkerStatus
from blixard.storage.base import RunningJob

router = APIRouter(prefix="/api/v1", tags=["workers"], responses=PROBLEM_RESPONSES)


@router.post(
    "/workers",
    response_model=RegisteredOut,
    summary="Register (or re-register) a worker",
)
async def register(body: WorkerIn, request: Request) -> Response:
    cp = plane(request)
    worker = await cp.workers.register(convert.worker_spec(body))
    return FastJSONResponse(
        {
            "worker": serialize.worker_dict(worker),
            "lease_ttl_s": cp.settings.lease_ttl_s,
            "heartbeat_interval_s": cp.settings.heartbeat_interval_s,
        }
    )


@router.get("/workers", response_model=list[WorkerOut])
async def list_workers(request: Request, status: WorkerStatus | None = None) -> Response:
    workers = await plane(request).workers.list_workers(status)
    return FastJSONResponse([serialize.worker_dict(w) for w in workers])


@router.get("/workers/{worker_id}", response_model=WorkerOut)
async def get_worker(worker_id: str, request: Request) -> Response:
    return FastJSONResponse(serialize.worker_dict(await plane(request).workers.get(worker_id)))


@router.post(
    "/workers/{worker_id}/heartbeat",
    response_model=HeartbeatOut,
    summary="Renew the leases of running jobs; learn what to cancel and whether to drain",
)
async def heartbeat(worker_id: str, body: HeartbeatIn, request: Request) -> Response:
    running = [RunningJob(r.job_id, r.attempt) for r in body.running]
    answer = await plane(request).workers.heartbeat(worker_id, running)
    return FastJSONResponse(
        {"cancel": answer.cancel, "drain": answer.drain, "status": str(answer.worker.status)}
    )


@router.post(
    "/workers/{worker_id}/claim",
    response_model=ClaimOut,
    summary="Claim up to `limit` jobs that fit; long-poll up to `wait_s`",
)
async def claim(worker_id: str, body: ClaimIn, request: Request) -> Response:
    async def still_wanted() -> bool:
        return not await request.is_disconnected()

    workers = plane(request).workers
    results = (
        await workers.report(worker_id, [convert.report(r.job_id, r) for r in body.reports])
        if body.reports
        else []
    )
    jobs = await workers.claim(worker_id, body.limit, body.wait_s, still_wanted)
    return FastJSONResponse(
        {
            "jobs": [serialize.assignment_dict(j) for j in jobs],
            "results": [serialize.report_result_dict(r) for r in results],
        }
    )


@router.post(
    "/workers/{worker_id}/reports",
    response_model=ReportsOut,
    summary="Apply a batch of reports; each is applied or refused on its own",
)
async def reports(worker_id: str, body: ReportsIn, request: Request) -> Response:
    results = await plane(request).workers.report(
        worker_id, [convert.report(r.job_id, r) for r in body.reports]
    )
    return FastJSONResponse({"results": [serialize.report_result_dict(r) for r in results]})


@router.post(
    "/jobs/{job_id}/report",
    response_model=ReportResultOut,
    summary="One report; 409 when stale or duplicate (nothing changes)",
)
async def report_one(job_id: str, body: WorkerReportIn, request: Request) -> Response:
    item = convert.report(job_id, body)
    result = await plane(request).workers.report_one(body.worker_id, item)
    return FastJSONResponse(serialize.report_result_dict(result))


@router.post(
    "/workers/{worker_id}/drain",
    response_model=WorkerOut,
    summary="Stop claiming; running jobs finish, then the agent exits",
)
async def drain(worker_id: str, request: Request) -> Response:
    return FastJSONResponse(serialize.worker_dict(await plane(request).workers.drain(worker_id)))


@router.post(
    "/workers/{worker_id}/deregister",
    response_model=WorkerOut,
    summary="The agent leaves: the worker goes offline",
)
async def deregister(worker_id: str, request: Request) -> Response:
    worker = await plane(request).workers.deregister(worker_id)
    return FastJSONResponse(serialize.worker_dict(worker))
