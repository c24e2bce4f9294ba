"""/api/v1/groups: a group's summary and jobs, and cancelling the whole group."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from blixard.api import serialize
from blixard.api.deps import plane
from blixard.api.responses import FastJSONResponse
from blixard.api.schemas import PROBLEM_RESPONSES
from blixard.api.schemas_admin import GroupCancelIn, GroupCancelledOut, GroupPageOut
from blixard.api.serialize_admin import group_dict

router = APIRouter(prefix="/api/v1/groups", tags=["groups"], responses=PROBLEM_RESPONSES)


@router.get(
    "/{group_id:path}",
    response_model=GroupPageOut,
    summary="A group's aggregate status and counts, with a page of its jobs (newest first)",
)
async def get_group(
    group_id: str,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: str | None = None,
) -> Response:
    cp = plane(request)
    summary = await cp.groups.summary(group_id)
    page = await cp.groups.jobs(group_id, limit, cursor)
    reasons = await cp.diagnosis.for_jobs(page.jobs)
    return FastJSONResponse(
        {
            "group": group_dict(summary),
            "jobs": [serialize.job_dict(j, unschedulable=reasons.get(j.id)) for j in page.jobs],
            "next_cursor": page.next_cursor,
        }
    )


@router.post(
    "/{group_id:path}/cancel",
    response_model=GroupCancelledOut,
    summary="Cancel every job of the group that has not ended (running ones are killed)",
)
async def cancel_group(
    group_id: str, request: Request, body: GroupCancelIn | None = None
) -> Response:
    reason = body.reason if body else GroupCancelIn().reason
    done = await plane(request).groups.cancel(group_id, reason)
    return FastJSONResponse(
        {
            "group": group_dict(done.summary),
            "cancelled": [serialize.job_dict(j) for j in done.cancelled],
        }
    )
