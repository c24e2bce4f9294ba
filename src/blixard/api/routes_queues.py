"""/api/v1/queues and /api/v1/tenants: list, read and configure (PATCH creates)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from blixard.api.deps import plane
from blixard.api.responses import FastJSONResponse
from blixard.api.schemas import PROBLEM_RESPONSES
from blixard.api.schemas_admin import QueueOut, QueuePatchIn, TenantOut, TenantPatchIn
from blixard.api.serialize_admin import queue_dict, tenant_dict
from blixard.domain.queues import RateLimit
from blixard.storage.base import UNSET, QueueInfo, Unset

router = APIRouter(prefix="/api/v1", responses=PROBLEM_RESPONSES)


def _queue_response(request: Request, info: QueueInfo) -> Response:
    return FastJSONResponse(queue_dict(info, plane(request).clock.now()))


@router.get("/queues", response_model=list[QueueOut], tags=["queues"])
async def list_queues(request: Request) -> Response:
    """Every queue with its settings and job counts, by name."""
    cp = plane(request)
    now = cp.clock.now()
    return FastJSONResponse([queue_dict(i, now) for i in await cp.queues.list_queues()])


@router.get("/queues/{name:path}", response_model=QueueOut, tags=["queues"])
async def get_queue(name: str, request: Request) -> Response:
    return _queue_response(request, await plane(request).queues.get(name))


@router.patch(
    "/queues/{name:path}",
    response_model=QueueOut,
    tags=["queues"],
    summary="Change a queue's settings (only the fields given; creates the queue)",
)
async def patch_queue(name: str, body: QueuePatchIn, request: Request) -> Response:
    given = body.model_fields_set
    max_running: int | Unset | None = body.max_running if "max_running" in given else UNSET
    rate: RateLimit | Unset | None = UNSET
    if "rate_limit" in given:
        r = body.rate_limit
        rate = None if r is None else RateLimit(r.limit, r.period_s)
    info = await plane(request).queues.configure(
        name, paused=body.paused, max_running=max_running, rate=rate
    )
    return _queue_response(request, info)


@router.post(
    "/queues/{name:path}/pause",
    response_model=QueueOut,
    tags=["queues"],
    summary="Pause a queue: it keeps accepting jobs and hands none out",
)
async def pause_queue(name: str, request: Request) -> Response:
    return _queue_response(request, await plane(request).queues.pause(name))


@router.post("/queues/{name:path}/resume", response_model=QueueOut, tags=["queues"])
async def resume_queue(name: str, request: Request) -> Response:
    return _queue_response(request, await plane(request).queues.resume(name))


@router.get("/tenants", response_model=list[TenantOut], tags=["tenants"])
async def list_tenants(request: Request) -> Response:
    """Every tenant with its weight, quota and job counts, by name."""
    infos = await plane(request).tenants.list_tenants()
    return FastJSONResponse([tenant_dict(i) for i in infos])


@router.get("/tenants/{name:path}", response_model=TenantOut, tags=["tenants"])
async def get_tenant(name: str, request: Request) -> Response:
    return FastJSONResponse(tenant_dict(await plane(request).tenants.get(name)))


@router.patch(
    "/tenants/{name:path}",
    response_model=TenantOut,
    tags=["tenants"],
    summary="Change a tenant's weight or quota (only the fields given; creates the tenant)",
)
async def patch_tenant(name: str, body: TenantPatchIn, request: Request) -> Response:
    max_running = body.max_running if "max_running" in body.model_fields_set else UNSET
    info = await plane(request).tenants.configure(name, weight=body.weight, max_running=max_running)
    return FastJSONResponse(tenant_dict(info))
