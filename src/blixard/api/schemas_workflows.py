"""Request and response schemas of /api/v1/workflows."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from blixard.api.schemas import JobIn, JobOut
from blixard.domain.workflows import MAX_STEPS


class StepIn(JobIn):
    """A job submission (every field of POST /api/v1/jobs) with a name and its parents."""

    name: str = Field(description="Unique in the workflow; the job's `step`.")
    depends_on: list[str] = Field(
        default_factory=list,
        description="Names of steps of this workflow that must end first (see "
        "on_parent_failure); their results reach this step's job as parent_results.",
    )
    after: list[str] = Field(
        default_factory=list,
        description="Ids of existing jobs (same tenant) that must end first too.",
    )


class WorkflowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: list[StepIn] = Field(min_length=1, max_length=MAX_STEPS)
    tenant: str = Field(
        "default", description="The workflow's tenant: every step's (a step may not name another)."
    )
    queue: str | None = Field(None, description="The queue of the steps that name none.")
    group_id: str | None = Field(
        None, description="The steps' shared group; a new group id when omitted."
    )


class WorkflowOut(BaseModel):
    group_id: str
    created: int = Field(
        description="Steps that became new jobs (the rest matched idempotency keys)."
    )
    jobs: list[JobOut] = Field(description="One per step, in topological order.")
