"""The job state machine: the transition table of DESIGN.md §2, and nothing more."""

from __future__ import annotations

import itertools

import pytest

from blixard.domain.states import (
    ACTIVE,
    BY_NAME,
    CANCEL,
    CLAIM,
    COMPLETE,
    FAIL,
    REQUEUE,
    RETRY,
    START,
    TERMINAL,
    TRANSITIONS,
    UNBLOCK,
    JobStatus,
    Transition,
    allowed_moves,
)
from blixard.errors import Conflict, InvalidTransition

B = JobStatus.BLOCKED
P = JobStatus.PENDING
C = JobStatus.CLAIMED
R = JobStatus.IN_PROGRESS
DONE = JobStatus.COMPLETED
F = JobStatus.FAILED
X = JobStatus.CANCELLED

# DESIGN.md §2, written out independently of the code: (from, to) -> transition name.
EXPECTED: dict[tuple[JobStatus, JobStatus], str] = {
    (B, P): "unblock",
    (B, X): "cancel",
    (P, C): "claim",
    (C, R): "start",
    (C, DONE): "complete",
    (R, DONE): "complete",
    (C, P): "requeue",
    (R, P): "requeue",
    (C, F): "fail",
    (R, F): "fail",
    (P, X): "cancel",
    (C, X): "cancel",
    (R, X): "cancel",
    (F, P): "retry",
    (X, P): "retry",
}

ALL_PAIRS = list(itertools.product(JobStatus, JobStatus))


def test_seven_statuses_with_their_wire_values() -> None:
    assert [str(s) for s in JobStatus] == [
        "blocked",
        "pending",
        "claimed",
        "in_progress",
        "completed",
        "failed",
        "cancelled",
    ]


def test_terminal_and_active_sets() -> None:
    assert {DONE, F, X} == TERMINAL
    assert {C, R} == ACTIVE
    assert not (TERMINAL & ACTIVE)
    assert P not in TERMINAL | ACTIVE
    assert B not in TERMINAL | ACTIVE


@pytest.mark.parametrize("status", list(JobStatus))
def test_terminal_and_active_properties(status: JobStatus) -> None:
    assert status.terminal is (status in {DONE, F, X})
    assert status.active is (status in {C, R})


def test_allowed_moves_match_the_design_table() -> None:
    assert allowed_moves() == set(EXPECTED)


def test_transition_names_and_targets() -> None:
    assert [t.name for t in TRANSITIONS] == [
        "unblock",
        "claim",
        "start",
        "complete",
        "requeue",
        "fail",
        "cancel",
        "retry",
    ]
    assert {t.name: t for t in TRANSITIONS} == BY_NAME
    targets = {t.name: t.target for t in TRANSITIONS}
    assert targets == {
        "unblock": P,
        "claim": C,
        "start": R,
        "complete": DONE,
        "requeue": P,
        "fail": F,
        "cancel": X,
        "retry": P,
    }
    assert CLAIM.sources == {P}
    assert START.sources == {C}
    assert COMPLETE.sources == REQUEUE.sources == FAIL.sources == {C, R}
    assert CANCEL.sources == {B, P, C, R}
    assert UNBLOCK.sources == {B}
    assert RETRY.sources == {F, X}


@pytest.mark.parametrize(("source", "target"), ALL_PAIRS, ids=str)
def test_every_pair_against_the_table(source: JobStatus, target: JobStatus) -> None:
    """All 49 (from, to) pairs: allowed exactly when the design table says so."""
    expected = EXPECTED.get((source, target))
    assert ((source, target) in allowed_moves()) is (expected is not None)
    into_target = [t for t in TRANSITIONS if t.target is target]
    for t in into_target:
        if t.name == expected:
            assert t.allows(source)
            t.check(source, "job-1")  # does not raise
        else:
            assert not t.allows(source)
            with pytest.raises(InvalidTransition):
                t.check(source, "job-1")


@pytest.mark.parametrize("transition", TRANSITIONS, ids=lambda t: t.name)
@pytest.mark.parametrize("status", list(JobStatus), ids=str)
def test_check_agrees_with_allows(transition: Transition, status: JobStatus) -> None:
    if status in transition.sources:
        assert transition.allows(status)
        transition.check(status)
    else:
        assert not transition.allows(status)
        with pytest.raises(InvalidTransition) as info:
            transition.check(status, "job-42")
        exc = info.value
        assert exc.details["transition"] == transition.name
        assert exc.details["job_status"] == str(status)
        assert exc.details["job_id"] == "job-42"


@pytest.mark.parametrize("status", sorted(TERMINAL), ids=str)
def test_nothing_leaves_a_terminal_state_but_retry(status: JobStatus) -> None:
    leaving = {t.name for t in TRANSITIONS if t.allows(status)}
    assert leaving == ({"retry"} if status in {F, X} else set())


def test_completed_is_final() -> None:
    assert not any(t.allows(DONE) for t in TRANSITIONS)


def test_invalid_transition_message_names_transition_and_status() -> None:
    with pytest.raises(InvalidTransition) as info:
        RETRY.check(DONE, "job-9")
    exc = info.value
    assert "retry" in exc.message
    assert "completed" in exc.message
    assert "cancelled, failed" in exc.message  # the allowed sources, sorted
    assert isinstance(exc, Conflict)
    assert exc.status_code == 409
    assert exc.code == "invalid_transition"
    assert exc.to_dict()["code"] == "invalid_transition"


def test_cancel_of_a_cancelled_job_is_refused() -> None:
    with pytest.raises(InvalidTransition, match=r"cannot cancel a job that is cancelled"):
        CANCEL.check(X)
