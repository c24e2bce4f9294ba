"""domain.schedules and domain.templates: validation, misfire policies, no_overlap, caps."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from blixard.domain.constraints import LabelConstraint, Op, Preference
from blixard.domain.jobs import JobSpec, Requirements
from blixard.domain.retry import Backoff
from blixard.domain.schedules import (
    MAX_FIRE_PER_PASS,
    MISFIRE_GRACE_S,
    DueSchedule,
    Schedule,
    new_schedule,
    plan_firing,
    upcoming,
)
from blixard.domain.states import JobStatus
from blixard.domain.templates import (
    PER_JOB_FIELDS,
    TEMPLATE_FIELDS,
    check_template,
    fired_spec,
    slot_key,
    template_from_dict,
    template_to_dict,
)
from blixard.errors import ValidationError

T = 1_700_000_040.0  # 2023-11-14 22:14:00 UTC
MINUTE = 60.0


def make(
    cron: str = "* * * * *",
    *,
    misfire: str = "skip",
    no_overlap: bool = False,
    paused: bool = False,
    tenant: str = "default",
    timezone: str = "UTC",
    job: JobSpec | None = None,
    now: float = T - 1,
) -> Schedule:
    return new_schedule(
        schedule_id="s1",
        tenant=tenant,
        name="every",
        cron_expression=cron,
        timezone=timezone,
        job=job or JobSpec.build({"n": 1}, tenant=tenant),
        misfire=misfire,
        no_overlap=no_overlap,
        paused=paused,
        now=now,
    )


# -- new_schedule ------------------------------------------------------------------------------


def test_a_new_schedule_starts_at_its_first_slot_after_now() -> None:
    s = make("*/5 * * * *", now=T + 1)
    assert s.next_fire_at == T + MINUTE  # T is 22:14 UTC: the next */5 is 22:15
    assert (s.last_fired_at, s.last_job_id, s.created_at, s.updated_at) == (
        None,
        None,
        T + 1,
        T + 1,
    )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"cron": "* * *"}, "cron"),
        ({"cron": "99 * * * *"}, "cron"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"misfire": "later"}, "misfire"),
        ({"tenant": "bad tenant"}, "tenant"),
    ],
)
def test_bad_fields_are_named(kwargs: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        make(**kwargs)  # type: ignore[arg-type]
    assert err.value.field == field


def test_bad_name() -> None:
    with pytest.raises(ValidationError) as err:
        new_schedule(
            schedule_id="s",
            tenant="default",
            name="",
            cron_expression="* * * * *",
            timezone="UTC",
            job=JobSpec.build({}),
            now=T,
        )
    assert err.value.field == "name"


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"run_at": T + 10}, "job.run_at"),
        ({"idempotency_key": "k"}, "job.idempotency_key"),
        ({"schedule_id": "other"}, "job.schedule_id"),
        ({"depends_on": ("p1",)}, "job.depends_on"),
        ({"group_id": "g"}, "job.group_id"),
        ({"tenant": "acme"}, "job.tenant"),
    ],
)
def test_a_template_cannot_carry_per_job_fields(override: dict[str, object], field: str) -> None:
    job = dataclasses.replace(JobSpec.build({}), **override)  # type: ignore[arg-type]
    with pytest.raises(ValidationError) as err:
        make(job=job)
    assert err.value.field == field


def test_upcoming_starts_at_the_next_slot() -> None:
    s = make()
    assert upcoming(s, 3) == [T, T + MINUTE, T + 2 * MINUTE]
    assert upcoming(s, 0) == []


def test_due_schedule_knows_whether_the_last_job_runs() -> None:
    s = make()
    assert not DueSchedule(s, None).last_job_running
    for status in (JobStatus.PENDING, JobStatus.BLOCKED, JobStatus.CLAIMED, JobStatus.IN_PROGRESS):
        assert DueSchedule(s, status).last_job_running
    for status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
        assert not DueSchedule(s, status).last_job_running


# -- plan_firing -------------------------------------------------------------------------------


def test_nothing_is_due_before_the_slot() -> None:
    s = make()
    plan = plan_firing(s, T - 0.5, False)
    assert (plan.fire, plan.next_fire_at, plan.dropped) == ((), T, False)


def test_on_time_fires_the_slot_and_moves_on() -> None:
    plan = plan_firing(make(), T + 0.3, False)
    assert (plan.fire, plan.next_fire_at, plan.dropped) == ((T,), T + MINUTE, False)


def test_paused_fires_nothing() -> None:
    plan = plan_firing(make(paused=True), T + 600, False)
    assert (plan.fire, plan.next_fire_at) == ((), T)


def test_skip_drops_what_is_later_than_the_grace() -> None:
    # down for an hour: only the slot 10 s ago fires
    plan = plan_firing(make(), T + 3600 + 10, False)
    assert (plan.fire, plan.next_fire_at, plan.dropped) == ((T + 3600,), T + 3660, True)


def test_skip_fires_every_slot_within_the_grace() -> None:
    s = make("* * * * * *")  # every second
    plan = plan_firing(s, T + 30.5, False)
    assert plan.fire == tuple(T + i for i in range(31))
    assert (plan.next_fire_at, plan.dropped) == (T + 31, False)


def test_skip_grace_boundary() -> None:
    s = make()
    # exactly the grace late: still fires (with the next slot, due just now)
    assert plan_firing(s, T + MISFIRE_GRACE_S, False).fire == (T, T + MINUTE)
    late = plan_firing(s, T + MISFIRE_GRACE_S + 1, False)  # T is 61 s late, T + 60 is 1 s
    assert (late.fire, late.dropped) == ((T + MINUTE,), True)


def test_skip_with_nothing_within_the_grace() -> None:
    s = make("0 * * * *", now=T)  # hourly
    first = s.next_fire_at
    plan = plan_firing(s, first + 1800, False)
    assert (plan.fire, plan.next_fire_at, plan.dropped) == ((), first + 3600, True)


def test_catch_up_fires_every_missed_slot_oldest_first() -> None:
    plan = plan_firing(make(misfire="catch_up"), T + 3600 + 10, False)
    assert plan.fire == tuple(T + i * MINUTE for i in range(61))
    assert (plan.next_fire_at, plan.dropped) == (T + 3660, False)


def test_catch_up_is_capped_per_pass_and_goes_on_next_pass() -> None:
    s = make("* * * * * *", misfire="catch_up")
    now = T + 250.5
    first = plan_firing(s, now, False)
    assert first.fire == tuple(T + i for i in range(MAX_FIRE_PER_PASS))
    assert first.next_fire_at == T + MAX_FIRE_PER_PASS  # still due: the next pass goes on
    s = dataclasses.replace(s, next_fire_at=first.next_fire_at)
    second = plan_firing(s, now + 1, False)
    assert second.fire == tuple(T + 100 + i for i in range(100))
    s = dataclasses.replace(s, next_fire_at=second.next_fire_at)
    third = plan_firing(s, now + 2, False)
    assert third.fire == tuple(T + 200 + i for i in range(53))  # up to now + 2 = T + 252.5
    assert third.next_fire_at == T + 253


def test_no_overlap_drops_due_slots_while_the_last_job_runs() -> None:
    for misfire in ("skip", "catch_up"):
        plan = plan_firing(make(misfire=misfire, no_overlap=True), T + 125, True)
        assert (plan.fire, plan.next_fire_at, plan.dropped) == ((), T + 180, True)


def test_no_overlap_fires_one_job_for_the_latest_slot() -> None:
    s = make(misfire="catch_up", no_overlap=True)
    plan = plan_firing(s, T + 3600 + 10, False)
    assert (plan.fire, plan.next_fire_at, plan.dropped) == ((T + 3600,), T + 3660, True)
    on_time = plan_firing(s, T + 1, False)
    assert (on_time.fire, on_time.next_fire_at, on_time.dropped) == ((T,), T + MINUTE, False)


def test_no_overlap_latest_slot_far_back() -> None:
    # catch_up + no_overlap after a week down, daily schedule: the latest missed slot fires
    s = make("0 0 * * *", misfire="catch_up", no_overlap=True, now=T)
    first = s.next_fire_at
    plan = plan_firing(s, first + 7 * 86_400 + 3 * 3600, False)
    assert plan.fire == (first + 7 * 86_400,)
    assert plan.next_fire_at == first + 8 * 86_400


def test_no_overlap_with_skip_and_nothing_within_the_grace() -> None:
    s = make("0 * * * *", no_overlap=True, now=T)
    first = s.next_fire_at
    plan = plan_firing(s, first + 600, False)
    assert (plan.fire, plan.next_fire_at, plan.dropped) == ((), first + 3600, True)


def test_catch_up_across_a_dst_change_in_paris() -> None:
    paris = ZoneInfo("Europe/Paris")
    start = datetime(2024, 10, 26, 12, tzinfo=paris).timestamp()
    s = make("30 2 * * *", timezone="Europe/Paris", misfire="catch_up", now=start)
    now = datetime(2024, 10, 29, 12, tzinfo=paris).timestamp()
    got = [datetime.fromtimestamp(t, paris).isoformat() for t in plan_firing(s, now, False).fire]
    assert got == [
        "2024-10-27T02:30:00+02:00",
        "2024-10-28T02:30:00+01:00",
        "2024-10-29T02:30:00+01:00",
    ]


# -- templates ---------------------------------------------------------------------------------


def full_template(tenant: str = "acme") -> JobSpec:
    return JobSpec.build(
        {"cmd": ["echo", "hi"], "n": [1, 2.5, None]},
        queue="reports",
        tenant=tenant,
        worker_types=["process", "python"],
        requirements=Requirements(
            cpu=1.5,
            memory_mb=512,
            gpu=1,
            labels={"zone": "a"},
            constraints=(LabelConstraint("disk", Op.IN, ("ssd", "nvme")),),
        ),
        priority=7,
        max_attempts=5,
        backoff=Backoff(base_s=2, factor=3, max_s=60, jitter=0.1),
        timeout_s=30.0,
        concurrency_key="repo-1",
        concurrency_limit=2,
        preferences=[Preference("rack", ("r1",), 5)],
    )


def test_template_round_trip_keeps_every_field() -> None:
    spec = full_template()
    data = template_to_dict(spec)
    assert data["payload"] == {"cmd": ["echo", "hi"], "n": [1, 2.5, None]}
    assert data["requirements"]["constraints"] == [
        {"label": "disk", "op": "in", "values": ["ssd", "nvme"]}
    ]
    assert template_from_dict(data) == spec
    bare = JobSpec.build({})
    assert template_from_dict(template_to_dict(bare)) == bare
    assert template_from_dict({"payload": {"x": 1}}) == JobSpec.build({"x": 1})


def test_every_jobspec_field_is_a_template_field_or_a_per_job_field() -> None:
    """A new JobSpec field must be added to the template codec (or declared per job)."""
    names = {f.name for f in dataclasses.fields(JobSpec)}
    assert names == set(TEMPLATE_FIELDS) | set(PER_JOB_FIELDS)


def test_fired_jobs_carry_the_schedule_and_the_slot_key() -> None:
    spec = check_template(full_template(), "acme")
    fired = fired_spec(spec, "sched-1", 1_700_000_040.0)
    assert fired.schedule_id == "sched-1"
    assert fired.idempotency_key == "schedule:sched-1:1700000040" == slot_key("sched-1", T)
    assert dataclasses.replace(fired, schedule_id=None, idempotency_key=None) == spec
