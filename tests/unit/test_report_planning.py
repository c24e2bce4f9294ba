"""plan_reports / plan_expiry: the pure decisions behind agent reports and the reaper."""

from __future__ import annotations

import random

import pytest

from blixard.domain.reports import (
    JobState,
    Report,
    ReportKind,
    expiry_reason,
    plan_expiry,
    plan_reports,
)
from blixard.domain.retry import Backoff
from blixard.domain.states import JobStatus

NOW = 1_000.0
W = "worker-a"
BACKOFF = Backoff(base_s=10.0, factor=2.0, max_s=100.0, jitter=0.5)


def state(
    job_id: str = "j1",
    status: JobStatus = JobStatus.CLAIMED,
    *,
    worker: str | None = W,
    attempt: int = 1,
    max_attempts: int = 3,
    started_at: float | None = None,
    deadline_at: float | None = None,
) -> JobState:
    return JobState(
        job_id,
        status,
        worker,
        attempt,
        max_attempts,
        BACKOFF,
        claimed_at=NOW - 50,
        started_at=started_at,
        deadline_at=deadline_at,
    )


def rng() -> random.Random:
    return random.Random(1)


def started(job_id: str = "j1", attempt: int = 1, at: float | None = None) -> Report:
    return Report(job_id, attempt, ReportKind.STARTED, started_at=at)


def completed(job_id: str = "j1", attempt: int = 1, result: object = None) -> Report:
    return Report(job_id, attempt, ReportKind.COMPLETED, result=result)


def failed(job_id: str = "j1", attempt: int = 1, *, retryable: bool = True) -> Report:
    return Report(
        job_id,
        attempt,
        ReportKind.FAILED,
        error={"kind": "boom", "message": "x"},
        retryable=retryable,
    )


def test_started_then_completed_in_one_batch() -> None:
    states = {"j1": state()}
    results, plan = plan_reports(
        W, [started(at=NOW - 5), completed(result={"n": 1})], states, NOW, rng()
    )
    assert [(r.applied, r.status, r.reason) for r in results] == [
        (True, JobStatus.IN_PROGRESS, ""),
        (True, JobStatus.COMPLETED, ""),
    ]
    assert plan.starts == [("j1", NOW - 5)]
    assert plan.completes == [("j1", {"n": 1}, NOW - 5)]  # started_at carried from the start
    assert plan.guard == {"j1": (W, 1)}
    assert [(a.attempt, a.outcome, a.worker_id, a.started_at) for a in plan.attempts] == [
        (1, "completed", W, NOW - 5)
    ]
    assert not plan.requeues
    assert not plan.fails
    assert states["j1"].status is JobStatus.COMPLETED


def test_start_without_time_uses_now() -> None:
    _, plan = plan_reports(W, [started()], {"j1": state()}, NOW, rng())
    assert plan.starts == [("j1", NOW)]


def test_duplicate_completion_is_rejected_with_reason() -> None:
    results, plan = plan_reports(
        W, [completed(result=1), completed(result=2)], {"j1": state()}, NOW, rng()
    )
    assert results[0].applied
    assert not results[1].applied
    assert results[1].status is JobStatus.COMPLETED
    assert results[1].reason == "invalid_transition: completed"
    assert plan.completes == [("j1", 1, NOW)]
    assert len(plan.attempts) == 1


def test_start_after_start_is_rejected() -> None:
    results, _ = plan_reports(
        W, [started()], {"j1": state(status=JobStatus.IN_PROGRESS)}, NOW, rng()
    )
    assert (results[0].applied, results[0].reason) == (False, "invalid_transition: in_progress")


@pytest.mark.parametrize(
    "status", [JobStatus.PENDING, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED]
)
def test_final_report_on_inactive_job_is_rejected(status: JobStatus) -> None:
    results, plan = plan_reports(W, [completed()], {"j1": state(status=status)}, NOW, rng())
    assert results[0].applied is False
    assert results[0].status is status
    assert results[0].reason == f"invalid_transition: {status}"
    assert not plan.completes
    assert not plan.attempts


def test_wrong_worker() -> None:
    results, plan = plan_reports("intruder", [completed()], {"j1": state()}, NOW, rng())
    assert (results[0].applied, results[0].reason) == (False, "not_claimed_by_worker")
    assert results[0].status is JobStatus.CLAIMED
    assert not plan.completes
    assert not plan.guard


def test_stale_attempt() -> None:
    results, plan = plan_reports(W, [failed(attempt=1)], {"j1": state(attempt=2)}, NOW, rng())
    assert (results[0].applied, results[0].reason) == (False, "stale_attempt")
    assert not plan.requeues
    assert not plan.fails


def test_unknown_job() -> None:
    results, _ = plan_reports(W, [completed("ghost")], {}, NOW, rng())
    assert (results[0].applied, results[0].status, results[0].reason) == (
        False,
        None,
        "not_found",
    )


def test_failed_with_attempts_left_requeues_within_backoff_window() -> None:
    for seed in range(20):
        states = {"j1": state(attempt=2, started_at=NOW - 3)}
        results, plan = plan_reports(W, [failed(attempt=2)], states, NOW, random.Random(seed))
        assert results[0].applied
        assert results[0].status is JobStatus.PENDING
        ((job_id, run_at, error),) = plan.requeues
        assert job_id == "j1"
        assert error == {"kind": "boom", "message": "x"}
        # attempt 2: capped delay 20s, equal jitter -> [10, 20]
        assert NOW + 10 <= run_at <= NOW + 20
        assert not plan.fails
        (record,) = plan.attempts
        assert (record.attempt, record.outcome, record.error) == (2, "failed", error)
        assert record.started_at == NOW - 3
        assert states["j1"].claimed_by is None


def test_failed_on_last_attempt_fails() -> None:
    results, plan = plan_reports(W, [failed(attempt=3)], {"j1": state(attempt=3)}, NOW, rng())
    assert results[0].status is JobStatus.FAILED
    assert plan.fails == [("j1", {"kind": "boom", "message": "x"})]
    assert not plan.requeues


def test_not_retryable_fails_with_attempts_left() -> None:
    results, plan = plan_reports(
        W, [failed(retryable=False)], {"j1": state(max_attempts=10)}, NOW, rng()
    )
    assert results[0].status is JobStatus.FAILED
    assert len(plan.fails) == 1
    assert not plan.requeues
    assert plan.attempts[0].outcome == "failed"


def test_reports_after_a_requeue_in_the_same_batch_are_rejected() -> None:
    results, plan = plan_reports(W, [failed(), completed()], {"j1": state()}, NOW, rng())
    assert results[0].applied
    assert (results[1].applied, results[1].reason) == (False, "invalid_transition: pending")
    assert not plan.completes


def test_batch_of_several_jobs_each_decided_on_its_own() -> None:
    states = {"a": state("a"), "b": state("b", worker="other"), "c": state("c", attempt=3)}
    reports = [completed("a"), completed("b"), failed("c", attempt=3), completed("zzz")]
    results, plan = plan_reports(W, reports, states, NOW, rng())
    assert [(r.job_id, r.applied) for r in results] == [
        ("a", True),
        ("b", False),
        ("c", True),
        ("zzz", False),
    ]
    assert set(plan.guard) == {"a", "c"}
    assert [f[0] for f in plan.fails] == ["c"]


# expiry ----------------------------------------------------------------------------------
def test_expiry_reason_timeout_vs_lease_expired() -> None:
    assert expiry_reason(state(), NOW) == "lease_expired"
    assert expiry_reason(state(deadline_at=NOW + 1), NOW) == "lease_expired"
    assert expiry_reason(state(deadline_at=NOW), NOW) == "timeout"
    assert expiry_reason(state(deadline_at=NOW - 1), NOW) == "timeout"


def test_plan_expiry_requeues_with_attempts_left() -> None:
    reasons, plan = plan_expiry([state("a", attempt=1)], NOW, rng())
    assert reasons == [("a", "lease_expired")]
    ((job_id, run_at, error),) = plan.requeues
    assert job_id == "a"
    assert NOW + 5 <= run_at <= NOW + 10
    assert error is not None
    assert error["kind"] == "lease_expired"
    assert error["worker"] == W
    assert W in error["message"]
    assert plan.guard == {"a": (W, 1)}
    (record,) = plan.attempts
    assert (record.outcome, record.worker_id, record.attempt) == ("lease_expired", W, 1)


def test_plan_expiry_fails_when_attempts_are_spent() -> None:
    reasons, plan = plan_expiry(
        [state("a", attempt=3, max_attempts=3, deadline_at=NOW - 1)], NOW, rng()
    )
    assert reasons == [("a", "timeout")]
    ((job_id, error),) = plan.fails
    assert job_id == "a"
    assert error is not None
    assert error["kind"] == "timeout"
    assert "timeout" in error["message"]
    assert plan.attempts[0].outcome == "timeout"
    assert not plan.requeues


def test_plan_expiry_mixed_batch() -> None:
    states = [
        state("a", attempt=1),
        state("b", attempt=3, max_attempts=3),
        state("c", attempt=1, deadline_at=NOW),
    ]
    reasons, plan = plan_expiry(states, NOW, rng())
    assert reasons == [("a", "lease_expired"), ("b", "lease_expired"), ("c", "timeout")]
    assert [r[0] for r in plan.requeues] == ["a", "c"]
    assert [f[0] for f in plan.fails] == ["b"]
    assert [a.outcome for a in plan.attempts] == ["lease_expired", "lease_expired", "timeout"]
