"""Conformance: agent reports as compare-and-set transitions, retries and backoff."""

from __future__ import annotations

import pytest
from helpers import (
    add_job,
    add_jobs,
    add_worker,
    claim,
    claim_one,
    completed,
    failed,
    invalid,
    started,
)

from blixard.clock import ManualClock
from blixard.domain.jobs import Attempt, Job
from blixard.domain.retry import Backoff
from blixard.domain.states import JobStatus
from blixard.ids import new_id
from blixard.storage.base import Report, ReportKind, ReportResult, Store


async def _claimed(store: Store, t: float, worker: str = "w1", **job_kwargs: object) -> Job:
    await add_worker(store, t, worker)
    await add_job(store, t, **job_kwargs)
    return await claim_one(store, worker, t)


async def _get(store: Store, job_id: str) -> Job:
    job = await store.get_job(job_id)
    assert job is not None
    return job


# allowed transitions -----------------------------------------------------------------------
@pytest.mark.parametrize("given", [None, 1_700_000_000.5])
async def test_started(store: Store, clock: ManualClock, given: float | None) -> None:
    t = clock.now()
    job = await _claimed(store, t)
    (r,) = await store.apply_reports("w1", [started(job, started_at=given)], t + 1)
    assert r == ReportResult(job.id, True, JobStatus.IN_PROGRESS, "")
    after = await _get(store, job.id)
    assert after.status is JobStatus.IN_PROGRESS
    assert after.started_at == (given if given is not None else t + 1)
    assert after.updated_at == t + 1
    assert after.claimed_by == "w1"
    assert after.attempt == 1
    assert after.lease_expires_at == job.lease_expires_at
    assert await store.job_attempts(job.id) == []


async def test_completed_from_claimed(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    job = await _claimed(store, t)
    (r,) = await store.apply_reports("w1", [completed(job, {"answer": [4, 2]})], t + 3)
    assert r == ReportResult(job.id, True, JobStatus.COMPLETED, "")
    after = await _get(store, job.id)
    assert after.status is JobStatus.COMPLETED
    assert after.result == {"answer": [4, 2]}
    assert after.error is None
    assert after.started_at == t + 3  # no start report, no started_at given: now
    assert after.finished_at == t + 3
    assert after.lease_expires_at is None
    assert after.updated_at == t + 3
    assert after.claimed_by == "w1"
    assert await store.job_attempts(job.id) == [
        Attempt(job.id, 1, "w1", t, t + 3, t + 3, "completed", None)
    ]


async def test_completed_with_reported_started_at(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    job = await _claimed(store, t)
    (r,) = await store.apply_reports("w1", [completed(job, 7, started_at=t + 1)], t + 3)
    assert r.applied
    after = await _get(store, job.id)
    assert after.started_at == t + 1
    assert after.result == 7


async def test_completed_from_in_progress_keeps_started_at(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    job = await _claimed(store, t)
    await store.apply_reports("w1", [started(job)], t + 1)
    (r,) = await store.apply_reports("w1", [completed(job, "done", started_at=t + 2)], t + 5)
    assert r == ReportResult(job.id, True, JobStatus.COMPLETED, "")
    after = await _get(store, job.id)
    assert after.started_at == t + 1
    assert after.finished_at == t + 5
    assert after.result == "done"
    assert await store.job_attempts(job.id) == [
        Attempt(job.id, 1, "w1", t, t + 1, t + 5, "completed", None)
    ]


async def test_completed_with_null_result(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    job = await _claimed(store, t)
    (r,) = await store.apply_reports("w1", [completed(job, None)], t + 1)
    assert r.status is JobStatus.COMPLETED
    assert (await _get(store, job.id)).result is None


async def test_failed_with_attempts_left_requeues_with_backoff(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    job = await _claimed(store, t)  # default: 3 attempts, default backoff
    await store.apply_reports("w1", [started(job)], t + 1)
    err = {"kind": "exit", "message": "exit code 2", "code": 2}
    now = t + 2
    (r,) = await store.apply_reports("w1", [failed(job, err)], now)
    assert r == ReportResult(job.id, True, JobStatus.PENDING, "")
    after = await _get(store, job.id)
    assert after.status is JobStatus.PENDING
    assert now + 0.5 <= after.run_at <= now + 1.0  # delay 1s, equal jitter
    assert after.error == err
    assert after.attempt == 1
    assert after.claimed_by is None
    assert after.claimed_at is None
    assert after.started_at is None
    assert after.lease_expires_at is None
    assert after.finished_at is None
    assert after.result is None
    assert after.updated_at == now
    assert await store.job_attempts(job.id) == [
        Attempt(job.id, 1, "w1", t, t + 1, now, "failed", err)
    ]
    assert await store.next_due_at() == after.run_at


async def test_backoff_grows_then_last_attempt_fails(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1")
    job = await add_job(store, t)  # max_attempts 3, Backoff(1, 2, 300, 0.5)
    now = t
    windows = [(0.5, 1.0), (1.0, 2.0)]
    for attempt, (lo, hi) in enumerate(windows, start=1):
        c = await claim_one(store, "w1", now)
        assert c.attempt == attempt
        (r,) = await store.apply_reports("w1", [failed(c)], now)
        assert r.status is JobStatus.PENDING
        after = await _get(store, job.id)
        assert now + lo <= after.run_at <= now + hi
        now = after.run_at
    c = await claim_one(store, "w1", now)
    assert c.attempt == 3
    err = {"kind": "exit", "message": "last"}
    (r,) = await store.apply_reports("w1", [failed(c, err)], now + 1)
    assert r == ReportResult(job.id, True, JobStatus.FAILED, "")
    final = await _get(store, job.id)
    assert final.status is JobStatus.FAILED
    assert final.error == err
    assert final.finished_at == now + 1
    assert final.lease_expires_at is None
    assert final.claimed_by == "w1"
    assert final.attempt == 3
    assert final.updated_at == now + 1
    attempts = await store.job_attempts(job.id)
    assert [(a.attempt, a.outcome) for a in attempts] == [
        (1, "failed"),
        (2, "failed"),
        (3, "failed"),
    ]
    assert await store.next_due_at() is None


async def test_backoff_without_jitter_is_exact(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1")
    job = await add_job(
        store, t, max_attempts=4, backoff=Backoff(base_s=10, factor=3, max_s=50, jitter=0)
    )
    now = t
    for delay in (10.0, 30.0, 50.0):  # 10, 30, 90 capped at 50
        c = await claim_one(store, "w1", now)
        await store.apply_reports("w1", [failed(c)], now)
        after = await _get(store, job.id)
        assert after.run_at == now + delay
        now = after.run_at


async def test_non_retryable_failure_fails_immediately(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    job = await _claimed(store, t, max_attempts=5)
    err = {"kind": "bad_payload", "message": "no"}
    (r,) = await store.apply_reports("w1", [failed(job, err, retryable=False)], t + 1)
    assert r == ReportResult(job.id, True, JobStatus.FAILED, "")
    after = await _get(store, job.id)
    assert after.status is JobStatus.FAILED
    assert after.attempt == 1
    assert after.error == err
    assert after.finished_at == t + 1
    assert after.lease_expires_at is None
    assert await store.job_attempts(job.id) == [
        Attempt(job.id, 1, "w1", t, None, t + 1, "failed", err)
    ]


async def test_requeued_job_is_claimed_again_after_backoff(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    job = await _claimed(store, t)
    await store.apply_reports("w1", [failed(job)], t)
    after = await _get(store, job.id)
    assert await claim(store, "w1", after.run_at - 0.01) == []
    again = await claim_one(store, "w1", after.run_at)
    assert again.id == job.id
    assert again.attempt == 2
    assert again.error == after.error  # the last error stays until the next outcome


# forbidden transitions ---------------------------------------------------------------------
async def _assert_rejected(
    store: Store,
    worker: str,
    report: Report,
    now: float,
    *,
    status: JobStatus | None,
    reason: str,
) -> None:
    before = await store.get_job(report.job_id)
    attempts_before = await store.job_attempts(report.job_id)
    (r,) = await store.apply_reports(worker, [report], now)
    assert r == ReportResult(report.job_id, False, status, reason)
    assert await store.get_job(report.job_id) == before
    assert await store.job_attempts(report.job_id) == attempts_before


async def test_duplicate_completion(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    job = await _claimed(store, t)
    await store.apply_reports("w1", [completed(job, 1)], t + 1)
    for report in (completed(job, 2), failed(job), started(job)):
        await _assert_rejected(
            store,
            "w1",
            report,
            t + 2,
            status=JobStatus.COMPLETED,
            reason=invalid(JobStatus.COMPLETED),
        )
    assert (await _get(store, job.id)).result == 1


async def test_duplicate_start(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    job = await _claimed(store, t)
    await store.apply_reports("w1", [started(job)], t + 1)
    await _assert_rejected(
        store,
        "w1",
        started(job),
        t + 2,
        status=JobStatus.IN_PROGRESS,
        reason=invalid(JobStatus.IN_PROGRESS),
    )


@pytest.mark.parametrize("kind", list(ReportKind))
async def test_report_from_wrong_worker(store: Store, clock: ManualClock, kind: ReportKind) -> None:
    t = clock.now()
    job = await _claimed(store, t)
    await add_worker(store, t, "w2")
    await _assert_rejected(
        store,
        "w2",
        Report(job.id, 1, kind),
        t + 1,
        status=JobStatus.CLAIMED,
        reason="not_claimed_by_worker",
    )


@pytest.mark.parametrize("kind", list(ReportKind))
async def test_report_with_stale_attempt(
    store: Store, clock: ManualClock, kind: ReportKind
) -> None:
    t = clock.now()
    job = await _claimed(store, t)
    for attempt in (0, 2):
        await _assert_rejected(
            store,
            "w1",
            Report(job.id, attempt, kind),
            t + 1,
            status=JobStatus.CLAIMED,
            reason="stale_attempt",
        )


async def test_old_attempt_report_after_requeue_and_reclaim(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    job = await _claimed(store, t, backoff=Backoff(base_s=0, jitter=0))
    await store.apply_reports("w1", [failed(job)], t + 1)
    # back to pending: the old attempt's reports hit a pending job
    await _assert_rejected(
        store,
        "w1",
        completed(job),
        t + 1,
        status=JobStatus.PENDING,
        reason=invalid(JobStatus.PENDING),
    )
    again = await claim_one(store, "w1", t + 1)
    assert again.attempt == 2
    await _assert_rejected(
        store,
        "w1",
        completed(job, attempt=1),
        t + 2,
        status=JobStatus.CLAIMED,
        reason="stale_attempt",
    )
    (r,) = await store.apply_reports("w1", [completed(again)], t + 3)
    assert r.applied


async def test_report_on_pending_job(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1")
    job = await add_job(store, t)
    for kind in ReportKind:
        await _assert_rejected(
            store,
            "w1",
            Report(job.id, 0, kind),
            t,
            status=JobStatus.PENDING,
            reason=invalid(JobStatus.PENDING),
        )


async def test_report_on_cancelled_job(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    job = await _claimed(store, t)
    await store.cancel_job(job.id, t + 1, "stop")
    for report in (started(job), completed(job), failed(job)):
        await _assert_rejected(
            store,
            "w1",
            report,
            t + 2,
            status=JobStatus.CANCELLED,
            reason=invalid(JobStatus.CANCELLED),
        )


async def test_report_on_failed_job(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    job = await _claimed(store, t, max_attempts=1)
    await store.apply_reports("w1", [failed(job)], t + 1)
    for report in (started(job), completed(job), failed(job)):
        await _assert_rejected(
            store, "w1", report, t + 2, status=JobStatus.FAILED, reason=invalid(JobStatus.FAILED)
        )


async def test_report_on_unknown_job(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1")
    unknown = new_id()
    (r,) = await store.apply_reports("w1", [Report(unknown, 1, ReportKind.COMPLETED)], t)
    assert r == ReportResult(unknown, False, None, "not_found")


async def test_guard_order(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    job = await _claimed(store, t)
    await add_worker(store, t, "w2")
    # wrong worker and wrong attempt: the worker is checked first
    (r,) = await store.apply_reports("w2", [completed(job, attempt=9)], t)
    assert r == ReportResult(
        job.id, False, status=JobStatus.CLAIMED, reason="not_claimed_by_worker"
    )
    await store.apply_reports("w1", [completed(job)], t + 1)
    # terminal, wrong worker, wrong attempt: the status is checked first
    (r,) = await store.apply_reports("w2", [completed(job, attempt=9)], t + 2)
    assert r == ReportResult(
        job.id, False, status=JobStatus.COMPLETED, reason=invalid(JobStatus.COMPLETED)
    )


async def test_reports_apply_independently_in_order(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1")
    a, b, c, d = await add_jobs(store, t, 4, max_attempts=1)
    ca, cb, cc, cd = [await claim_one(store, "w1", t) for _ in range(4)]
    assert [ca.id, cb.id, cc.id, cd.id] == [a.id, b.id, c.id, d.id]
    unknown = new_id()
    results = await store.apply_reports(
        "w1",
        [
            completed(ca, {"i": "a"}),
            completed(cb, attempt=5),  # stale
            Report(unknown, 1, ReportKind.STARTED),
            started(cc),
            completed(cc, {"i": "c"}),  # same batch: sees the start applied just before
            failed(cd, retryable=False),
            completed(ca, {"i": "again"}),  # duplicate within the batch
        ],
        t + 1,
    )
    assert results == [
        ReportResult(a.id, True, JobStatus.COMPLETED, ""),
        ReportResult(b.id, False, status=JobStatus.CLAIMED, reason="stale_attempt"),
        ReportResult(unknown, False, None, "not_found"),
        ReportResult(c.id, True, JobStatus.IN_PROGRESS, ""),
        ReportResult(c.id, True, JobStatus.COMPLETED, ""),
        ReportResult(d.id, True, JobStatus.FAILED, ""),
        ReportResult(a.id, False, status=JobStatus.COMPLETED, reason=invalid(JobStatus.COMPLETED)),
    ]
    assert (await _get(store, a.id)).result == {"i": "a"}
    assert (await _get(store, b.id)).status is JobStatus.CLAIMED
    cj = await _get(store, c.id)
    assert cj.result == {"i": "c"}
    assert cj.started_at == t + 1
    assert (await _get(store, d.id)).status is JobStatus.FAILED


async def test_empty_report_batch(store: Store, clock: ManualClock) -> None:
    await add_worker(store, clock.now(), "w1")
    assert await store.apply_reports("w1", [], clock.now()) == []
