"""The job state machine: one table of named transitions (DESIGN.md §2).

Every store applies a transition as a compare-and-set on ``status IN from_states``; this
table is the single source of which moves exist. The storage CHECK constraints agree with
``TERMINAL`` and ``ACTIVE`` (``finished_at`` is set exactly when a job is terminal; a lease
exists exactly while it is active).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from blixard.errors import InvalidTransition


class JobStatus(enum.StrEnum):
    BLOCKED = "blocked"  # waiting for its parents (depends_on)
    PENDING = "pending"
    CLAIMED = "claimed"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def active(self) -> bool:
        return self in ACTIVE


TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE = frozenset({JobStatus.CLAIMED, JobStatus.IN_PROGRESS})


@dataclass(frozen=True, slots=True)
class Transition:
    name: str
    sources: frozenset[JobStatus]
    target: JobStatus
    actor: str
    doc: str

    def allows(self, current: JobStatus) -> bool:
        return current in self.sources

    def check(self, current: JobStatus, job_id: str = "") -> None:
        """Raise InvalidTransition when this move does not apply to ``current``."""
        if current not in self.sources:
            allowed = ", ".join(sorted(self.sources))
            raise InvalidTransition(
                f"cannot {self.name} a job that is {current} (allowed from: {allowed})",
                job_id=job_id,
                job_status=str(current),
                transition=self.name,
            )


def _t(name: str, sources: set[JobStatus], target: JobStatus, actor: str, doc: str) -> Transition:
    return Transition(name, frozenset(sources), target, actor, doc)


B, P, C, R = JobStatus.BLOCKED, JobStatus.PENDING, JobStatus.CLAIMED, JobStatus.IN_PROGRESS

UNBLOCK = _t("unblock", {B}, P, "dependencies", "every parent completed (or may fail)")
CLAIM = _t("claim", {P}, C, "claim", "the job is due and fits the worker")
START = _t("start", {C}, R, "agent report", "the backend started it")
COMPLETE = _t("complete", {C, R}, JobStatus.COMPLETED, "agent report", "success; result stored")
REQUEUE = _t(
    "requeue", {C, R}, P, "agent report / reaper", "failure or lost lease with attempts left"
)
FAIL = _t(
    "fail", {C, R}, JobStatus.FAILED, "agent report / reaper", "failure with no attempts left"
)
CANCEL = _t(
    "cancel",
    {B, P, C, R},
    JobStatus.CANCELLED,
    "cancel / dependencies",
    "running jobs are killed; a parent's failure cancels its dependants",
)
RETRY = _t(
    "retry", {JobStatus.FAILED, JobStatus.CANCELLED}, P, "retry (manual)", "attempts extended"
)

TRANSITIONS: tuple[Transition, ...] = (
    UNBLOCK,
    CLAIM,
    START,
    COMPLETE,
    REQUEUE,
    FAIL,
    CANCEL,
    RETRY,
)
BY_NAME: dict[str, Transition] = {t.name: t for t in TRANSITIONS}


def allowed_moves() -> set[tuple[JobStatus, JobStatus]]:
    """Every (from, to) pair some transition allows."""
    return {(s, t.target) for t in TRANSITIONS for s in t.sources}
