"""Cron schedules: what one is, how it is validated, and which slots fire when. Pure.

A schedule fires a job from its template (``domain.templates``) at every slot of its cron
expression in its time zone (``domain.cron``: syntax and daylight saving time). It keeps
``next_fire_at``, the earliest slot not handled yet; a slot is *due* once the clock passes
it. The scheduler loop (``service.schedules``) runs every second or so, asks
``plan_firing`` what to do with the due slots, submits one job per slot to fire, then
moves ``next_fire_at`` on with a compare-and-set. Each job carries the idempotency key
``schedule:<schedule id>:<slot>``, so a slot fires exactly once even when two servers (or
a retry after a crash between the submit and the compare-and-set) fire it.

What fires, when slots are due (``plan_firing``):

- **misfire = "skip"** (the default): a slot fires only while it is at most
  ``MISFIRE_GRACE_S`` (60 s) late. Slots missed for longer (the servers were down, or the
  schedule could not fire) are dropped, never fired: after an outage the schedule resumes
  with its next slot. Slots a few seconds late (a restart, a busy loop) still fire.
- **misfire = "catch_up"**: every missed slot fires, oldest first, however late, at most
  ``MAX_FIRE_PER_PASS`` (100) per pass of the loop: a longer backlog continues on the next
  passes (a second apart), so an outage of a busy schedule is worked off at 100 jobs a
  second rather than in one burst.
- **no_overlap**: while the job of the schedule's latest slot is not terminal (pending,
  blocked, claimed or running), due slots are dropped. Otherwise at most one job fires per
  pass, for the latest slot the misfire policy would fire; earlier due slots are dropped
  (they would overlap it).
- A **paused** schedule fires nothing; resuming it starts from the next slot after the
  resume (slots of the pause are not caught up, whatever the policy).
"""

from __future__ import annotations

from dataclasses import dataclass

from blixard.domain import validation as v
from blixard.domain.cron import Cron, cron
from blixard.domain.jobs import JobSpec
from blixard.domain.states import JobStatus
from blixard.domain.templates import check_template
from blixard.errors import ValidationError

MISFIRE_POLICIES = ("skip", "catch_up")
MISFIRE_GRACE_S = 60.0
"""Under "skip", a slot later than this is dropped."""
MAX_FIRE_PER_PASS = 100
"""Jobs one schedule fires in one pass of the scheduler loop, at most."""
_LATEST_WINDOW_GROWTH = 8


@dataclass(frozen=True, slots=True)
class Schedule:
    id: str
    tenant: str
    name: str
    cron: str
    timezone: str
    job: JobSpec
    """The template of the jobs it fires (``domain.templates``)."""
    misfire: str
    no_overlap: bool
    paused: bool
    next_fire_at: float
    """The earliest slot not handled yet (epoch seconds)."""
    last_fired_at: float | None
    """The slot of the latest job it fired."""
    last_job_id: str | None
    created_at: float
    updated_at: float

    @property
    def when(self) -> Cron:
        return cron(self.cron, self.timezone)


@dataclass(frozen=True, slots=True)
class DueSchedule:
    """A schedule with slots due, and the status of the last job it fired (None: it fired
    none yet, or that job is gone)."""

    schedule: Schedule
    last_job_status: JobStatus | None

    @property
    def last_job_running(self) -> bool:
        return self.last_job_status is not None and not self.last_job_status.terminal


def check_fields(name: str, tenant: str, cron_expression: str, timezone: str) -> Cron:
    """Validate a schedule's own fields (ValidationError names the field); its cron."""
    v.check_name("name", name)
    v.check_name("tenant", tenant)
    return cron(cron_expression, timezone)


def new_schedule(
    *,
    schedule_id: str,
    tenant: str,
    name: str,
    cron_expression: str,
    timezone: str,
    job: JobSpec,
    misfire: str = "skip",
    no_overlap: bool = False,
    paused: bool = False,
    now: float,
) -> Schedule:
    """A validated schedule whose first slot is the first after ``now``; ValidationError
    names the field (``cron``, ``timezone``, ``misfire``, ``job.<field>``...)."""
    when = check_fields(name, tenant, cron_expression, timezone)
    if misfire not in MISFIRE_POLICIES:
        raise ValidationError("misfire", f"must be 'skip' or 'catch_up', got {misfire!r}")
    check_template(job, tenant)
    return Schedule(
        id=schedule_id,
        tenant=tenant,
        name=name,
        cron=cron_expression,
        timezone=timezone,
        job=job,
        misfire=misfire,
        no_overlap=bool(no_overlap),
        paused=bool(paused),
        next_fire_at=when.next_after(now),
        last_fired_at=None,
        last_job_id=None,
        created_at=now,
        updated_at=now,
    )


@dataclass(frozen=True, slots=True)
class FirePlan:
    fire: tuple[float, ...]
    """The slots to fire now, oldest first (each becomes one job)."""
    next_fire_at: float
    """The schedule's next slot after this pass; still due (<= now) when a catch-up
    continues on the next pass."""
    dropped: bool
    """Some due slots were dropped, never to fire."""


def plan_firing(
    schedule: Schedule,
    now: float,
    last_job_running: bool,
    *,
    grace_s: float = MISFIRE_GRACE_S,
    limit: int = MAX_FIRE_PER_PASS,
) -> FirePlan:
    """What to do with ``schedule``'s due slots at ``now`` (see the module docstring).
    ``last_job_running``: the job of its latest fired slot is not terminal yet."""
    first = schedule.next_fire_at
    if schedule.paused or first > now:
        return FirePlan((), first, False)
    when = schedule.when
    catch_up = schedule.misfire == "catch_up"
    if schedule.no_overlap:
        upcoming = when.next_after(now)
        if last_job_running:
            return FirePlan((), upcoming, True)
        start = first if catch_up else max(first, now - grace_s)
        latest = _latest(when, start, now, grace_s)
        if latest is None:
            return FirePlan((), upcoming, True)
        return FirePlan((latest,), upcoming, latest != first)
    if catch_up:
        start, dropped = first, False
    else:
        horizon = now - grace_s
        dropped = first < horizon
        start = when.at_or_after(horizon) if dropped else first
    slots: list[float] = []
    slot = start
    while slot <= now and len(slots) < max(limit, 1):
        slots.append(slot)
        slot = when.next_after(slot)
    return FirePlan(tuple(slots), slot, dropped)


def _latest(when: Cron, start: float, now: float, window: float) -> float | None:
    """The latest slot in [start, now], or None: looks back over growing windows, so a
    long backlog is not walked slot by slot."""
    window = max(window, 1.0)
    while True:
        lo = max(start, now - window)
        found: float | None = None
        slot = when.at_or_after(lo)
        while slot <= now:
            found = slot
            slot = when.next_after(slot)
        if found is not None or lo <= start:
            return found
        window *= _LATEST_WINDOW_GROWTH


def upcoming(schedule: Schedule, count: int) -> list[float]:
    """The schedule's next ``count`` slots from ``next_fire_at`` on."""
    if count <= 0:
        return []
    return [schedule.next_fire_at, *schedule.when.upcoming(schedule.next_fire_at, count - 1)]
