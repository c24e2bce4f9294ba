"""Conformance: cron schedules (create, read, list, pause, delete, due, advance, fired jobs),
and two schedulers firing the same slots at once."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from helpers import add_worker, claim_one, completed, new_job

from blixard.clock import ManualClock
from blixard.domain.constraints import LabelConstraint, Op, Preference
from blixard.domain.jobs import JobSpec, NewJob, Requirements
from blixard.domain.retry import Backoff
from blixard.domain.schedules import Schedule, new_schedule
from blixard.domain.states import JobStatus
from blixard.domain.templates import fired_spec
from blixard.errors import Conflict, ScheduleNotFound
from blixard.ids import new_id
from blixard.service.context import ServiceContext
from blixard.service.jobs import JobService
from blixard.service.schedules import Scheduler
from blixard.service.settings import ServerSettings
from blixard.service.signals import JobWatchers, Signal
from blixard.storage.base import Store

T = 1_700_000_040.0  # 2023-11-14 22:14:00 UTC


def template(tenant: str = "default", **kwargs: object) -> JobSpec:
    return JobSpec.build({"n": 1}, tenant=tenant, **kwargs)  # type: ignore[arg-type]


def schedule(
    name: str = "every-minute",
    *,
    tenant: str = "default",
    cron: str = "* * * * *",
    now: float = T - 1,
    job: JobSpec | None = None,
    **kwargs: object,
) -> Schedule:
    return new_schedule(
        schedule_id=new_id(),
        tenant=tenant,
        name=name,
        cron_expression=cron,
        timezone="UTC",
        job=job or template(tenant),
        now=now,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_create_and_get_round_trip_every_field(store: Store) -> None:
    job = template(
        "acme",
        queue="reports",
        worker_types=["process"],
        requirements=Requirements(
            cpu=0.5,
            memory_mb=256,
            labels={"zone": "a"},
            constraints=(LabelConstraint("disk", Op.EXISTS),),
        ),
        priority=-3,
        max_attempts=7,
        backoff=Backoff(base_s=0.5, factor=1.5, max_s=9, jitter=0),
        timeout_s=12.5,
        concurrency_key="k",
        concurrency_limit=3,
        preferences=[Preference("rack", ("r1", "r2"), 4)],
    )
    s = schedule(
        "nightly",
        tenant="acme",
        cron="30 2 * * *",
        job=job,
        misfire="catch_up",
        no_overlap=True,
    )
    s = dataclasses.replace(s, timezone="Europe/Paris")
    created = await store.create_schedule(s)
    assert created == s
    assert await store.get_schedule(s.id) == s
    assert await store.get_schedule("nope") is None


async def test_names_are_unique_per_tenant(store: Store) -> None:
    await store.create_schedule(schedule("daily"))
    with pytest.raises(Conflict) as err:
        await store.create_schedule(schedule("daily"))
    assert err.value.details == {"tenant": "default", "name": "daily"}
    other = await store.create_schedule(schedule("daily", tenant="acme"))
    assert other.tenant == "acme"


async def test_list_by_tenant_and_name(store: Store) -> None:
    for tenant, name in (("b", "x"), ("a", "z"), ("a", "y")):
        await store.create_schedule(schedule(name, tenant=tenant))
    everything = await store.list_schedules()
    assert [(s.tenant, s.name) for s in everything] == [("a", "y"), ("a", "z"), ("b", "x")]
    assert [s.name for s in await store.list_schedules("a")] == ["y", "z"]
    assert await store.list_schedules("nobody") == []


async def test_pause_and_resume(store: Store) -> None:
    s = await store.create_schedule(schedule())
    paused = await store.set_schedule_paused(s.id, True, T + 5)
    assert (paused.paused, paused.next_fire_at, paused.updated_at) == (True, s.next_fire_at, T + 5)
    resumed = await store.set_schedule_paused(s.id, False, T + 9, next_fire_at=T + 600)
    assert (resumed.paused, resumed.next_fire_at, resumed.updated_at) == (False, T + 600, T + 9)
    assert await store.get_schedule(s.id) == resumed
    with pytest.raises(ScheduleNotFound):
        await store.set_schedule_paused("nope", True, T)


async def test_delete(store: Store) -> None:
    s = await store.create_schedule(schedule())
    await store.delete_schedule(s.id)
    assert await store.get_schedule(s.id) is None
    with pytest.raises(ScheduleNotFound):
        await store.delete_schedule(s.id)


async def test_due_schedules_earliest_first_without_paused_ones(store: Store) -> None:
    late = await store.create_schedule(schedule("late", now=T + 100))  # next: T + 120
    early = await store.create_schedule(schedule("early"))  # next: T
    paused = await store.create_schedule(schedule("paused", paused=True))
    assert await store.due_schedules(T - 0.5, 10) == []
    due = await store.due_schedules(T + 200, 10)
    assert [d.schedule.id for d in due] == [early.id, late.id]
    assert all(d.last_job_status is None for d in due)
    assert [d.schedule.id for d in await store.due_schedules(T + 200, 1)] == [early.id]
    assert paused.id not in {d.schedule.id for d in await store.due_schedules(T + 10**6, 10)}


async def test_due_schedules_carry_the_last_jobs_status(store: Store, clock: ManualClock) -> None:
    s = await store.create_schedule(schedule())
    fired = NewJob(new_id(), fired_spec(s.job, s.id, s.next_fire_at), T, T)
    (inserted,) = await store.insert_jobs([fired])
    assert await store.advance_schedule(s.id, T, T + 60, T, T, inserted.job.id)
    (due,) = await store.due_schedules(T + 60, 10)
    assert (due.last_job_status, due.last_job_running) == (JobStatus.PENDING, True)
    await add_worker(store, T)
    job = await claim_one(store, "w1", T + 1)
    await store.apply_reports("w1", [completed(job)], T + 2)
    (due,) = await store.due_schedules(T + 60, 10)
    assert (due.last_job_status, due.last_job_running) == (JobStatus.COMPLETED, False)


async def test_advance_is_a_compare_and_set(store: Store) -> None:
    s = await store.create_schedule(schedule())
    assert await store.advance_schedule(s.id, T, T + 60, T + 1, T, "job-1")
    got = await store.get_schedule(s.id)
    assert got is not None
    assert (got.next_fire_at, got.last_fired_at, got.last_job_id, got.updated_at) == (
        T + 60,
        T,
        "job-1",
        T + 1,
    )
    # a second pass that planned from the old slot changes nothing
    assert not await store.advance_schedule(s.id, T, T + 120, T + 2, T + 60, "job-2")
    assert await store.get_schedule(s.id) == got
    # moving on without firing keeps the last fired slot and job
    assert await store.advance_schedule(s.id, T + 60, T + 180, T + 3)
    got = await store.get_schedule(s.id)
    assert got is not None
    assert (got.next_fire_at, got.last_fired_at, got.last_job_id) == (T + 180, T, "job-1")
    assert not await store.advance_schedule("nope", T, T + 60, T)


async def test_schedule_jobs_newest_first_and_only_its_own(store: Store) -> None:
    a = await store.create_schedule(schedule("a"))
    b = await store.create_schedule(schedule("b"))
    jobs = [
        NewJob(new_id(), fired_spec(s.job, s.id, T + i * 60), T + i, T + i)
        for i, s in enumerate((a, b, a, a))
    ]
    await store.insert_jobs(jobs)
    await store.insert_jobs([new_job(T)])  # not from a schedule
    got = await store.schedule_jobs(a.id, 10)
    assert [j.id for j in got] == [jobs[3].id, jobs[2].id, jobs[0].id]
    assert {j.schedule_id for j in got} == {a.id}
    assert [j.idempotency_key for j in got] == [
        f"schedule:{a.id}:{int(T + 180)}",
        f"schedule:{a.id}:{int(T + 120)}",
        f"schedule:{a.id}:{int(T)}",
    ]
    assert [j.id for j in await store.schedule_jobs(a.id, 2)] == [jobs[3].id, jobs[2].id]
    assert await store.schedule_jobs("nope", 10) == []


def scheduler(store: Store, clock: ManualClock) -> Scheduler:
    ctx = ServiceContext(store, clock, ServerSettings(), Signal(), JobWatchers())
    return Scheduler(ctx, JobService(ctx))


async def test_two_schedulers_firing_the_same_slots_make_one_job_per_slot(
    store: Store, clock: ManualClock
) -> None:
    """A change of leader can let two passes run at once: the slot keys keep one job per
    slot, and the compare-and-set lets one pass move each schedule on."""
    clock.set(T - 1)
    every_second = await store.create_schedule(
        schedule("secs", cron="* * * * * *", misfire="catch_up", now=T - 1)
    )
    every_minute = await store.create_schedule(schedule("mins", now=T - 1))
    first, second = scheduler(store, clock), scheduler(store, clock)
    for step in range(5):
        clock.set(T + 20 * step + 0.5)
        await asyncio.gather(first.run_once(), second.run_once())
    jobs = await store.schedule_jobs(every_second.id, 1000)
    keys = [j.idempotency_key for j in jobs]
    assert sorted(keys) == sorted(f"schedule:{every_second.id}:{int(T) + i}" for i in range(81)), (
        "one job for each second from T to T + 80"
    )
    assert len(set(keys)) == len(keys)
    assert first.fired_total + second.fired_total == 81 + 2  # + the minute slots T, T + 60
    minutes = await store.schedule_jobs(every_minute.id, 10)
    assert sorted(j.idempotency_key or "" for j in minutes) == [
        f"schedule:{every_minute.id}:{int(T)}",
        f"schedule:{every_minute.id}:{int(T) + 60}",
    ]
    for s in (every_second, every_minute):
        got = await store.get_schedule(s.id)
        assert got is not None
        assert got.next_fire_at > clock.now()
        assert got.last_job_id is not None
