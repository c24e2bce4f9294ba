"""Conformance: worker registration, status, loss detection, running/used accounting."""

from __future__ import annotations

import pytest
from helpers import add_job, add_worker, claim, completed, failed, req, started, worker_spec

from blixard.clock import ManualClock
from blixard.domain.workers import Resources, Worker, WorkerStatus
from blixard.errors import WorkerNotFound
from blixard.storage.base import Store


async def test_register_worker(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    spec = worker_spec(
        "w1",
        worker_type="wasm",
        concurrency=3,
        cpu=2.5,
        memory_mb=4096,
        gpu=1,
        labels={"zone": "eu"},
        capabilities={"runtimes": ["wasmtime"], "max": 3},
        host="host-1",
        pid=4242,
        version="1.2.3",
    )
    w = await store.register_worker(spec, t)
    assert w == Worker(
        id="w1",
        worker_type="wasm",
        name="w1-name",
        concurrency=3,
        resources=Resources(cpu=2.5, memory_mb=4096, gpu=1),
        labels={"zone": "eu"},
        capabilities={"runtimes": ["wasmtime"], "max": 3},
        host="host-1",
        pid=4242,
        version="1.2.3",
        status=WorkerStatus.ONLINE,
        registered_at=t,
        last_seen_at=t,
        running=0,
        used=Resources(),
    )
    assert await store.get_worker("w1") == w


async def test_get_unknown_worker(store: Store) -> None:
    assert await store.get_worker("ghost") is None


@pytest.mark.parametrize("status", list(WorkerStatus))
async def test_reregister_updates_fields_keeps_registered_at(
    store: Store, clock: ManualClock, status: WorkerStatus
) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=2, labels={"a": "1"})
    await store.set_worker_status("w1", status, t + 1)
    w = await store.register_worker(
        worker_spec(
            "w1", worker_type="python", concurrency=8, cpu=1, labels={"b": "2"}, version="2"
        ),
        t + 10,
    )
    assert w.registered_at == t
    assert w.last_seen_at == t + 10
    assert w.status is WorkerStatus.ONLINE
    assert w.worker_type == "python"
    assert w.concurrency == 8
    assert w.resources == Resources(cpu=1, memory_mb=16_384, gpu=0)
    assert w.labels == {"b": "2"}
    assert w.version == "2"
    assert await store.get_worker("w1") == w
    assert len(await store.list_workers()) == 1


async def test_list_workers_order_and_filter(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t + 2, "a")
    await add_worker(store, t, "c")
    await add_worker(store, t, "b")
    await add_worker(store, t + 1, "d")
    assert [w.id for w in await store.list_workers()] == ["b", "c", "d", "a"]
    await store.set_worker_status("c", WorkerStatus.DRAINING, t + 3)
    await store.set_worker_status("a", WorkerStatus.OFFLINE, t + 3)
    assert [w.id for w in await store.list_workers(WorkerStatus.ONLINE)] == ["b", "d"]
    assert [w.id for w in await store.list_workers(WorkerStatus.DRAINING)] == ["c"]
    assert [w.id for w in await store.list_workers(WorkerStatus.OFFLINE)] == ["a"]
    assert [w.id for w in await store.list_workers(None)] == ["b", "c", "d", "a"]


async def test_list_workers_empty(store: Store) -> None:
    assert await store.list_workers() == []


async def test_set_worker_status(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1")
    w = await store.set_worker_status("w1", WorkerStatus.DRAINING, t + 1)
    assert w.status is WorkerStatus.DRAINING
    assert w.registered_at == t
    assert await store.get_worker("w1") == w
    with pytest.raises(WorkerNotFound):
        await store.set_worker_status("ghost", WorkerStatus.OFFLINE, t)


async def test_mark_lost_workers(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "old")
    await add_worker(store, t, "old-draining")
    await store.set_worker_status("old-draining", WorkerStatus.DRAINING, t)
    await add_worker(store, t, "already-offline")
    await store.set_worker_status("already-offline", WorkerStatus.OFFLINE, t)
    await add_worker(store, t, "edge")
    await add_worker(store, t, "fresh")
    await store.heartbeat("edge", [], t + 10, 30)  # last_seen == older_than: not lost
    await store.heartbeat("fresh", [], t + 20, 30)
    lost = await store.mark_lost_workers(t + 40, older_than=t + 10)
    assert sorted(w.id for w in lost) == ["old", "old-draining"]
    assert all(w.status is WorkerStatus.OFFLINE for w in lost)
    statuses = {w.id: w.status for w in await store.list_workers()}
    assert statuses == {
        "old": WorkerStatus.OFFLINE,
        "old-draining": WorkerStatus.OFFLINE,
        "already-offline": WorkerStatus.OFFLINE,
        "edge": WorkerStatus.ONLINE,
        "fresh": WorkerStatus.ONLINE,
    }
    assert await store.mark_lost_workers(t + 40, older_than=t + 10) == []
    # a lost worker that heartbeats again is online
    hb = await store.heartbeat("old", [], t + 41, 30)
    assert hb.worker.status is WorkerStatus.ONLINE


async def test_lost_worker_keeps_its_jobs_until_leases_expire(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    await add_worker(store, t, "w1")
    job = await add_job(store, t)
    (c,) = await claim(store, "w1", t, ttl=100)
    await store.mark_lost_workers(t + 50, older_than=t + 10)
    after = await store.get_job(job.id)
    assert after == c


async def test_running_and_used(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=10, cpu=8, memory_mb=8000, gpu=2)
    await add_worker(store, t, "w2", concurrency=10)
    await add_job(store, t, requirements=req(cpu=1.5, memory_mb=100, gpu=1))
    await add_job(store, t, requirements=req(cpu=2, memory_mb=200))
    await add_job(store, t, requirements=req(cpu=0.5, memory_mb=300, gpu=1), max_attempts=1)
    await add_job(store, t, requirements=req(cpu=1))
    a, b, c = await claim(store, "w1", t, limit=3)
    await store.apply_reports("w1", [started(b)], t + 1)  # in_progress counts too
    w = await store.get_worker("w1")
    assert w is not None
    assert w.running == 3
    assert w.used == Resources(cpu=4.0, memory_mb=600, gpu=2)
    other = await store.get_worker("w2")
    assert other is not None
    assert other.running == 0
    assert other.used == Resources()

    await store.apply_reports("w1", [completed(a), failed(c)], t + 2)
    w = await store.get_worker("w1")
    assert w is not None
    assert w.running == 1
    assert w.used == Resources(cpu=2.0, memory_mb=200, gpu=0)
    (listed,) = [x for x in await store.list_workers() if x.id == "w1"]
    assert listed == w

    await store.cancel_job(b.id, t + 3, "x")
    w = await store.get_worker("w1")
    assert w is not None
    assert w.running == 0
    assert w.used == Resources()
