"""Dependencies between jobs (``depends_on``): when a job may run, and what a parent's end
does to the jobs waiting for it. Pure: no I/O.

A job with parents is ``blocked`` until each parent has ended. A parent that completed
releases it; a parent that failed or was cancelled cancels it (its ``on_parent_failure`` is
``cancel``, the default) or releases it anyway (``run``). A job released by its last parent
becomes ``pending``; a cancelled one cancels its own dependants in turn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from blixard.domain.jobs import error_info
from blixard.domain.states import JobStatus


@dataclass(frozen=True, slots=True)
class Dependant:
    """A blocked job waiting on ``parent_id``."""

    job_id: str
    parent_id: str
    on_parent_failure: str  # "cancel" | "run"


@dataclass(slots=True)
class DependantsPlan:
    released: dict[str, int] = field(default_factory=dict)  # job id -> parents now ended
    cancelled: dict[str, dict[str, object]] = field(default_factory=dict)  # job id -> error


def parent_blocks(status: JobStatus) -> bool:
    """Whether a parent in ``status`` still holds its dependants back."""
    return not status.terminal


def parent_dooms(status: JobStatus, on_parent_failure: str) -> bool:
    """Whether a parent that ended in ``status`` cancels a dependant."""
    return status is not JobStatus.COMPLETED and on_parent_failure == "cancel"


def dependency_error(parent_id: str, parent_status: JobStatus) -> dict[str, object]:
    return error_info(
        "dependency_failed",
        f"parent job {parent_id} {parent_status}",
        parent_id=parent_id,
        parent_status=str(parent_status),
    )


def initial_state(
    parents: Mapping[str, JobStatus], on_parent_failure: str
) -> tuple[JobStatus, int, dict[str, object] | None]:
    """The status a new job starts in, given its parents' statuses now: (status, parents
    still running, error when it is cancelled at birth)."""
    waiting = 0
    for parent_id, status in sorted(parents.items()):
        if parent_blocks(status):
            waiting += 1
        elif parent_dooms(status, on_parent_failure):
            return JobStatus.CANCELLED, 0, dependency_error(parent_id, status)
    return (JobStatus.BLOCKED if waiting else JobStatus.PENDING), waiting, None


def plan_dependants(
    ended: Mapping[str, JobStatus], dependants: Sequence[Dependant]
) -> DependantsPlan:
    """What the end of the ``ended`` parents does to their blocked dependants."""
    plan = DependantsPlan()
    for d in dependants:
        status = ended.get(d.parent_id)
        if status is None or d.job_id in plan.cancelled:
            continue
        if parent_dooms(status, d.on_parent_failure):
            plan.cancelled[d.job_id] = dependency_error(d.parent_id, status)
            plan.released.pop(d.job_id, None)
        else:
            plan.released[d.job_id] = plan.released.get(d.job_id, 0) + 1
    return plan
