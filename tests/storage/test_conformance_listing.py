"""Conformance: listing jobs (filters, cursor pagination) and stats."""

from __future__ import annotations

from helpers import add_job, add_jobs, add_worker, claim, completed, failed, ids, new_job

from blixard.clock import ManualClock
from blixard.domain.states import JobStatus
from blixard.domain.workers import WorkerStatus
from blixard.storage.base import JobQuery, Store


async def test_list_newest_first(store: Store, clock: ManualClock) -> None:
    jobs = await add_jobs(store, clock.now(), 5)
    page = await store.list_jobs(JobQuery())
    assert ids(page.jobs) == sorted(ids(jobs), reverse=True)
    assert ids(page.jobs) == list(reversed(ids(jobs)))
    assert page.next_cursor is None
    assert page.jobs[0] == jobs[-1]


async def test_list_empty(store: Store) -> None:
    page = await store.list_jobs(JobQuery())
    assert page.jobs == []
    assert page.next_cursor is None


async def test_list_filters(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=10)
    batch = [
        new_job(t, {"n": 0}, queue="a", tenant="x", worker_types=["process"]),
        new_job(t, {"n": 1}, queue="a", tenant="y", worker_types=["wasm", "python"]),
        new_job(t, {"n": 2}, queue="b", tenant="x"),
        new_job(t, {"n": 3}, queue="b", tenant="y", worker_types=["python"]),
        new_job(t, {"n": 4}, queue="a", tenant="x", worker_types=["process"]),
    ]
    await store.insert_jobs(batch)
    (c,) = await claim(store, "w1", t, limit=1)  # n=0 (process; first by id)
    assert c.payload == {"n": 0}
    await store.cancel_job(batch[3].id, t, "x")

    async def names(**kw: object) -> list[int]:
        page = await store.list_jobs(JobQuery(**kw))  # type: ignore[arg-type]
        return [j.payload["n"] for j in page.jobs]

    assert await names() == [4, 3, 2, 1, 0]
    assert await names(status=[]) == [4, 3, 2, 1, 0]
    assert await names(status=[JobStatus.PENDING]) == [4, 2, 1]
    assert await names(status=[JobStatus.CLAIMED, JobStatus.CANCELLED]) == [3, 0]
    assert await names(status=[JobStatus.COMPLETED]) == []
    assert await names(queue="a") == [4, 1, 0]
    assert await names(queue="zzz") == []
    assert await names(tenant="y") == [3, 1]
    assert await names(worker_type="python") == [3, 1]
    assert await names(worker_type="process") == [4, 0]  # n=2 (any type) does not match
    assert await names(worker_type="wasm") == [1]
    assert await names(queue="a", tenant="x", status=[JobStatus.PENDING]) == [4]
    assert await names(before=batch[3].id) == [2, 1, 0]
    assert await names(before=batch[3].id, queue="a") == [1, 0]
    assert await names(before=batch[0].id) == []


async def test_pagination_walks_all_jobs(store: Store, clock: ManualClock) -> None:
    jobs = await add_jobs(store, clock.now(), 120)
    expected = sorted(ids(jobs), reverse=True)
    seen: list[str] = []
    sizes: list[int] = []
    cursor: str | None = None
    for _ in range(10):
        page = await store.list_jobs(JobQuery(limit=50, before=cursor))
        seen += ids(page.jobs)
        sizes.append(len(page.jobs))
        if page.next_cursor is None:
            break
        assert page.next_cursor == page.jobs[-1].id
        cursor = page.next_cursor
    assert sizes == [50, 50, 20]
    assert seen == expected  # no gaps, no duplicates, newest first


async def test_pagination_full_last_page(store: Store, clock: ManualClock) -> None:
    jobs = await add_jobs(store, clock.now(), 10)
    first = await store.list_jobs(JobQuery(limit=5))
    assert first.next_cursor == first.jobs[-1].id
    second = await store.list_jobs(JobQuery(limit=5, before=first.next_cursor))
    assert len(second.jobs) == 5
    assert second.next_cursor == second.jobs[-1].id  # full page: a cursor, even if last
    third = await store.list_jobs(JobQuery(limit=5, before=second.next_cursor))
    assert third.jobs == []
    assert third.next_cursor is None
    assert ids(first.jobs) + ids(second.jobs) == sorted(ids(jobs), reverse=True)


async def test_pagination_with_filter(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    batch = [new_job(t, {"i": i}, queue="even" if i % 2 == 0 else "odd") for i in range(30)]
    await store.insert_jobs(batch)
    expected = sorted((nj.id for nj in batch if nj.spec.queue == "even"), reverse=True)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await store.list_jobs(JobQuery(queue="even", limit=4, before=cursor))
        assert all(j.queue == "even" for j in page.jobs)
        seen += ids(page.jobs)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == expected


async def test_stats_empty(store: Store) -> None:
    s = await store.stats()
    assert s.jobs_by_status == {str(st): 0 for st in JobStatus}
    assert s.jobs_by_queue == {}
    assert s.workers_by_status == {str(st): 0 for st in WorkerStatus}
    assert s.oldest_pending_at is None


async def test_stats_counts(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=10)
    await add_worker(store, t, "w2")
    await add_worker(store, t, "w3")
    await store.set_worker_status("w2", WorkerStatus.DRAINING, t)
    # claimed first, so the oldest created job is not pending
    old = await add_job(store, t - 100, queue="q1", priority=10, max_attempts=1)
    (c_old,) = await claim(store, "w1", t, limit=1)
    assert c_old.id == old.id
    await add_job(store, t - 50, queue="q1", run_at=t + 500)  # oldest pending by creation
    await add_job(store, t - 20, queue="q2")  # earliest run_at of the pending jobs
    done = await add_job(store, t, queue="q2", priority=5)
    bad = await add_job(store, t, queue="q2", priority=5, max_attempts=1)
    gone = await add_job(store, t, queue="q3")
    cd, cb = await claim(store, "w1", t, limit=2)
    assert (cd.id, cb.id) == (done.id, bad.id)
    await store.apply_reports("w1", [completed(cd), failed(cb)], t + 1)
    await store.cancel_job(gone.id, t + 1, "x")
    s = await store.stats()
    assert s.jobs_by_status == {
        "blocked": 0,
        "pending": 2,
        "claimed": 1,
        "in_progress": 0,
        "completed": 1,
        "failed": 1,
        "cancelled": 1,
    }
    assert s.jobs_by_queue == {
        "q1": {"claimed": 1, "pending": 1},
        "q2": {"pending": 1, "completed": 1, "failed": 1},
        "q3": {"cancelled": 1},
    }
    assert s.workers_by_status == {"online": 2, "draining": 1, "offline": 0}
    assert s.oldest_pending_at == t - 50
