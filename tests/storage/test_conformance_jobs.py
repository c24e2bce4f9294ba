"""Conformance: inserting, reading, idempotency, cancel, retry, attempts, next_due_at."""

from __future__ import annotations

import pytest
from helpers import (
    add_job,
    add_jobs,
    add_worker,
    claim_one,
    completed,
    failed,
    new_job,
    req,
    started,
)

from blixard.clock import ManualClock
from blixard.domain.jobs import Attempt, JobSpec, NewJob
from blixard.domain.retry import Backoff
from blixard.domain.states import JobStatus
from blixard.errors import InvalidTransition, JobNotFound
from blixard.ids import new_id
from blixard.storage.base import JobQuery, Store


async def test_schema_is_migrated_on_open(store: Store) -> None:
    assert await store.schema_version() >= 1
    assert await store.migrate() == []  # open already applied everything


async def test_insert_creates_pending_job_with_every_field(
    store: Store, clock: ManualClock
) -> None:
    now = clock.now()
    backoff = Backoff(base_s=2.0, factor=3.0, max_s=60.0, jitter=0.25)
    s = JobSpec.build(
        {"cmd": ["echo", "hi"], "nested": {"a": [1, 2.5, None, True]}},
        queue="q1",
        tenant="acme",
        worker_types=["process", "wasm"],
        requirements=req(cpu=1.5, memory_mb=256, gpu=1, labels={"zone": "eu"}),
        priority=7,
        max_attempts=5,
        backoff=backoff,
        timeout_s=12.5,
        idempotency_key="k-1",
    )
    nj = NewJob(id=new_id(), spec=s, created_at=now, run_at=now)
    (ins,) = await store.insert_jobs([nj])
    job = ins.job
    assert ins.created is True
    assert job.id == nj.id
    assert job.queue == "q1"
    assert job.tenant == "acme"
    assert job.payload == {"cmd": ["echo", "hi"], "nested": {"a": [1, 2.5, None, True]}}
    assert job.worker_types == ("process", "wasm")
    assert job.requirements == req(cpu=1.5, memory_mb=256, gpu=1, labels={"zone": "eu"})
    assert job.priority == 7
    assert job.run_at == now
    assert job.max_attempts == 5
    assert job.backoff == backoff
    assert job.timeout_s == 12.5
    assert job.idempotency_key == "k-1"
    assert job.status is JobStatus.PENDING
    assert job.attempt == 0
    assert job.claimed_by is None
    assert job.claimed_at is None
    assert job.lease_expires_at is None
    assert job.started_at is None
    assert job.finished_at is None
    assert job.result is None
    assert job.error is None
    assert job.created_at == now
    assert job.updated_at == now
    assert await store.get_job(nj.id) == job


async def test_insert_uses_new_job_run_at(store: Store, clock: ManualClock) -> None:
    now = clock.now()
    job = await add_job(store, now, run_at=now + 3600)
    assert job.run_at == now + 3600
    assert job.created_at == now
    assert job.updated_at == now


async def test_insert_batch_keeps_input_order(store: Store, clock: ManualClock) -> None:
    batch = [new_job(clock.now(), {"i": i}) for i in range(5)]
    inserted = await store.insert_jobs(batch)
    assert [i.job.id for i in inserted] == [nj.id for nj in batch]
    assert [i.job.payload for i in inserted] == [{"i": i} for i in range(5)]
    assert all(i.created for i in inserted)


async def test_insert_empty_batch(store: Store) -> None:
    assert await store.insert_jobs([]) == []


async def test_get_job_and_get_jobs(store: Store, clock: ManualClock) -> None:
    jobs = await add_jobs(store, clock.now(), 3)
    assert await store.get_job(new_id()) is None
    got = await store.get_jobs([jobs[2].id, new_id(), jobs[0].id])
    assert sorted(got, key=lambda j: j.id) == sorted([jobs[0], jobs[2]], key=lambda j: j.id)
    assert await store.get_jobs([]) == []


async def test_returned_jobs_are_snapshots(store: Store, clock: ManualClock) -> None:
    job = await add_job(store, clock.now(), payload={"a": [1, 2]})
    job.payload["a"].append(3)
    job.payload["b"] = 1
    again = await store.get_job(job.id)
    assert again is not None
    assert again.payload == {"a": [1, 2]}


# idempotency -------------------------------------------------------------------------------
async def test_idempotency_same_tenant_returns_existing_job(
    store: Store, clock: ManualClock
) -> None:
    now = clock.now()
    first = await add_job(store, now, payload={"v": 1}, idempotency_key="key")
    (again,) = await store.insert_jobs([new_job(now + 5, {"v": 2}, idempotency_key="key")])
    assert again.created is False
    assert again.job == first
    page = await store.list_jobs(JobQuery())
    assert [j.id for j in page.jobs] == [first.id]


async def test_idempotency_is_per_tenant(store: Store, clock: ManualClock) -> None:
    now = clock.now()
    a = await add_job(store, now, tenant="a", idempotency_key="key")
    (b,) = await store.insert_jobs([new_job(now, tenant="b", idempotency_key="key")])
    assert b.created is True
    assert b.job.id != a.id
    assert b.job.tenant == "b"
    assert len((await store.list_jobs(JobQuery())).jobs) == 2


async def test_idempotency_within_one_batch(store: Store, clock: ManualClock) -> None:
    now = clock.now()
    batch = [
        new_job(now, {"i": 0}, idempotency_key="k"),
        new_job(now, {"i": 1}, idempotency_key="other"),
        new_job(now, {"i": 2}, idempotency_key="k"),
        new_job(now, {"i": 3}),
        new_job(now, {"i": 4}),
    ]
    res = await store.insert_jobs(batch)
    assert [r.created for r in res] == [True, True, False, True, True]
    assert res[2].job.id == batch[0].id
    assert res[2].job.payload == {"i": 0}
    assert await store.get_job(batch[2].id) is None
    assert len((await store.list_jobs(JobQuery())).jobs) == 4


async def test_idempotency_returns_current_state(store: Store, clock: ManualClock) -> None:
    now = clock.now()
    job = await add_job(store, now, idempotency_key="key")
    cancelled = await store.cancel_job(job.id, now + 1, "no")
    (again,) = await store.insert_jobs([new_job(now + 2, idempotency_key="key")])
    assert again.created is False
    assert again.job == cancelled
    assert again.job.status is JobStatus.CANCELLED


async def test_jobs_without_key_are_never_deduplicated(store: Store, clock: ManualClock) -> None:
    now = clock.now()
    res = await store.insert_jobs([new_job(now, {"same": 1}), new_job(now, {"same": 1})])
    assert [r.created for r in res] == [True, True]
    assert res[0].job.id != res[1].job.id


# cancel ----------------------------------------------------------------------------------
async def test_cancel_pending(store: Store, clock: ManualClock) -> None:
    now = clock.now()
    job = await add_job(store, now)
    out = await store.cancel_job(job.id, now + 1, "changed my mind")
    assert out.status is JobStatus.CANCELLED
    assert out.error == {"kind": "cancelled", "message": "changed my mind"}
    assert out.finished_at == now + 1
    assert out.updated_at == now + 1
    assert out.lease_expires_at is None
    assert out.claimed_by is None
    assert out.attempt == 0
    assert await store.get_job(job.id) == out
    assert await store.job_attempts(job.id) == []


@pytest.mark.parametrize("start", [False, True])
async def test_cancel_active_records_attempt(store: Store, clock: ManualClock, start: bool) -> None:
    now = clock.now()
    await add_worker(store, now, "w1")
    job = await add_job(store, now)
    claimed = await claim_one(store, "w1", now + 1)
    if start:
        (r,) = await store.apply_reports("w1", [started(claimed)], now + 2)
        assert r.applied
    out = await store.cancel_job(job.id, now + 5, "stop")
    assert out.status is JobStatus.CANCELLED
    assert out.error == {"kind": "cancelled", "message": "stop"}
    assert out.finished_at == now + 5
    assert out.updated_at == now + 5
    assert out.lease_expires_at is None
    assert out.claimed_by == "w1"  # kept as history
    assert out.attempt == 1
    assert await store.job_attempts(job.id) == [
        Attempt(
            job_id=job.id,
            attempt=1,
            worker_id="w1",
            claimed_at=now + 1,
            started_at=(now + 2) if start else None,
            finished_at=now + 5,
            outcome="cancelled",
            error={"kind": "cancelled", "message": "stop"},
        )
    ]
    worker = await store.get_worker("w1")
    assert worker is not None
    assert worker.running == 0


async def test_cancel_unknown_job(store: Store, clock: ManualClock) -> None:
    with pytest.raises(JobNotFound):
        await store.cancel_job(new_id(), clock.now(), "x")


@pytest.mark.parametrize("terminal", ["completed", "failed", "cancelled"])
async def test_cancel_terminal_is_invalid(store: Store, clock: ManualClock, terminal: str) -> None:
    now = clock.now()
    await add_worker(store, now, "w1")
    job = await add_job(store, now, max_attempts=1)
    if terminal == "cancelled":
        await store.cancel_job(job.id, now, "first")
    else:
        claimed = await claim_one(store, "w1", now)
        report = completed(claimed) if terminal == "completed" else failed(claimed)
        (r,) = await store.apply_reports("w1", [report], now + 1)
        assert r.status == JobStatus(terminal)
    before = await store.get_job(job.id)
    with pytest.raises(InvalidTransition):
        await store.cancel_job(job.id, now + 10, "again")
    assert await store.get_job(job.id) == before


# retry -----------------------------------------------------------------------------------
async def test_retry_failed_job(store: Store, clock: ManualClock) -> None:
    now = clock.now()
    await add_worker(store, now, "w1")
    job = await add_job(store, now, max_attempts=1)
    claimed = await claim_one(store, "w1", now + 1)
    (r,) = await store.apply_reports("w1", [failed(claimed)], now + 2)
    assert r.status is JobStatus.FAILED
    out = await store.retry_job(job.id, now + 10, 2)
    assert out.status is JobStatus.PENDING
    assert out.run_at == now + 10
    assert out.max_attempts == 3  # attempt (1) + 2
    assert out.attempt == 1
    assert out.finished_at is None
    assert out.result is None
    assert out.error is None
    assert out.claimed_by is None
    assert out.claimed_at is None
    assert out.started_at is None
    assert out.lease_expires_at is None
    assert out.updated_at == now + 10
    assert await store.get_job(job.id) == out
    again = await claim_one(store, "w1", now + 10)
    assert again.id == job.id
    assert again.attempt == 2


async def test_retry_cancelled_job(store: Store, clock: ManualClock) -> None:
    now = clock.now()
    job = await add_job(store, now)
    await store.cancel_job(job.id, now + 1, "x")
    out = await store.retry_job(job.id, now + 2, 1)
    assert out.status is JobStatus.PENDING
    assert out.max_attempts == 1
    assert out.run_at == now + 2
    assert out.error is None
    assert out.finished_at is None
    assert await store.next_due_at() == now + 2


async def test_retry_unknown_job(store: Store, clock: ManualClock) -> None:
    with pytest.raises(JobNotFound):
        await store.retry_job(new_id(), clock.now(), 1)


@pytest.mark.parametrize("status", ["pending", "claimed", "in_progress", "completed"])
async def test_retry_invalid_states(store: Store, clock: ManualClock, status: str) -> None:
    now = clock.now()
    await add_worker(store, now, "w1")
    job = await add_job(store, now)
    if status != "pending":
        claimed = await claim_one(store, "w1", now)
        if status == "in_progress":
            await store.apply_reports("w1", [started(claimed)], now)
        if status == "completed":
            await store.apply_reports("w1", [completed(claimed, {"ok": True})], now)
    before = await store.get_job(job.id)
    assert before is not None
    assert before.status == JobStatus(status)
    with pytest.raises(InvalidTransition):
        await store.retry_job(job.id, now + 5, 1)
    assert await store.get_job(job.id) == before


# attempts --------------------------------------------------------------------------------
async def test_attempt_history_fail_retry_complete(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1")
    await add_worker(store, t, "w2")
    job = await add_job(store, t, max_attempts=1)
    assert await store.job_attempts(job.id) == []

    c1 = await claim_one(store, "w1", t + 1)
    await store.apply_reports("w1", [started(c1, started_at=t + 1.5)], t + 2)
    err = {"kind": "exit", "message": "code 3", "code": 3}
    (r,) = await store.apply_reports("w1", [failed(c1, err)], t + 3)
    assert r.status is JobStatus.FAILED

    await store.retry_job(job.id, t + 4, 1)
    c2 = await claim_one(store, "w2", t + 5)
    assert c2.attempt == 2
    (r,) = await store.apply_reports("w2", [completed(c2, {"out": 42})], t + 6)
    assert r.status is JobStatus.COMPLETED

    assert await store.job_attempts(job.id) == [
        Attempt(job.id, 1, "w1", t + 1, t + 1.5, t + 3, "failed", err),
        Attempt(job.id, 2, "w2", t + 5, t + 6, t + 6, "completed", None),
    ]
    final = await store.get_job(job.id)
    assert final is not None
    assert final.status is JobStatus.COMPLETED
    assert final.result == {"out": 42}
    assert final.error is None
    assert final.attempt == 2
    assert final.claimed_by == "w2"


async def test_attempts_of_unknown_job_is_empty(store: Store) -> None:
    assert await store.job_attempts(new_id()) == []


# next_due_at -----------------------------------------------------------------------------
async def test_next_due_at(store: Store, clock: ManualClock) -> None:
    now = clock.now()
    assert await store.next_due_at() is None
    await add_worker(store, now, "w1")
    a = await add_job(store, now, run_at=now + 50, priority=0)
    await add_job(store, now, run_at=now + 20)
    b = await add_job(store, now, priority=10)  # due now
    assert await store.next_due_at() == now
    assert (await claim_one(store, "w1", now)).id == b.id  # claimed: no longer pending
    assert await store.next_due_at() == now + 20
    await store.cancel_job(a.id, now, "x")
    assert await store.next_due_at() == now + 20
