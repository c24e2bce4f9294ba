"""Workflow use cases: submit a DAG of named steps as one group, all or nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from blixard.domain.jobs import NewJob
from blixard.domain.workflows import Step, WorkflowPlan, plan_workflow, step_field
from blixard.errors import ValidationError
from blixard.ids import new_id, new_ids
from blixard.service.context import UseCases
from blixard.storage.base import Inserted


@dataclass(frozen=True, slots=True)
class SubmittedWorkflow:
    group_id: str
    steps: list[tuple[str, Inserted]]
    """(step name, its job) in topological order. A step whose idempotency key was used
    before is the existing job (``created`` False)."""

    @property
    def created(self) -> int:
        return sum(1 for _, inserted in self.steps if inserted.created)


class WorkflowService(UseCases):
    async def submit(
        self,
        steps: Sequence[Step],
        *,
        tenant: str | None = None,
        group_id: str | None = None,
    ) -> SubmittedWorkflow:
        """Plan the workflow (ValidationError naming the step or the cycle) and insert its
        jobs in one transaction: every step or none. The steps share ``group_id`` (a new
        group by default); each job carries its step's name."""
        plan = plan_workflow(
            steps,
            group_id=group_id or new_id(),
            job_ids=new_ids(len(steps)),
            tenant=tenant,
        )
        now = self._clock.now()
        jobs = [
            NewJob(
                id=step.job_id,
                spec=step.spec,
                created_at=now,
                run_at=step.spec.run_at if step.spec.run_at is not None else now,
            )
            for step in plan.steps
        ]
        try:
            inserted = await self._store.insert_jobs(jobs)
        except ValidationError as exc:
            raise _in_step_terms(exc, plan) from exc
        self._work.notify()
        names = [step.name for step in plan.steps]
        return SubmittedWorkflow(plan.group_id, list(zip(names, inserted, strict=True)))


def _in_step_terms(exc: ValidationError, plan: WorkflowPlan) -> ValidationError:
    """The store names the batch's jobs (``jobs[3].depends_on[0]``); say which step."""
    field = step_field(plan, exc.field)
    details = {k: v for k, v in exc.details.items() if k != "field"}
    reason = exc.message.split(": ", 1)[-1]
    return type(exc)(field, reason, **details)
