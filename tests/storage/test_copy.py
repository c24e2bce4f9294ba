"""``copy_store``: a laptop's SQLite history moves, whole, into any store (every driver)."""

from __future__ import annotations

import random
from pathlib import Path

from helpers import add_jobs, add_worker, claim, completed, failed, spec

from blixard.clock import ManualClock
from blixard.domain.jobs import NewJob
from blixard.ids import new_id
from blixard.storage.base import Store
from blixard.storage.copying import copy_store
from blixard.storage.sqlite import SqliteStore


async def _source(tmp_path: Path, now: float) -> SqliteStore:
    """Jobs in every state, with attempt history, an idempotency key, and two workers."""
    src = SqliteStore(str(tmp_path / "source.db"), rng=random.Random(3))
    await src.open()
    await add_worker(src, now, "w1", concurrency=50)
    await add_worker(src, now, "w2")
    await add_jobs(src, now, 30, max_attempts=2)
    await src.insert_jobs([NewJob(new_id(), spec({"k": 1}, idempotency_key="once"), now, now)])
    jobs = await claim(src, "w1", now + 1, limit=12)
    await src.apply_reports("w1", [completed(j, {"n": i}) for i, j in enumerate(jobs[:4])], now + 2)
    await src.apply_reports("w1", [failed(j) for j in jobs[4:8]], now + 2)  # requeued
    await src.cancel_job(jobs[8].id, now + 3, "no longer needed")
    return src


async def _everything(store: Store) -> tuple[list[object], list[object]]:
    jobs, after = [], None
    while batch := await store.export_jobs(after, 7):
        jobs.extend(batch)
        after = batch[-1].id
    attempts = await store.export_attempts([j.id for j in jobs])
    return jobs, attempts


async def test_copy_moves_every_job_attempt_and_worker(
    store: Store, tmp_path: Path, clock: ManualClock
) -> None:
    src = await _source(tmp_path, clock.now())
    try:
        report = await copy_store(src, store, batch=7)
        src_jobs, src_attempts = await _everything(src)
        dst_jobs, dst_attempts = await _everything(store)
        assert report.jobs_read == report.jobs_created == len(src_jobs) == 31
        assert report.attempts == len(src_attempts) == 9  # 4 completed, 4 failed, 1 cancel
        assert dst_jobs == src_jobs
        assert dst_attempts == src_attempts
        assert {w.id for w in await store.list_workers()} == {"w1", "w2"}
        statuses = {str(j.status) for j in dst_jobs}
        assert statuses == {"pending", "claimed", "completed", "cancelled"}

        again = await copy_store(src, store, batch=7)  # resumable: nothing twice
        assert again.jobs_created == 0
        assert await _everything(store) == (dst_jobs, dst_attempts)
    finally:
        await src.close()


async def test_copied_database_keeps_working(
    store: Store, tmp_path: Path, clock: ManualClock
) -> None:
    """The target claims the copied pending jobs and honours copied idempotency keys."""
    src = await _source(tmp_path, clock.now())
    try:
        await copy_store(src, store)
    finally:
        await src.close()
    again = await store.insert_jobs(
        [NewJob(new_id(), spec({"k": 2}, idempotency_key="once"), clock.now(), clock.now())]
    )
    assert not again[0].created
    assert again[0].job.payload == {"k": 1}
    await add_worker(store, clock.now(), "w3", concurrency=100)
    claimed = await claim(store, "w3", clock.now() + 100, limit=100)
    assert len(claimed) == 19 + 4  # never claimed (the keyed job among them), requeued


async def test_copy_carries_dependencies_limits_and_schedules(
    store: Store, tmp_path: Path, clock: ManualClock
) -> None:
    """A blocked child still waits for its copied parent, and is released when it ends;
    queue and tenant settings and cron schedules come along; a second copy adds nothing."""
    from blixard.domain.queues import RateLimit
    from blixard.domain.schedules import new_schedule
    from blixard.domain.states import JobStatus

    now = clock.now()
    src = SqliteStore(str(tmp_path / "source.db"), rng=random.Random(3))
    await src.open()
    try:
        parent = NewJob(new_id(), spec({"p": 1}, tenant="acme", queue="etl"), now, now)
        child = NewJob(new_id(), spec({"c": 1}, tenant="acme", depends_on=[parent.id]), now, now)
        await src.insert_jobs([parent, child])
        await src.configure_queue(
            "etl", paused=True, max_running=3, rate=RateLimit(10, 60.0), now=now
        )
        await src.configure_tenant("acme", weight=2.0, max_running=5, now=now)
        nightly = new_schedule(
            schedule_id=new_id(),
            tenant="acme",
            name="nightly",
            cron_expression="0 3 * * *",
            timezone="Europe/Paris",
            job=spec({"s": 1}, tenant="acme"),
            now=now,
        )
        await src.create_schedule(nightly)
        report = await copy_store(src, store)
        again = await copy_store(src, store)
    finally:
        await src.close()
    assert (report.queues, report.tenants, report.schedules) == (2, 1, 1)
    assert (again.schedules, again.jobs_created) == (0, 0)
    etl = await store.get_queue("etl")
    assert etl is not None
    assert (etl.queue.paused, etl.queue.max_running, etl.queue.rate) == (
        True,
        3,
        RateLimit(10, 60.0),
    )
    acme = await store.get_tenant("acme")
    assert acme is not None
    assert (acme.tenant.weight, acme.tenant.max_running) == (2.0, 5)
    copied = await store.get_schedule(nightly.id)
    assert copied is not None
    assert (copied.name, copied.cron, copied.next_fire_at) == (
        "nightly",
        "0 3 * * *",
        nightly.next_fire_at,
    )

    await store.configure_queue("etl", paused=False, now=now)
    await add_worker(store, now, "w1", concurrency=10)
    (got,) = await claim(store, "w1", now + 1, limit=10)  # only the parent is claimable
    assert got.id == parent.id
    await store.apply_reports("w1", [completed(got, {"ok": True})], now + 2)
    released = await store.get_job(child.id)
    assert released is not None
    assert released.status is JobStatus.PENDING
