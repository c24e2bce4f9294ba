"""PostgreSQL only: fleet-wide limits under truly concurrent claims.

Two stores (two "servers") share one fresh schema; four workers claim at the same time
(``asyncio.gather``, each claim its own transaction on its own connection), round after
round, while a seeded random half of the running jobs end between rounds. After every
round the running jobs are counted: a concurrency key, a queue's ``max_running`` and a
tenant's quota are never exceeded, and no job is ever claimed twice."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
from helpers import add_worker, claim, completed, new_job

from blixard.clock import ManualClock
from blixard.domain.queues import RateLimit
from blixard.domain.states import JobStatus
from blixard.storage.base import JobQuery, Store
from blixard.storage.postgres import PostgresStore

WORKERS = ("w0", "w1", "w2", "w3")
RUNNING = (JobStatus.CLAIMED, JobStatus.IN_PROGRESS)


@pytest.fixture
async def servers(
    pg_url: str, pg_schemas: Callable[[], Awaitable[str]]
) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    schema = await pg_schemas()
    stores = [
        PostgresStore(pg_url, rng=random.Random(i), schema=schema, min_size=1, max_size=8)
        for i in range(2)
    ]
    try:
        for s in stores:
            await s.open()
        yield stores[0], stores[1]
    finally:
        for s in stores:
            await s.close()


async def running(store: Store) -> list[Any]:
    page = await store.list_jobs(JobQuery(status=RUNNING, limit=1000))
    return page.jobs


async def claim_round(
    stores: Sequence[Store], now: float, limit: int
) -> list[tuple[str, list[Any]]]:
    """One claim per worker, all at once, spread over the stores."""
    results = await asyncio.gather(
        *(claim(stores[i % len(stores)], w, now, limit=limit) for i, w in enumerate(WORKERS))
    )
    return list(zip(WORKERS, results, strict=True))


async def end_some(stores: Sequence[Store], rng: random.Random, now: float) -> int:
    """Complete a random half (at least one) of the running jobs, each by its worker."""
    jobs = await running(stores[0])
    if not jobs:
        return 0
    chosen = rng.sample(jobs, max(1, len(jobs) // 2))
    by_worker: dict[str, list[Any]] = {}
    for j in chosen:
        assert j.claimed_by is not None
        by_worker.setdefault(j.claimed_by, []).append(j)
    results = await asyncio.gather(
        *(
            stores[i % len(stores)].apply_reports(w, [completed(j) for j in js], now)
            for i, (w, js) in enumerate(sorted(by_worker.items()))
        )
    )
    assert all(r.applied for rs in results for r in rs), results
    return len(chosen)


async def test_key_and_queue_limits_hold_under_concurrent_claims(
    servers: tuple[PostgresStore, PostgresStore], clock: ManualClock
) -> None:
    a, _ = servers
    t = clock.now()
    rng = random.Random(4)
    for w in WORKERS:
        await add_worker(a, t, w, concurrency=8)
    await a.configure_queue("capped", max_running=3, now=t)
    batch = (
        [new_job(t, {"kind": "capped"}, queue="capped") for _ in range(25)]
        + [new_job(t, {"kind": "key"}, concurrency_key="k", concurrency_limit=2) for _ in range(25)]
        + [
            new_job(t, {"kind": "both"}, queue="capped", concurrency_key="k", concurrency_limit=2)
            for _ in range(10)
        ]
        + [new_job(t, {"kind": "free"}) for _ in range(20)]
    )
    rng.shuffle(batch)
    await a.insert_jobs(batch)
    total = len(batch)

    claimed: Counter[str] = Counter()
    peak = {"key": 0, "queue": 0}
    for n in range(300):
        now = t + n + 1
        for _, jobs in await claim_round(servers, now, limit=4):
            claimed.update(j.id for j in jobs)
            assert all(j.attempt == 1 for j in jobs), jobs
        twice = [job_id for job_id, c in claimed.items() if c > 1]
        assert not twice, f"claimed more than once: {twice}"
        now_running = await running(a)
        key_running = sum(1 for j in now_running if j.concurrency_key == "k")
        queue_running = sum(1 for j in now_running if j.queue == "capped")
        assert key_running <= 2, f"round {n}: {key_running} jobs of key k running"
        assert queue_running <= 3, f"round {n}: {queue_running} jobs of queue capped running"
        peak["key"] = max(peak["key"], key_running)
        peak["queue"] = max(peak["queue"], queue_running)
        await end_some(servers, rng, now + 0.5)
        if len(claimed) == total and not await running(a):
            break
    assert len(claimed) == total, f"only {len(claimed)} of {total} jobs ran"
    done = await a.list_jobs(JobQuery(status=(JobStatus.COMPLETED,), limit=1000))
    assert len(done.jobs) == total
    assert peak == {"key": 2, "queue": 3}, "the limits were never reached: a vacuous run"


async def test_tenant_quota_holds_under_concurrent_claims(
    servers: tuple[PostgresStore, PostgresStore], clock: ManualClock
) -> None:
    a, _ = servers
    t = clock.now()
    rng = random.Random(5)
    for w in WORKERS:
        await add_worker(a, t, w, concurrency=8)
    await a.configure_tenant("capped", max_running=3, now=t)
    await a.insert_jobs(
        [new_job(t, tenant="capped") for _ in range(30)] + [new_job(t) for _ in range(30)]
    )
    claimed: Counter[str] = Counter()
    peak = 0
    for n in range(300):
        now = t + n + 1
        for _, jobs in await claim_round(servers, now, limit=4):
            claimed.update(j.id for j in jobs)
        assert max(claimed.values()) == 1
        capped = sum(1 for j in await running(a) if j.tenant == "capped")
        assert capped <= 3, f"round {n}: {capped} jobs of tenant capped running"
        peak = max(peak, capped)
        await end_some(servers, rng, now + 0.5)
        if len(claimed) == 60 and not await running(a):
            break
    assert len(claimed) == 60
    assert peak == 3


async def test_rate_limit_tokens_are_spent_once_under_concurrent_claims(
    servers: tuple[PostgresStore, PostgresStore], clock: ManualClock
) -> None:
    a, _ = servers
    t = clock.now()
    for w in WORKERS:
        await add_worker(a, t, w, concurrency=50)
    await a.configure_queue("r", rate=RateLimit(5, 3600.0), now=t)
    await a.insert_jobs([new_job(t, queue="r") for _ in range(40)])
    got = 0
    for _ in range(3):
        got += sum(len(jobs) for _, jobs in await claim_round(servers, t + 1, limit=3))
    assert got == 5


async def test_claims_meeting_keys_in_different_orders_do_not_deadlock(
    servers: tuple[PostgresStore, PostgresStore],
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The claim locks the concurrency keys it meets (advisory locks) page by page. Two
    claims can meet the same two keys in opposite orders. The jobs, in claim order: 16 of
    key A, 16 of B, 16 of A, 16 of B (limit 1 each, nothing running). Claim X's first page
    is the first A block: it locks A, takes one A job and skips the rest. Claim Y's first
    page skips X's locked rows: it is the first B block, so Y locks B and takes one B job.
    Their second pages: X (skipping A and Y's locked rows) meets the second B block and
    waits for B; Y meets the second A block and waits for A.

    The interleaving is forced by pausing each claim after its first key lock until both
    have taken theirs (a wrapper around ``claims._count_keys``); two servers can hit it by
    chance. Expected: both claims return, one job of each key in all; neither fails with a
    deadlock."""
    from blixard.storage.postgres import claims as pg_claims

    a, b = servers
    t = clock.now()
    await add_worker(a, t, "x", concurrency=4)
    await add_worker(a, t, "y", concurrency=4)
    blocks = ["A", "B", "A", "B"]
    await a.insert_jobs(
        [
            new_job(t, {"block": i}, concurrency_key=key)
            for i, key in enumerate(blocks)
            for _ in range(16)
        ]
    )

    original = pg_claims._count_keys
    first_lock_taken = {"x": asyncio.Event(), "y": asyncio.Event()}
    met: dict[str, list[list[str]]] = {"x": [], "y": []}
    owner: dict[asyncio.Task[Any], str] = {}

    async def paced(
        conn: Any, admission: Any, keys: Sequence[str], scope: str, **options: Any
    ) -> None:
        await original(conn, admission, keys, scope, **options)
        task = asyncio.current_task()
        assert task is not None
        who = owner[task]
        met[who].append(list(keys))
        if keys and not first_lock_taken[who].is_set():
            first_lock_taken[who].set()
            await asyncio.wait_for(
                asyncio.gather(*(e.wait() for e in first_lock_taken.values())), 10
            )

    monkeypatch.setattr(pg_claims, "_count_keys", paced)

    x = asyncio.create_task(claim(a, "x", t + 1, limit=4))
    owner[x] = "x"
    await asyncio.wait_for(first_lock_taken["x"].wait(), 10)
    y = asyncio.create_task(claim(b, "y", t + 1, limit=4))
    owner[y] = "y"
    results = await asyncio.wait_for(asyncio.gather(x, y, return_exceptions=True), 30)
    # The scenario happened: each claim met its own key first.
    assert met["x"][0] == ["A"], met
    assert met["y"][0] == ["B"], met
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, f"a claim failed: {errors!r}"
    keys = sorted(j.concurrency_key or "" for r in results if isinstance(r, list) for j in r)
    assert keys == ["A", "B"]
