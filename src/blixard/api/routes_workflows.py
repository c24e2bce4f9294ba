"""/api/v1/workflows: submit a DAG of named steps in one request."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from blixard.api import convert, serialize
from blixard.api.deps import plane
from blixard.api.responses import FastJSONResponse
from blixard.api.schemas import PROBLEM_RESPONSES
from blixard.api.schemas_workflows import StepIn, WorkflowIn, WorkflowOut
from blixard.domain.workflows import Step

router = APIRouter(prefix="/api/v1/workflows", tags=["workflows"], responses=PROBLEM_RESPONSES)


def _step(item: StepIn, i: int, body: WorkflowIn, max_payload_bytes: int) -> Step:
    """A step with the workflow's defaults; errors in its job fields name it (steps[i].*)."""
    defaults: dict[str, object] = {"depends_on": []}
    if "tenant" not in item.model_fields_set:
        defaults["tenant"] = body.tenant
    if body.queue is not None and "queue" not in item.model_fields_set:
        defaults["queue"] = body.queue
    spec = convert.job_spec(
        item.model_copy(update=defaults),
        max_payload_bytes=max_payload_bytes,
        prefix=f"steps[{i}].",
    )
    return Step(item.name, spec, tuple(item.depends_on), tuple(item.after))


@router.post(
    "",
    response_model=WorkflowOut,
    status_code=201,
    summary="Submit a workflow: named steps with dependencies, as one group (all or nothing)",
)
async def submit_workflow(body: WorkflowIn, request: Request) -> Response:
    """Every step becomes a job of one group, inserted in one transaction in topological
    order. A cycle, an unknown or duplicate step name answer 422 naming it. A step waits
    (``blocked``) until its parents end; when one fails or is cancelled the step is
    cancelled too, unless its ``on_parent_failure`` is ``run``. Its job receives its
    parents' results (``parent_results``, by step name) when claimed."""
    cp = plane(request)
    limit = cp.settings.max_payload_bytes
    steps = [_step(item, i, body, limit) for i, item in enumerate(body.steps)]
    done = await cp.workflows.submit(steps, tenant=body.tenant, group_id=body.group_id)
    return FastJSONResponse(
        {
            "group_id": done.group_id,
            "created": done.created,
            "jobs": [serialize.job_dict(inserted.job) for _, inserted in done.steps],
        },
        status_code=201 if done.created else 200,
    )
