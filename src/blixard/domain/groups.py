"""Job groups: jobs submitted together share a group id; the group's aggregate status is
derived from its jobs' statuses. Pure: no I/O.

The aggregate status, from the counts of the group's jobs by status:

- ``running``: a job is claimed or in progress, or the group has started (some job
  ended) and others are still waiting (pending or blocked): work is under way.
- ``pending``: every job is waiting (pending or blocked); none has started or ended.
- ``completed``: every job completed.
- ``failed``: every job ended and at least one failed (a failure usually cancels its
  dependants, so failed wins over cancelled).
- ``cancelled``: every job ended, none failed, at least one was cancelled.

So a group is in a terminal aggregate status exactly when every one of its jobs is
terminal; until then the counts say how many failed so far.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from blixard.domain.states import ACTIVE, TERMINAL, JobStatus


class GroupStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (GroupStatus.COMPLETED, GroupStatus.FAILED, GroupStatus.CANCELLED)


WAITING = frozenset({JobStatus.PENDING, JobStatus.BLOCKED})


def aggregate_status(counts: Mapping[JobStatus | str, int]) -> GroupStatus | None:
    """The group's status from its job counts by status; None for a group with no jobs."""
    by: dict[JobStatus, int] = {}
    for status, n in counts.items():
        if n > 0:
            key = JobStatus(status)
            by[key] = by.get(key, 0) + n
    if not by:
        return None
    active = sum(by.get(s, 0) for s in ACTIVE)
    waiting = sum(by.get(s, 0) for s in WAITING)
    ended = sum(by.get(s, 0) for s in TERMINAL)
    if active or (waiting and ended):
        return GroupStatus.RUNNING
    if waiting:
        return GroupStatus.PENDING
    if by.get(JobStatus.FAILED):
        return GroupStatus.FAILED
    if by.get(JobStatus.CANCELLED):
        return GroupStatus.CANCELLED
    return GroupStatus.COMPLETED
