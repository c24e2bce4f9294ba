"""Cron schedules: the use cases (create, read, pause, resume, delete) and the scheduler
loop that fires them.

The loop runs every ``scheduler_interval_s`` on the server that leads the "scheduler"
role. For each due schedule it asks ``domain.schedules.plan_firing`` which slots fire,
submits one job per slot through the ordinary submit path (each with the slot's
idempotency key), then moves the schedule on with a compare-and-set. A crash between the
two steps, or two servers in one pass during a change of leader, makes the same slots fire
again: their keys return the jobs already made, so every slot has one job.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from blixard.domain.jobs import Job, JobSpec
from blixard.domain.schedules import DueSchedule, Schedule, new_schedule, plan_firing, upcoming
from blixard.domain.templates import fired_spec
from blixard.errors import BlixardError, ScheduleNotFound, ValidationError
from blixard.ids import new_id
from blixard.service.context import ServiceContext, UseCases
from blixard.service.jobs import JobService

log = logging.getLogger("blixard.scheduler")


@dataclass(frozen=True, slots=True)
class ScheduleDetail:
    schedule: Schedule
    upcoming: list[float]
    """Its next slots, from ``next_fire_at`` on."""
    recent_jobs: list[Job]
    """The latest jobs it fired, newest first."""


class ScheduleService(UseCases):
    async def create(
        self,
        *,
        name: str,
        tenant: str,
        cron: str,
        timezone: str,
        job: JobSpec,
        misfire: str = "skip",
        no_overlap: bool = False,
        paused: bool = False,
    ) -> Schedule:
        schedule = new_schedule(
            schedule_id=new_id(),
            tenant=tenant,
            name=name,
            cron_expression=cron,
            timezone=timezone,
            job=job,
            misfire=misfire,
            no_overlap=no_overlap,
            paused=paused,
            now=self._clock.now(),
        )
        return await self._store.create_schedule(schedule)

    async def get(self, schedule_id: str) -> Schedule:
        schedule = await self._store.get_schedule(schedule_id)
        if schedule is None:
            raise ScheduleNotFound(schedule_id)
        return schedule

    async def detail(self, schedule_id: str, *, slots: int = 5, jobs: int = 10) -> ScheduleDetail:
        schedule = await self.get(schedule_id)
        recent = await self._store.schedule_jobs(schedule_id, jobs) if jobs > 0 else []
        return ScheduleDetail(schedule, upcoming(schedule, slots), recent)

    async def list_schedules(self, tenant: str | None = None) -> list[Schedule]:
        return await self._store.list_schedules(tenant)

    async def pause(self, schedule_id: str) -> Schedule:
        return await self._store.set_schedule_paused(schedule_id, True, self._clock.now())

    async def resume(self, schedule_id: str) -> Schedule:
        """A paused schedule starts again from its first slot after now (the slots of the
        pause never fire); resuming a running schedule changes nothing."""
        schedule = await self.get(schedule_id)
        if not schedule.paused:
            return schedule
        now = self._clock.now()
        return await self._store.set_schedule_paused(
            schedule_id, False, now, schedule.when.next_after(now)
        )

    async def delete(self, schedule_id: str) -> None:
        await self._store.delete_schedule(schedule_id)


class Scheduler(UseCases):
    """Every ``scheduler_interval_s``, while this server leads the "scheduler" role: fire
    the due slots of every schedule (at most ``BATCH`` schedules read at a time)."""

    BATCH = 100

    def __init__(self, ctx: ServiceContext, jobs: JobService) -> None:
        super().__init__(ctx)
        self._jobs = jobs
        self._task: asyncio.Task[None] | None = None
        self.leader = False
        self.runs = 0
        self.fired_total = 0

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="blixard-scheduler")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def run_once(self) -> int:
        """One pass, if this server leads the scheduler role; the jobs it created."""
        self.leader = await self._store.try_lead("scheduler")
        if not self.leader:
            return 0
        now = self._clock.now()
        created = 0
        done: set[str] = set()  # each schedule once per pass: a catch-up goes on next pass
        while True:
            limit = self.BATCH + len(done)
            due = await self._store.due_schedules(now, limit)
            fresh = [d for d in due if d.schedule.id not in done]
            for item in fresh:
                done.add(item.schedule.id)
                try:
                    created += await self._fire(item, now)
                except BlixardError as exc:
                    log.error("schedule %s (%s): %s", item.schedule.id, item.schedule.name, exc)
            if len(due) < limit or not fresh:
                break
        self.runs += 1
        self.fired_total += created
        return created

    async def _fire(self, item: DueSchedule, now: float) -> int:
        s = item.schedule
        try:
            plan = plan_firing(s, now, item.last_job_running)
        except ValidationError as exc:  # stored before a library or tzdata change broke it
            log.error("schedule %s (%s) paused: %s", s.id, s.name, exc.message)
            await self._store.set_schedule_paused(s.id, True, now)
            return 0
        if plan.dropped:
            log.info(
                "schedule %s (%s): due slot(s) from %s dropped (misfire %s%s)",
                s.id,
                s.name,
                datetime.fromtimestamp(s.next_fire_at, UTC).isoformat(),
                s.misfire,
                ", no_overlap: the last job is still running"
                if s.no_overlap and item.last_job_running
                else "",
            )
        created = 0
        last_job_id: str | None = None
        if plan.fire:
            inserted = await self._jobs.submit([fired_spec(s.job, s.id, t) for t in plan.fire])
            created = sum(1 for i in inserted if i.created)
            last_job_id = inserted[-1].job.id
        if plan.fire or plan.next_fire_at != s.next_fire_at:
            moved = await self._store.advance_schedule(
                s.id,
                s.next_fire_at,
                plan.next_fire_at,
                now,
                plan.fire[-1] if plan.fire else None,
                last_job_id,
            )
            if not moved:
                log.debug("schedule %s moved on elsewhere (another server, or resumed)", s.id)
        return created

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except BlixardError as exc:
                log.error("scheduler: %s", exc)
            except Exception:  # keep the loop alive; the next run retries
                log.exception("scheduler run failed")
            await asyncio.sleep(self._settings.scheduler_interval_s)
