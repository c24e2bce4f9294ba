"""/api/v1/schedules: cron schedules (create, list, get, pause, resume, delete)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from blixard.api import convert, serialize
from blixard.api.deps import plane
from blixard.api.responses import FastJSONResponse
from blixard.api.schemas import PROBLEM_RESPONSES
from blixard.api.schemas_schedules import ScheduleIn, ScheduleOut
from blixard.domain.jobs import JobSpec
from blixard.domain.schedules import Schedule, check_fields
from blixard.domain.templates import template_to_dict
from blixard.errors import ValidationError
from blixard.service.schedules import ScheduleDetail

router = APIRouter(prefix="/api/v1/schedules", tags=["schedules"], responses=PROBLEM_RESPONSES)

PER_JOB = ("delay_s", "run_at", "idempotency_key")
"""Submit fields each fired job gets from its slot, never from the template."""


def template(body: ScheduleIn, max_payload_bytes: int) -> JobSpec:
    """The job template, validated as a submission (after the schedule's own fields):
    ValidationError names the field (``job.<field>`` for the template's)."""
    check_fields(body.name, body.tenant, body.cron, body.timezone)
    job = body.job
    for name in PER_JOB:
        if getattr(job, name, None) is not None:
            raise ValidationError(f"job.{name}", "is set for each fired job, not by the template")
    if "tenant" in job.model_fields_set and job.tenant != body.tenant:
        raise ValidationError(
            "job.tenant", f"must be the schedule's tenant {body.tenant!r}, got {job.tenant!r}"
        )
    item = job.model_copy(update={"tenant": body.tenant})
    return convert.job_spec(item, max_payload_bytes=max_payload_bytes, prefix="job.")


def schedule_dict(s: Schedule, detail: ScheduleDetail | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": s.id,
        "tenant": s.tenant,
        "name": s.name,
        "cron": s.cron,
        "timezone": s.timezone,
        "misfire": s.misfire,
        "no_overlap": s.no_overlap,
        "paused": s.paused,
        "next_fire_at": serialize.iso(s.next_fire_at),
        "last_fired_at": serialize.iso(s.last_fired_at),
        "last_job_id": s.last_job_id,
        "created_at": serialize.iso(s.created_at),
        "updated_at": serialize.iso(s.updated_at),
        "job": template_to_dict(s.job),
    }
    if detail is not None:
        out["upcoming"] = [] if s.paused else [serialize.iso(t) for t in detail.upcoming]
        out["recent_jobs"] = [serialize.job_dict(j) for j in detail.recent_jobs]
    return out


@router.post("", response_model=ScheduleOut, status_code=201, summary="Create a schedule")
async def create(body: ScheduleIn, request: Request) -> Response:
    cp = plane(request)
    schedule = await cp.schedules.create(
        name=body.name,
        tenant=body.tenant,
        cron=body.cron,
        timezone=body.timezone,
        job=template(body, cp.settings.max_payload_bytes),
        misfire=body.misfire,
        no_overlap=body.no_overlap,
        paused=body.paused,
    )
    return FastJSONResponse(schedule_dict(schedule), status_code=201)


@router.get("", response_model=list[ScheduleOut], summary="Schedules, by tenant and name")
async def list_schedules(request: Request, tenant: str | None = None) -> Response:
    found = await plane(request).schedules.list_schedules(tenant)
    return FastJSONResponse([schedule_dict(s) for s in found])


@router.get(
    "/{schedule_id}",
    response_model=ScheduleOut,
    summary="A schedule with its next slots and the latest jobs it fired",
)
async def get_schedule(
    schedule_id: str,
    request: Request,
    upcoming: Annotated[int, Query(ge=0, le=100, description="Next slots to list.")] = 5,
    jobs: Annotated[int, Query(ge=0, le=100, description="Latest fired jobs to list.")] = 10,
) -> Response:
    detail = await plane(request).schedules.detail(schedule_id, slots=upcoming, jobs=jobs)
    return FastJSONResponse(schedule_dict(detail.schedule, detail))


@router.post(
    "/{schedule_id}/pause", response_model=ScheduleOut, summary="Stop firing (until resumed)"
)
async def pause(schedule_id: str, request: Request) -> Response:
    return FastJSONResponse(schedule_dict(await plane(request).schedules.pause(schedule_id)))


@router.post(
    "/{schedule_id}/resume",
    response_model=ScheduleOut,
    summary="Fire again, from the first slot after now (the paused slots never fire)",
)
async def resume(schedule_id: str, request: Request) -> Response:
    return FastJSONResponse(schedule_dict(await plane(request).schedules.resume(schedule_id)))


@router.delete(
    "/{schedule_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a schedule (the jobs it fired stay)",
)
async def delete(schedule_id: str, request: Request) -> Response:
    await plane(request).schedules.delete(schedule_id)
    return Response(status_code=204)
