"""Conformance: leases, heartbeats, timeouts and the reaper."""

from __future__ import annotations

import pytest
from helpers import add_job, add_jobs, add_worker, claim, claim_one, completed, ids, started

from blixard.clock import ManualClock
from blixard.domain.jobs import Attempt, Job
from blixard.domain.retry import Backoff
from blixard.domain.states import JobStatus
from blixard.domain.workers import WorkerStatus
from blixard.errors import WorkerNotFound
from blixard.ids import new_id
from blixard.storage.base import Reaped, RunningJob, Store


async def _get(store: Store, job_id: str) -> Job:
    job = await store.get_job(job_id)
    assert job is not None
    return job


def _running(*jobs: Job) -> list[RunningJob]:
    return [RunningJob(j.id, j.attempt) for j in jobs]


# reaping -----------------------------------------------------------------------------------
async def test_lease_expiry_is_strict(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1")
    await add_job(store, t)
    job = await claim_one(store, "w1", t, ttl=10)
    assert await store.reap_expired(t + 10, 100) == []  # lease_expires_at == now: still held
    assert (await _get(store, job.id)).status is JobStatus.CLAIMED
    reaped = await store.reap_expired(t + 10.5, 100)
    assert [(r.job.id, r.reason) for r in reaped] == [(job.id, "lease_expired")]


async def test_reap_lease_expired_requeues(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1")
    await add_job(store, t)
    job = await claim_one(store, "w1", t, ttl=10)
    await store.apply_reports("w1", [started(job)], t + 1)
    now = t + 11
    (reaped,) = await store.reap_expired(now, 100)
    assert reaped.reason == "lease_expired"
    after = reaped.job
    assert after == await _get(store, job.id)
    assert after.status is JobStatus.PENDING
    assert now + 0.5 <= after.run_at <= now + 1.0
    assert after.error is not None
    assert after.error["kind"] == "lease_expired"
    assert after.error["worker"] == "w1"
    assert isinstance(after.error["message"], str)
    assert after.error["message"]
    assert after.claimed_by is None
    assert after.claimed_at is None
    assert after.started_at is None
    assert after.lease_expires_at is None
    assert after.finished_at is None
    assert after.attempt == 1
    assert after.updated_at == now
    assert await store.job_attempts(job.id) == [
        Attempt(job.id, 1, "w1", t, t + 1, now, "lease_expired", after.error)
    ]
    worker = await store.get_worker("w1")
    assert worker is not None
    assert worker.running == 0
    again = await claim_one(store, "w1", after.run_at)
    assert again.attempt == 2


async def test_reap_on_last_attempt_fails(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1")
    await add_job(store, t, max_attempts=1)
    job = await claim_one(store, "w1", t, ttl=10)
    now = t + 20
    (reaped,) = await store.reap_expired(now, 100)
    assert reaped.reason == "lease_expired"
    after = reaped.job
    assert after.status is JobStatus.FAILED
    assert after.finished_at == now
    assert after.lease_expires_at is None
    assert after.error is not None
    assert after.error["kind"] == "lease_expired"
    assert after.error["worker"] == "w1"
    assert after.updated_at == now
    assert await _get(store, job.id) == after
    (attempt,) = await store.job_attempts(job.id)
    assert attempt == Attempt(job.id, 1, "w1", t, None, now, "lease_expired", after.error)


async def test_reap_timeout(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1")
    await add_job(store, t, timeout_s=5, max_attempts=2, backoff=Backoff(base_s=4, jitter=0))
    job = await claim_one(store, "w1", t, ttl=30)  # deadline = t + 5 + 30
    hb = await store.heartbeat("w1", _running(job), t + 20, 30)
    assert hb.renewed == 1
    assert (await _get(store, job.id)).lease_expires_at == t + 35  # capped by the deadline
    assert await store.reap_expired(t + 35, 100) == []
    now = t + 36
    (reaped,) = await store.reap_expired(now, 100)
    assert reaped.reason == "timeout"
    assert reaped.job.status is JobStatus.PENDING
    assert reaped.job.run_at == now + 4
    assert reaped.job.error is not None
    assert reaped.job.error["kind"] == "timeout"
    assert reaped.job.error["worker"] == "w1"
    (attempt,) = await store.job_attempts(job.id)
    assert attempt.outcome == "timeout"
    assert attempt.error == reaped.job.error

    # the second (last) attempt times out too: failed
    again = await claim_one(store, "w1", now + 4, ttl=30)
    assert again.attempt == 2
    (reaped,) = await store.reap_expired(now + 4 + 35.5, 100)
    assert reaped.reason == "timeout"
    assert reaped.job.status is JobStatus.FAILED
    assert reaped.job.finished_at == now + 4 + 35.5
    assert [a.outcome for a in await store.job_attempts(job.id)] == ["timeout", "timeout"]


async def test_lost_lease_before_deadline_is_lease_expired(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    await add_worker(store, t, "w1")
    await add_job(store, t, timeout_s=100)
    job = await claim_one(store, "w1", t, ttl=10)  # lease t+10, deadline t+110
    (reaped,) = await store.reap_expired(t + 11, 100)
    assert reaped.job.id == job.id
    assert reaped.reason == "lease_expired"


async def test_reap_limit_takes_oldest_leases_first(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=10)
    await add_jobs(store, t, 5)
    claimed = [await claim_one(store, "w1", t + i, ttl=10) for i in (4, 2, 0, 3, 1)]
    by_lease = sorted(claimed, key=lambda j: j.lease_expires_at or 0)
    first = await store.reap_expired(t + 100, 2)
    assert [r.job.id for r in first] == ids(by_lease[:2])
    second = await store.reap_expired(t + 100, 10)
    assert [r.job.id for r in second] == ids(by_lease[2:])
    assert await store.reap_expired(t + 100, 10) == []


async def test_reap_ignores_live_pending_and_terminal(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=10)
    jobs = await add_jobs(store, t, 4)
    done = await claim_one(store, "w1", t, ttl=5)
    await store.apply_reports("w1", [completed(done)], t + 1)
    cancelled = await claim_one(store, "w1", t, ttl=5)
    await store.cancel_job(cancelled.id, t + 1, "x")
    live = await claim_one(store, "w1", t + 50, ttl=100)
    before = await store.get_jobs(ids(jobs))
    assert await store.reap_expired(t + 60, 100) == []
    assert await store.get_jobs(ids(jobs)) == before
    assert live.status is JobStatus.CLAIMED


async def test_reap_returns_reaped_objects(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1")
    await add_job(store, t, max_attempts=1)
    job = await claim_one(store, "w1", t, ttl=1)
    reaped = await store.reap_expired(t + 2, 10)
    assert reaped == [Reaped(await _get(store, job.id), "lease_expired")]


# heartbeats --------------------------------------------------------------------------------
async def test_heartbeat_renews_only_listed_jobs(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=10)
    await add_jobs(store, t, 3)
    a, b, c = await claim(store, "w1", t, ttl=10)
    await store.apply_reports("w1", [started(b)], t + 1)
    hb = await store.heartbeat("w1", _running(a, b), t + 8, 10)
    assert hb.renewed == 2
    assert hb.cancel == []
    assert hb.worker.id == "w1"
    assert hb.worker.last_seen_at == t + 8
    assert hb.worker.running == 3
    assert (await _get(store, a.id)).lease_expires_at == t + 18
    assert (await _get(store, b.id)).lease_expires_at == t + 18
    assert (await _get(store, b.id)).status is JobStatus.IN_PROGRESS
    assert (await _get(store, c.id)).lease_expires_at == t + 10  # not listed: not renewed
    reaped = await store.reap_expired(t + 11, 100)
    assert [(r.job.id, r.reason) for r in reaped] == [(c.id, "lease_expired")]


async def test_heartbeat_names_jobs_to_stop(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=10)
    await add_worker(store, t, "w2", concurrency=10)
    await add_jobs(store, t, 5, backoff=Backoff(base_s=0, jitter=0))
    keep, cancelled, reassigned, finished, stale = await claim(store, "w1", t, ttl=10)
    await store.cancel_job(cancelled.id, t + 1, "user")
    await store.apply_reports("w1", [completed(finished)], t + 1)
    # reassigned: lease lost, reaped, claimed by w2
    await store.heartbeat("w1", _running(keep, stale), t + 5, 10)
    (reaped,) = await store.reap_expired(t + 11, 100)
    assert reaped.job.id == reassigned.id
    moved = await claim_one(store, "w2", t + 11)
    assert moved.id == reassigned.id
    unknown = new_id()
    running = [
        RunningJob(keep.id, 1),
        RunningJob(cancelled.id, 1),
        RunningJob(reassigned.id, 1),
        RunningJob(unknown, 1),
        RunningJob(finished.id, 1),
        RunningJob(stale.id, 7),
    ]
    hb = await store.heartbeat("w1", running, t + 12, 10)
    assert hb.cancel == [cancelled.id, reassigned.id, unknown, finished.id, stale.id]
    assert hb.renewed == 1
    assert (await _get(store, keep.id)).lease_expires_at == t + 22
    # the stale entry did not renew the real attempt
    assert (await _get(store, stale.id)).lease_expires_at == t + 15
    # the reassigned job belongs to w2, untouched
    moved_now = await _get(store, moved.id)
    assert moved_now.claimed_by == "w2"
    assert moved_now.lease_expires_at == moved.lease_expires_at


async def test_heartbeat_unknown_worker(store: Store, clock: ManualClock) -> None:
    with pytest.raises(WorkerNotFound):
        await store.heartbeat("ghost", [], clock.now(), 10)


async def test_heartbeat_lease_capped_by_deadline(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=10)
    await add_job(store, t, timeout_s=10)
    await add_job(store, t)
    timed, free = await claim(store, "w1", t, ttl=20)  # timed: deadline t + 30
    assert timed.timeout_s == 10
    hb = await store.heartbeat("w1", _running(timed, free), t + 5, 20)
    assert hb.renewed == 2
    assert (await _get(store, timed.id)).lease_expires_at == t + 25  # under the deadline
    assert (await _get(store, free.id)).lease_expires_at == t + 25
    await store.heartbeat("w1", _running(timed, free), t + 15, 20)
    assert (await _get(store, timed.id)).lease_expires_at == t + 30  # capped
    assert (await _get(store, free.id)).lease_expires_at == t + 35


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (WorkerStatus.ONLINE, WorkerStatus.ONLINE),
        (WorkerStatus.OFFLINE, WorkerStatus.ONLINE),
        (WorkerStatus.DRAINING, WorkerStatus.DRAINING),
    ],
)
async def test_heartbeat_worker_status(
    store: Store, clock: ManualClock, status: WorkerStatus, expected: WorkerStatus
) -> None:
    t = clock.now()
    await add_worker(store, t, "w1")
    await store.set_worker_status("w1", status, t + 1)
    hb = await store.heartbeat("w1", [], t + 2, 10)
    assert hb.worker.status is expected
    assert hb.worker.last_seen_at == t + 2
    assert hb.cancel == []
    assert hb.renewed == 0
    assert await store.get_worker("w1") == hb.worker


async def test_draining_worker_heartbeat_still_renews(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1")
    await add_job(store, t)
    job = await claim_one(store, "w1", t, ttl=10)
    await store.set_worker_status("w1", WorkerStatus.DRAINING, t)
    hb = await store.heartbeat("w1", _running(job), t + 5, 10)
    assert hb.renewed == 1
    assert (await _get(store, job.id)).lease_expires_at == t + 15
