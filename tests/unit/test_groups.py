"""A group's aggregate status from its jobs' statuses."""

from __future__ import annotations

import pytest

from blixard.domain.groups import GroupStatus, aggregate_status
from blixard.domain.states import JobStatus

S = JobStatus
G = GroupStatus


@pytest.mark.parametrize(
    ("counts", "status"),
    [
        ({}, None),
        ({S.PENDING: 0}, None),
        ({S.PENDING: 3}, G.PENDING),
        ({S.PENDING: 1, S.BLOCKED: 2}, G.PENDING),
        ({S.CLAIMED: 1, S.PENDING: 5}, G.RUNNING),
        ({S.IN_PROGRESS: 1, S.FAILED: 1}, G.RUNNING),
        ({S.COMPLETED: 1, S.BLOCKED: 1}, G.RUNNING),  # between two steps
        ({S.FAILED: 1, S.PENDING: 1}, G.RUNNING),  # work is left: not finished yet
        ({S.COMPLETED: 4}, G.COMPLETED),
        ({S.COMPLETED: 3, S.FAILED: 1}, G.FAILED),
        ({S.FAILED: 1, S.CANCELLED: 3}, G.FAILED),
        ({S.COMPLETED: 2, S.CANCELLED: 1}, G.CANCELLED),
        ({"cancelled": 2, "pending": 0}, G.CANCELLED),  # status names work too
    ],
)
def test_aggregate_status(counts: dict[JobStatus | str, int], status: GroupStatus | None) -> None:
    assert aggregate_status(counts) == status


def test_terminal_group_statuses() -> None:
    assert {s for s in GroupStatus if s.terminal} == {G.COMPLETED, G.FAILED, G.CANCELLED}
