"""PostgreSQL: several store instances (separate pools, as several servers) on one schema."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
from helpers import TTL, add_worker, completed, new_job

from blixard.domain.states import JobStatus
from blixard.storage.base import ClaimRequest, JobQuery, RunningJob
from blixard.storage.postgres import PostgresStore
from blixard.storage.postgres.driver import NOTIFY_PAYLOAD_MAX, _chunks

T0 = 1_700_000_000.0
OpenStore = Callable[..., Awaitable[PostgresStore]]


@pytest.fixture
async def schema(pg_schemas: Callable[[], Awaitable[str]]) -> str:
    return await pg_schemas()


@pytest.fixture
async def open_store(pg_url: str, schema: str) -> AsyncIterator[OpenStore]:
    """Open another store instance on the test's schema; all closed at teardown."""
    opened: list[PostgresStore] = []

    async def make(*, migrate: bool = True, **kwargs: object) -> PostgresStore:
        kwargs.setdefault("min_size", 1)
        kwargs.setdefault("max_size", 4)
        s = PostgresStore(pg_url, rng=random.Random(7), schema=schema, **kwargs)  # type: ignore[arg-type]
        await s.open(migrate=migrate)
        opened.append(s)
        return s

    try:
        yield make
    finally:
        for s in opened:
            await s.close()


class Heard:
    """Collects listen() callbacks; ``wait_*`` return once the expected call arrived."""

    def __init__(self) -> None:
        self.work = 0
        self.ids: list[str] = []
        self.batches = 0
        self._changed = asyncio.Event()

    def on_work(self) -> None:
        self.work += 1
        self._changed.set()

    def on_jobs(self, ids: list[str]) -> None:
        self.ids.extend(ids)
        self.batches += 1
        self._changed.set()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 1.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


# claims ------------------------------------------------------------------------------------
async def test_concurrent_claims_from_four_instances_hand_out_each_job_once(
    open_store: OpenStore,
) -> None:
    stores = [await open_store() for _ in range(4)]
    workers = [f"w{i}" for i in range(4)]
    for s, w in zip(stores, workers, strict=True):
        await add_worker(s, T0, w, concurrency=100_000)
    inserted = await stores[0].insert_jobs([new_job(T0, {"i": i}) for i in range(1000)])
    all_ids = {i.job.id for i in inserted}

    async def drain(store: PostgresStore, worker: str) -> list[str]:
        got: list[str] = []
        while True:
            batch = await store.claim_jobs(ClaimRequest(worker, 25, TTL), T0)
            if not batch:
                return got
            assert all(j.claimed_by == worker and j.attempt == 1 for j in batch)
            got += [j.id for j in batch]

    results = await asyncio.gather(
        *(drain(s, w) for s, w in zip(stores, workers, strict=True) for _ in range(2))
    )
    claimed = [job_id for batch in results for job_id in batch]
    assert len(claimed) == len(set(claimed)) == 1000  # never twice
    assert set(claimed) == all_ids  # and every one
    assert sum(1 for batch in results if batch) >= 2  # the instances really competed
    stored = await stores[1].get_jobs(claimed)
    assert {j.status for j in stored} == {JobStatus.CLAIMED}
    for w in workers:
        worker = await stores[0].get_worker(w)
        assert worker is not None
        assert worker.running == sum(1 for j in stored if j.claimed_by == w)


async def test_concurrent_idempotent_submits_from_two_instances_make_one_job(
    open_store: OpenStore,
) -> None:
    a, b = await open_store(), await open_store()
    for round_ in range(10):
        key = f"key-{round_}"
        ra, rb = await asyncio.gather(
            a.insert_jobs([new_job(T0, {"from": "a"}, idempotency_key=key)]),
            b.insert_jobs([new_job(T0, {"from": "b"}, idempotency_key=key)]),
        )
        assert ra[0].job.id == rb[0].job.id
        assert sorted([ra[0].created, rb[0].created]) == [False, True]
        assert ra[0].job == rb[0].job
    page = await b.list_jobs(JobQuery(limit=100))
    assert len(page.jobs) == 10


async def test_concurrent_migrations_apply_once(schema: str, open_store: OpenStore) -> None:
    stores = [await open_store(migrate=False) for _ in range(3)]
    applied = await asyncio.gather(*(s.migrate() for s in stores))
    assert sorted(applied) == [[], [], [1, 2]]
    assert [await s.schema_version() for s in stores] == [2, 2, 2]


# listen ------------------------------------------------------------------------------------
async def test_listen_hears_inserts_reports_and_cancels_of_another_instance(
    open_store: OpenStore,
) -> None:
    a, b = await open_store(), await open_store()
    heard = Heard()
    await b.listen(heard.on_work, heard.on_jobs)

    (ins,) = await a.insert_jobs([new_job(T0)])
    await heard.wait_for(lambda: heard.work >= 1)

    await add_worker(a, T0, "w1")
    (claimed,) = await a.claim_jobs(ClaimRequest("w1", 1, TTL), T0)
    work_before = heard.work
    (result,) = await a.apply_reports("w1", [completed(claimed, {"ok": 1})], T0 + 1)
    assert result.applied
    await heard.wait_for(lambda: ins.job.id in heard.ids)
    await heard.wait_for(lambda: heard.work > work_before)  # capacity freed

    (other,) = await a.insert_jobs([new_job(T0)])
    heard.ids.clear()
    await a.cancel_job(other.job.id, T0 + 2, "no")
    await heard.wait_for(lambda: other.job.id in heard.ids)

    heard.ids.clear()
    await a.retry_job(other.job.id, T0 + 3, 1)
    await heard.wait_for(lambda: other.job.id in heard.ids)


async def test_listen_reconnects_after_losing_its_connection(
    pg_url: str, open_store: OpenStore
) -> None:
    a, b = await open_store(), await open_store()
    heard = Heard()
    await b.listen(heard.on_work, heard.on_jobs)
    pid = b._listener.pid
    assert pid is not None
    conn = await asyncpg.connect(pg_url)
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
    finally:
        await conn.close()
    # Back within the backoff; a reconnect announces possible work (notices were missed).
    await heard.wait_for(lambda: b._listener.reconnects == 1 and heard.work >= 1, timeout=5)
    assert b._listener.pid not in (None, pid)
    before = heard.work
    (ins,) = await a.insert_jobs([new_job(T0)])
    await heard.wait_for(lambda: heard.work > before)
    await a.cancel_job(ins.job.id, T0, "x")
    await heard.wait_for(lambda: ins.job.id in heard.ids)


async def test_many_changed_jobs_are_announced_in_several_payloads(
    open_store: OpenStore,
) -> None:
    a, b = await open_store(), await open_store()
    heard = Heard()
    await b.listen(heard.on_work, heard.on_jobs)
    await add_worker(a, T0, "w1", concurrency=1000)
    await a.insert_jobs([new_job(T0, max_attempts=1) for _ in range(500)])
    jobs = await a.claim_jobs(ClaimRequest("w1", 500, TTL), T0)
    assert len(jobs) == 500
    reaped = await a.reap_expired(T0 + TTL + 1, 1000)  # one transaction, 500 changed jobs
    assert len(reaped) == 500
    expected = {j.id for j in jobs}
    await heard.wait_for(lambda: expected <= set(heard.ids))
    assert heard.batches >= 3  # 500 ids of 36 bytes do not fit one payload


def test_notify_chunks_stay_under_the_payload_limit() -> None:
    ids = [f"{i:036d}" for i in range(1000)]
    chunks = _chunks(ids)
    assert all(len(c.encode()) <= NOTIFY_PAYLOAD_MAX for c in chunks)
    assert [i for c in chunks for i in c.split(",")] == ids
    assert _chunks([]) == []
    assert _chunks(["a", "a", "b"]) == ["a,b"]


# leadership --------------------------------------------------------------------------------
async def test_try_lead_is_exclusive_and_moves_when_the_holder_closes(
    open_store: OpenStore,
) -> None:
    a, b = await open_store(), await open_store()
    assert await a.try_lead("reaper") is True
    assert await b.try_lead("reaper") is False
    assert await a.try_lead("reaper") is True  # still held, checked alive
    assert await b.try_lead("other-role") is True  # roles are independent
    assert await a.try_lead("other-role") is False
    await a.close()
    assert await b.try_lead("reaper") is True  # the very next call


async def test_try_lead_moves_when_the_holder_connection_dies(
    pg_url: str, open_store: OpenStore
) -> None:
    a, b = await open_store(), await open_store()
    assert await a.try_lead("reaper") is True
    assert await b.try_lead("reaper") is False
    pid = a._leadership.pid
    assert pid is not None
    conn = await asyncpg.connect(pg_url)
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
    finally:
        await conn.close()
    assert await b.try_lead("reaper") is True
    assert await a.try_lead("reaper") is False  # a reconnected, the role is b's now
    assert a._leadership.pid not in (None, pid)
    await b.close()
    assert await a.try_lead("reaper") is True


async def test_try_lead_is_per_schema(
    pg_url: str, pg_schemas: Callable[[], Awaitable[str]]
) -> None:
    stores = [PostgresStore(pg_url, schema=await pg_schemas(), min_size=1) for _ in range(2)]
    try:
        for s in stores:
            await s.open()
        assert [await s.try_lead("reaper") for s in stores] == [True, True]
    finally:
        for s in stores:
            await s.close()


async def test_concurrent_batches_sharing_keys_in_opposite_orders(open_store: OpenStore) -> None:
    a, b = await open_store(), await open_store()
    for round_ in range(5):
        keys = [f"r{round_}-k{i}" for i in range(50)]
        ra, rb = await asyncio.gather(
            a.insert_jobs([new_job(T0, idempotency_key=k) for k in keys]),
            b.insert_jobs([new_job(T0, idempotency_key=k) for k in reversed(keys)]),
        )
        by_key_a = {i.job.idempotency_key: i for i in ra}
        by_key_b = {i.job.idempotency_key: i for i in rb}
        assert [i.job.idempotency_key for i in ra] == keys  # results in input order
        for k in keys:
            assert by_key_a[k].job.id == by_key_b[k].job.id
            assert by_key_a[k].created != by_key_b[k].created


async def test_heartbeats_and_reports_of_one_worker_do_not_deadlock(
    open_store: OpenStore,
) -> None:
    a, b = await open_store(), await open_store()
    await add_worker(a, T0, "w1", concurrency=1000)
    await a.insert_jobs([new_job(T0) for _ in range(400)])
    jobs = await a.claim_jobs(ClaimRequest("w1", 400, TTL), T0)
    running = [RunningJob(j.id, j.attempt) for j in reversed(jobs)]  # against report order
    for k in range(0, 400, 40):
        batch = jobs[k : k + 40]
        results, hb = await asyncio.gather(
            a.apply_reports("w1", [completed(j) for j in reversed(batch)], T0 + 1),
            b.heartbeat("w1", running, T0 + 1, TTL),
        )
        assert all(r.applied for r in results)
        assert hb.renewed + len(hb.cancel) == len(running)
