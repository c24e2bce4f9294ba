"""Conformance: claiming due jobs by priority, type, labels and free capacity."""

from __future__ import annotations

import asyncio

import pytest
from helpers import (
    TTL,
    add_job,
    add_jobs,
    add_worker,
    claim,
    claim_one,
    completed,
    ids,
    new_job,
    req,
)

from blixard.clock import ManualClock
from blixard.domain.states import JobStatus
from blixard.domain.workers import WorkerStatus
from blixard.errors import WorkerNotFound
from blixard.storage.base import ClaimRequest, Store


async def test_claim_sets_run_fields(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1")
    job = await add_job(store, t)
    clock.advance(2)
    now = clock.now()
    (c,) = await claim(store, "w1", now, ttl=15)
    assert c.id == job.id
    assert c.status is JobStatus.CLAIMED
    assert c.attempt == 1
    assert c.claimed_by == "w1"
    assert c.claimed_at == now
    assert c.lease_expires_at == now + 15
    assert c.updated_at == now
    assert c.started_at is None
    assert c.finished_at is None
    assert c.created_at == t
    assert c.run_at == t
    assert c.payload == job.payload
    assert await store.get_job(job.id) == c


async def test_claim_unknown_worker(store: Store, clock: ManualClock) -> None:
    await add_job(store, clock.now())
    with pytest.raises(WorkerNotFound):
        await claim(store, "ghost", clock.now())


async def test_claim_empty_store(store: Store, clock: ManualClock) -> None:
    await add_worker(store, clock.now(), "w1")
    assert await claim(store, "w1", clock.now()) == []


async def test_claim_order_priority_run_at_id(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=100)
    batch = [
        new_job(t, {"n": "a"}, priority=0, run_at=t - 10),
        new_job(t, {"n": "b"}, priority=5, run_at=t - 1),
        new_job(t, {"n": "c"}, priority=5, run_at=t - 5),
        new_job(t, {"n": "d"}, priority=0, run_at=t - 10),  # same as a, larger id
        new_job(t, {"n": "e"}, priority=-1, run_at=t - 100),
        new_job(t, {"n": "f"}, priority=5, run_at=t - 5),  # same as c, larger id
    ]
    assert [nj.id for nj in batch] == sorted(nj.id for nj in batch)
    await store.insert_jobs(batch)
    got = await claim(store, "w1", t, limit=100)
    assert [j.payload["n"] for j in got] == ["c", "f", "b", "a", "d", "e"]


async def test_claim_order_one_at_a_time(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=100)
    low = await add_job(store, t, priority=1)
    high = await add_job(store, t, priority=2)
    old = await add_job(store, t, priority=1, run_at=t - 1)
    order = [(await claim_one(store, "w1", t)).id for _ in range(3)]
    assert order == [high.id, old.id, low.id]


async def test_claim_skips_jobs_not_yet_due(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1")
    later = await add_job(store, t, run_at=t + 10, priority=100)
    now_job = await add_job(store, t)
    assert ids(await claim(store, "w1", t)) == [now_job.id]
    assert await claim(store, "w1", t + 9.999) == []
    assert ids(await claim(store, "w1", t + 10)) == [later.id]  # run_at <= now is due


async def test_claim_filters_worker_type(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "proc", worker_type="process", concurrency=10)
    await add_worker(store, t, "wasm", worker_type="wasm", concurrency=10)
    only_python = await add_job(store, t, worker_types=["python"])
    proc_or_wasm = await add_job(store, t, worker_types=["process", "wasm"])
    anyone = await add_job(store, t)
    only_wasm = await add_job(store, t, worker_types=["wasm"])
    assert ids(await claim(store, "proc", t)) == [proc_or_wasm.id, anyone.id]
    assert ids(await claim(store, "wasm", t)) == [only_wasm.id]
    left = await store.get_job(only_python.id)
    assert left is not None
    assert left.status is JobStatus.PENDING


async def test_claim_filters_labels(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "eu", labels={"zone": "eu", "disk": "ssd"}, concurrency=10)
    await add_worker(store, t, "us", labels={"zone": "us"}, concurrency=10)
    await add_worker(store, t, "bare", concurrency=10)
    eu_ssd = await add_job(store, t, requirements=req(labels={"zone": "eu", "disk": "ssd"}))
    eu = await add_job(store, t, requirements=req(labels={"zone": "eu"}))
    hdd = await add_job(store, t, requirements=req(labels={"disk": "hdd"}))
    us = await add_job(store, t, requirements=req(labels={"zone": "us"}))
    free = await add_job(store, t)
    assert ids(await claim(store, "bare", t)) == [free.id]  # the only job without labels
    assert ids(await claim(store, "eu", t)) == [eu_ssd.id, eu.id]
    assert ids(await claim(store, "us", t)) == [us.id]
    assert await claim(store, "bare", t) == []
    left = await store.get_job(hdd.id)
    assert left is not None
    assert left.status is JobStatus.PENDING


async def test_claim_limit_caps_slots(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=10)
    jobs = await add_jobs(store, t, 5)
    assert ids(await claim(store, "w1", t, limit=3)) == ids(jobs[:3])
    assert await claim(store, "w1", t, limit=0) == []
    assert ids(await claim(store, "w1", t, limit=3)) == ids(jobs[3:])


async def test_claim_respects_concurrency_across_claims(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=2)
    jobs = await add_jobs(store, t, 5)
    first = await claim(store, "w1", t, limit=10)
    assert ids(first) == ids(jobs[:2])
    assert await claim(store, "w1", t, limit=10) == []
    (r,) = await store.apply_reports("w1", [completed(first[0])], t + 1)
    assert r.applied
    assert ids(await claim(store, "w1", t + 1, limit=10)) == [jobs[2].id]
    assert await claim(store, "w1", t + 1, limit=10) == []


async def test_claim_cpu_skips_too_big_takes_smaller_later(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=10, cpu=4.0)
    big1 = await add_job(store, t, requirements=req(cpu=3))
    big2 = await add_job(store, t, requirements=req(cpu=3))
    small = await add_job(store, t, requirements=req(cpu=1))
    tiny = await add_job(store, t, requirements=req(cpu=0.5))
    got = await claim(store, "w1", t)
    assert ids(got) == [big1.id, small.id]  # big2 does not fit next to big1; tiny neither
    assert await claim(store, "w1", t) == []
    await store.apply_reports("w1", [completed(got[1])], t + 1)  # frees 1 cpu
    assert ids(await claim(store, "w1", t + 1)) == [tiny.id]
    await store.apply_reports("w1", [completed(got[0])], t + 2)  # frees 3 cpu
    assert ids(await claim(store, "w1", t + 2)) == [big2.id]


async def test_claim_memory_accounted_across_claims(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=10, memory_mb=1000)
    a = await add_job(store, t, requirements=req(memory_mb=600))
    b = await add_job(store, t, requirements=req(memory_mb=600))
    c = await add_job(store, t, requirements=req(memory_mb=400))
    d = await add_job(store, t, requirements=req(memory_mb=1))
    assert ids(await claim(store, "w1", t, limit=1)) == [a.id]
    assert ids(await claim(store, "w1", t, limit=10)) == [c.id]  # 400 left: b skipped
    assert await claim(store, "w1", t) == []
    left = await store.get_jobs([b.id, d.id])
    assert {j.status for j in left} == {JobStatus.PENDING}


async def test_claim_gpu_accounting(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=10, gpu=1)
    g1 = await add_job(store, t, requirements=req(gpu=1), priority=1)
    g2 = await add_job(store, t, requirements=req(gpu=1), priority=1)
    cpu_only = await add_job(store, t)
    assert ids(await claim(store, "w1", t)) == [g1.id, cpu_only.id]
    assert await claim(store, "w1", t) == []
    left = await store.get_job(g2.id)
    assert left is not None
    assert left.status is JobStatus.PENDING


async def test_job_larger_than_worker_is_never_claimed(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=10, cpu=2.0, gpu=0)
    huge = await add_job(store, t, requirements=req(cpu=64), priority=100)
    gpu = await add_job(store, t, requirements=req(gpu=1), priority=100)
    ok = await add_job(store, t, requirements=req(cpu=2))
    assert ids(await claim(store, "w1", t)) == [ok.id]
    assert {j.status for j in await store.get_jobs([huge.id, gpu.id])} == {JobStatus.PENDING}


@pytest.mark.parametrize("status", [WorkerStatus.DRAINING, WorkerStatus.OFFLINE])
async def test_not_online_worker_claims_nothing(
    store: Store, clock: ManualClock, status: WorkerStatus
) -> None:
    t = clock.now()
    await add_worker(store, t, "w1")
    job = await add_job(store, t)
    await store.set_worker_status("w1", status, t)
    assert await claim(store, "w1", t) == []
    left = await store.get_job(job.id)
    assert left is not None
    assert left.status is JobStatus.PENDING
    await store.set_worker_status("w1", WorkerStatus.ONLINE, t)
    assert ids(await claim(store, "w1", t)) == [job.id]


async def test_concurrent_claims_never_hand_out_a_job_twice(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    workers = [f"w{i}" for i in range(6)]
    for w in workers:
        await add_worker(store, t, w, concurrency=1000)
    jobs = await add_jobs(store, t, 200)
    requests = [(w, k) for w in workers for k in range(3)]  # 18 claims of 15 = 270 > 200
    results = await asyncio.gather(
        *(store.claim_jobs(ClaimRequest(w, 15, TTL), t) for w, _ in requests)
    )
    claimed = [(w, j) for (w, _), batch in zip(requests, results, strict=True) for j in batch]
    claimed_ids = [j.id for _, j in claimed]
    assert len(claimed_ids) == len(set(claimed_ids))  # never twice
    assert set(claimed_ids) == {j.id for j in jobs}  # and all of them
    assert all(len(batch) <= 15 for batch in results)
    for w, j in claimed:
        assert j.claimed_by == w
        assert j.attempt == 1
    stored = {j.id: j for j in await store.get_jobs(claimed_ids)}
    for w, j in claimed:
        assert stored[j.id].claimed_by == w
        assert stored[j.id].status is JobStatus.CLAIMED
    for w in workers:
        worker = await store.get_worker(w)
        assert worker is not None
        assert worker.running == sum(1 for cw, _ in claimed if cw == w)
