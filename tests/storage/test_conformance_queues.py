"""Queues, tenants and groups: configuration, counts, group summaries and cancellation,
the pending shapes the unschedulable diagnosis reads, and stats scoped by tenant."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from helpers import add_job, add_jobs, add_worker, claim, completed, failed, ids, req, started

from blixard.clock import ManualClock
from blixard.domain.constraints import parse_constraints
from blixard.domain.groups import GroupStatus
from blixard.domain.jobs import Requirements
from blixard.domain.queues import RateLimit
from blixard.domain.states import JobStatus
from blixard.errors import GroupNotFound
from blixard.storage.base import Store

ZERO = {str(s): 0 for s in JobStatus}


def counts(**nonzero: int) -> dict[str, int]:
    return {**ZERO, **nonzero}


# queues ------------------------------------------------------------------------------------
async def test_configure_creates_a_queue_and_changes_only_what_is_given(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    assert await store.get_queue("q") is None
    info = await store.configure_queue("q", max_running=5, now=t)
    q = info.queue
    assert (q.name, q.paused, q.max_running, q.rate) == ("q", False, 5, None)
    assert (q.created_at, q.updated_at) == (t, t)
    assert info.jobs_by_status == ZERO
    assert info.running == 0
    assert info.oldest_pending_at is None

    info = await store.configure_queue("q", paused=True, now=t + 1)
    assert (info.queue.paused, info.queue.max_running) == (True, 5)
    assert (info.queue.created_at, info.queue.updated_at) == (t, t + 1)
    info = await store.configure_queue("q", max_running=None, now=t + 2)
    assert (info.queue.paused, info.queue.max_running) == (True, None)
    info = await store.configure_queue("q", paused=False, now=t + 3)
    assert not info.queue.paused
    got = await store.get_queue("q")
    assert got == info


async def test_setting_a_rate_limit_fills_its_bucket_and_removing_it_empties_it(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    info = await store.configure_queue("r", rate=RateLimit(100, 60.0), now=t)
    q = info.queue
    assert q.rate == RateLimit(100, 60.0)
    assert (q.rate_tokens, q.rate_updated_at) == (100.0, t)
    assert q.rate.refill(q.rate_tokens, q.rate_updated_at, t + 5) == 100.0
    # Another setting leaves the bucket alone; a new rate refills it.
    info = await store.configure_queue("r", paused=True, now=t + 1)
    assert (info.queue.rate_tokens, info.queue.rate_updated_at) == (100.0, t)
    info = await store.configure_queue("r", rate=RateLimit(5, 1.0), now=t + 2)
    assert (info.queue.rate, info.queue.rate_tokens, info.queue.rate_updated_at) == (
        RateLimit(5, 1.0),
        5.0,
        t + 2,
    )
    info = await store.configure_queue("r", rate=None, now=t + 3)
    assert (info.queue.rate, info.queue.rate_tokens, info.queue.rate_updated_at) == (
        None,
        0.0,
        0.0,
    )
    assert info.queue.paused


async def test_queues_list_with_their_job_counts(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=10)
    await add_jobs(store, t - 30, 2, queue="a", priority=5)
    await add_job(store, t - 10, queue="a")
    await add_job(store, t - 20, queue="b", run_at=t + 100)
    (running, other) = await claim(store, "w1", t, limit=2)
    assert {running.queue, other.queue} == {"a"}
    await store.apply_reports("w1", [started(running)], t)
    await store.apply_reports("w1", [completed(other)], t)
    await store.configure_queue("empty", paused=True, now=t)

    listed = await store.list_queues()
    assert [i.queue.name for i in listed] == ["a", "b", "empty"]
    a, b, empty = listed
    assert a.jobs_by_status == counts(pending=1, in_progress=1, completed=1)
    assert a.running == 1
    assert a.oldest_pending_at == t - 10
    assert b.jobs_by_status == counts(pending=1)
    assert b.running == 0
    assert b.oldest_pending_at == t - 20  # delayed, but pending since its creation
    assert empty.jobs_by_status == ZERO
    assert empty.queue.paused
    assert await store.get_queue("a") == a
    assert await store.get_queue("nope") is None


async def test_a_queue_created_by_its_first_job_has_no_limits(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    await add_job(store, t, queue="fresh", tenant="acme")
    info = await store.get_queue("fresh")
    assert info is not None
    assert (info.queue.paused, info.queue.max_running, info.queue.rate) == (False, None, None)
    assert info.jobs_by_status == counts(pending=1)
    tenant = await store.get_tenant("acme")
    assert tenant is not None
    assert (tenant.tenant.weight, tenant.tenant.max_running) == (1.0, None)


# tenants -----------------------------------------------------------------------------------
async def test_configure_tenant_partial_updates(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    assert await store.get_tenant("acme") is None
    info = await store.configure_tenant("acme", weight=2.5, now=t)
    assert (info.tenant.name, info.tenant.weight, info.tenant.max_running) == ("acme", 2.5, None)
    info = await store.configure_tenant("acme", max_running=3, now=t + 1)
    assert (info.tenant.weight, info.tenant.max_running) == (2.5, 3)
    assert (info.tenant.created_at, info.tenant.updated_at) == (t, t + 1)
    info = await store.configure_tenant("acme", max_running=None, now=t + 2)
    assert (info.tenant.weight, info.tenant.max_running) == (2.5, None)
    assert await store.get_tenant("acme") == info


async def test_tenants_list_with_their_job_counts(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=10)
    await add_jobs(store, t - 5, 3, tenant="acme", worker_types=["gpu"])
    await add_job(store, t - 9, tenant="globex")
    (job,) = await claim(store, "w1", t, limit=1)
    assert job.tenant == "globex"
    await store.configure_tenant("idle", max_running=0, now=t)

    listed = await store.list_tenants()
    assert [i.tenant.name for i in listed] == ["acme", "globex", "idle"]
    acme, globex, idle = listed
    assert acme.jobs_by_status == counts(pending=3)
    assert acme.oldest_pending_at == t - 5
    assert globex.jobs_by_status == counts(claimed=1)
    assert globex.running == 1
    assert globex.oldest_pending_at is None
    assert idle.jobs_by_status == ZERO
    assert idle.tenant.max_running == 0
    assert await store.get_tenant("globex") == globex


# groups ------------------------------------------------------------------------------------
async def test_group_summary_follows_its_jobs(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    assert await store.group_summary("g") is None
    await add_worker(store, t, "w1", concurrency=10)
    first = await add_job(store, t, group_id="g", priority=1)
    second = await add_job(store, t + 1, group_id="g", depends_on=[first.id])
    await add_job(store, t, group_id="other", worker_types=["nobody"])

    s = await store.group_summary("g")
    assert s is not None
    assert (s.group_id, s.status, s.total) == ("g", GroupStatus.PENDING, 2)
    assert s.jobs_by_status == counts(pending=1, blocked=1)
    assert (s.created_at, s.finished_at) == (t, None)

    (job,) = await claim(store, "w1", t + 2, limit=1)
    assert job.id == first.id
    s = await store.group_summary("g")
    assert s is not None
    assert s.status is GroupStatus.RUNNING
    assert s.jobs_by_status == counts(claimed=1, blocked=1)

    await store.apply_reports("w1", [completed(job)], t + 3)
    s = await store.group_summary("g")
    assert s is not None
    assert s.status is GroupStatus.RUNNING  # started, and a job still waits
    assert s.jobs_by_status == counts(completed=1, pending=1)

    (job,) = await claim(store, "w1", t + 4, limit=10)
    assert job.id == second.id
    await store.apply_reports("w1", [completed(job)], t + 5)
    s = await store.group_summary("g")
    assert s is not None
    assert s.status is GroupStatus.COMPLETED
    assert s.jobs_by_status == counts(completed=2)
    assert (s.created_at, s.updated_at, s.finished_at) == (t, t + 5, t + 5)


async def test_a_failed_group_and_its_cancelled_dependants(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    await add_worker(store, t, "w1")
    parent = await add_job(store, t, group_id="g", max_attempts=1)
    await add_job(store, t, group_id="g", depends_on=[parent.id])
    (job,) = await claim(store, "w1", t, limit=1)
    await store.apply_reports("w1", [failed(job)], t + 1)
    s = await store.group_summary("g")
    assert s is not None
    assert s.jobs_by_status == counts(failed=1, cancelled=1)
    assert s.status is GroupStatus.FAILED
    assert s.finished_at == t + 1


async def test_cancel_group_cancels_every_unfinished_job(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=10)
    done = await add_job(store, t, group_id="g", priority=9)
    running = await add_job(store, t, group_id="g", priority=8)
    claimed = await add_job(store, t, group_id="g", priority=7)
    pending = await add_job(store, t, group_id="g", run_at=t + 1000)
    blocked = await add_job(store, t, group_id="g", depends_on=[pending.id])
    outside = await add_job(store, t, group_id="h")
    got = await claim(store, "w1", t, limit=3)
    assert ids(got) == [done.id, running.id, claimed.id]
    d, r, _ = got
    await store.apply_reports("w1", [completed(d), started(r)], t + 1)

    cancelled = await store.cancel_group("g", t + 2, "stop the batch")
    assert ids(cancelled) == sorted([running.id, claimed.id, pending.id, blocked.id])
    for job in cancelled:
        assert job.status is JobStatus.CANCELLED
        assert job.finished_at == t + 2
        assert job.lease_expires_at is None
        assert job.error == {"kind": "cancelled", "message": "stop the batch"}
    assert (await store.get_job(done.id)).status is JobStatus.COMPLETED  # type: ignore[union-attr]
    assert (await store.get_job(outside.id)).status is JobStatus.PENDING  # type: ignore[union-attr]
    # The running attempts are recorded as cancelled.
    for job_id in (running.id, claimed.id):
        (attempt,) = await store.job_attempts(job_id)
        assert (attempt.attempt, attempt.worker_id, attempt.outcome) == (1, "w1", "cancelled")
        assert attempt.finished_at == t + 2
    assert await store.job_attempts(pending.id) == []
    # The worker is told to stop them.
    hb = await store.heartbeat("w1", [], t + 3, 30.0)
    assert hb.worker.running == 0

    s = await store.group_summary("g")
    assert s is not None
    assert s.status is GroupStatus.CANCELLED
    assert s.jobs_by_status == counts(completed=1, cancelled=4)
    assert await store.cancel_group("g", t + 4, "again") == []


async def test_cancel_group_settles_dependants_outside_the_group(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    member = await add_job(store, t, group_id="g")
    doomed = await add_job(store, t, depends_on=[member.id])
    runs_anyway = await add_job(store, t, depends_on=[member.id], on_parent_failure="run")
    await store.cancel_group("g", t + 1, "x")
    d = await store.get_job(doomed.id)
    assert d is not None
    assert d.status is JobStatus.CANCELLED
    assert d.error is not None
    assert d.error["kind"] == "dependency_failed"
    r = await store.get_job(runs_anyway.id)
    assert r is not None
    assert r.status is JobStatus.PENDING


async def test_cancel_unknown_group(store: Store, clock: ManualClock) -> None:
    with pytest.raises(GroupNotFound) as info:
        await store.cancel_group("nope", clock.now(), "x")
    assert info.value.details == {"group_id": "nope"}


# pending shapes ----------------------------------------------------------------------------
async def test_pending_shapes_count_waiting_jobs_by_shape(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    assert await store.pending_shapes() == []
    await add_worker(store, t, "w1", worker_type="cpu", concurrency=100)
    gpu = req(cpu=2, gpu=2, labels={"zone": "a"})
    constraints = parse_constraints("c", [{"label": "zone", "op": "in", "values": ["a", "b"]}])
    zoned = Requirements(constraints=constraints)
    await add_jobs(store, t, 3, worker_types=["gpu"], requirements=gpu, tenant="acme")
    await add_jobs(store, t, 2, requirements=zoned, tenant="globex", run_at=t + 100)
    parent = await add_job(store, t, worker_types=["cpu"], tenant="acme", run_at=t + 100)
    await add_job(
        store, t, worker_types=["gpu"], requirements=gpu, tenant="acme", depends_on=[parent.id]
    )
    await add_jobs(store, t, 2, worker_types=["cpu"], priority=5)
    assert len(await claim(store, "w1", t, limit=2)) == 2  # running: not waiting

    shapes = await store.pending_shapes()
    assert [(s.worker_types, s.requirements, s.count) for s in shapes] == [
        (("gpu",), gpu, 4),  # one of them blocked
        ((), zoned, 2),
        (("cpu",), Requirements(), 1),
    ]
    assert shapes[0].requirements.labels == {"zone": "a"}
    assert shapes[1].requirements.constraints == constraints

    acme = await store.pending_shapes("acme")
    assert {(s.worker_types, s.count) for s in acme} == {(("gpu",), 4), (("cpu",), 1)}
    assert await store.pending_shapes("nobody") == []


# stats by tenant ---------------------------------------------------------------------------
async def test_stats_by_tenant(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=10)
    await add_job(store, t - 30, tenant="globex", queue="q1")
    await add_job(store, t - 20, tenant="acme", queue="q2", priority=9)
    await add_jobs(store, t - 10, 2, tenant="acme", queue="q1")
    (job,) = await claim(store, "w1", t, limit=1)
    assert job.tenant == "acme"

    s = await store.stats()
    assert s.tenant is None
    assert s.jobs_by_tenant == {"acme": {"pending": 2, "claimed": 1}, "globex": {"pending": 1}}
    assert s.jobs_by_queue == {"q1": {"pending": 3}, "q2": {"claimed": 1}}
    assert s.oldest_pending_at == t - 30

    s = await store.stats("acme")
    assert s.tenant == "acme"
    assert s.jobs_by_status == counts(pending=2, claimed=1)
    assert s.jobs_by_queue == {"q1": {"pending": 2}, "q2": {"claimed": 1}}
    assert s.jobs_by_tenant == {"acme": {"pending": 2, "claimed": 1}}
    assert s.oldest_pending_at == t - 10
    assert s.workers_by_status["online"] == 1  # workers are shared

    s = await store.stats("nobody")
    assert s.jobs_by_status == ZERO
    assert (s.jobs_by_queue, s.jobs_by_tenant, s.oldest_pending_at) == ({}, {}, None)


# PostgreSQL: other servers hear of loosened limits ------------------------------------------
@pytest.fixture
async def two_servers(
    pg_url: str, pg_schemas: Callable[[], Awaitable[str]]
) -> AsyncIterator[tuple[Store, Store]]:
    from blixard.storage.postgres import PostgresStore

    schema = await pg_schemas()
    stores = [
        PostgresStore(pg_url, rng=random.Random(1), schema=schema, min_size=1, max_size=2)
        for _ in range(2)
    ]
    for s in stores:
        await s.open()
    try:
        yield stores[0], stores[1]
    finally:
        for s in stores:
            await s.close()


async def test_postgres_wakes_other_servers_when_a_limit_loosens(
    two_servers: tuple[Store, Store], clock: ManualClock
) -> None:
    """Each loosening change reaches a listener on another store. (Which changes loosen is
    ``storage.admin``'s decision, unit-tested; the channel is shared by every schema of the
    database, so a test cannot tell a missing NOTIFY from another test's.)"""
    admin, other = two_servers
    woken = asyncio.Event()
    await other.listen(woken.set, lambda ids: None)
    t = clock.now()
    await admin.configure_queue("q", paused=True, max_running=1, rate=RateLimit(1, 9), now=t)
    await admin.configure_tenant("acme", max_running=0, now=t)
    changes: list[Callable[[], Awaitable[object]]] = [
        lambda: admin.configure_queue("q", paused=False, now=t),
        lambda: admin.configure_queue("q", max_running=2, now=t),
        lambda: admin.configure_queue("q", rate=None, now=t),
        lambda: admin.configure_tenant("acme", max_running=None, now=t),
    ]
    for change in changes:
        woken.clear()
        await change()
        await asyncio.wait_for(woken.wait(), 2.0)
