"""PostgreSQL: the schedules part of the Store (a mixin of PostgresStore).

Several servers share the table. Only the leader of the "scheduler" role fires, but a
leadership change can let two passes overlap: the compare-and-set on ``next_fire_at``
lets one of them move a schedule on, and the slot's idempotency key (``domain.templates``)
keeps the jobs they both submit to one per slot.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

from asyncpg import Record

from blixard.domain.jobs import Job
from blixard.domain.schedules import DueSchedule, Schedule
from blixard.domain.states import JobStatus
from blixard.domain.templates import template_from_dict, template_to_dict
from blixard.errors import Conflict, ScheduleNotFound
from blixard.storage import sqlfiles
from blixard.storage.postgres import rows

if TYPE_CHECKING:
    from blixard.storage.postgres.driver import Conn

Q = sqlfiles.queries("blixard.storage.postgres")


def _schedule(r: Record) -> Schedule:
    return Schedule(
        id=r["id"],
        tenant=r["tenant"],
        name=r["name"],
        cron=r["cron"],
        timezone=r["timezone"],
        job=template_from_dict(r["job"]),
        misfire=r["misfire"],
        no_overlap=r["no_overlap"],
        paused=r["paused"],
        next_fire_at=r["next_fire_at"],
        last_fired_at=r["last_fired_at"],
        last_job_id=r["last_job_id"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
    )


class PostgresSchedules:
    if TYPE_CHECKING:  # provided by PostgresStore

        def _transaction(self) -> AbstractAsyncContextManager[Conn]: ...

        def _acquire(self) -> AbstractAsyncContextManager[Conn]: ...

    async def create_schedule(self, schedule: Schedule) -> Schedule:
        rows.check_storable("job.payload", schedule.job.payload_json)
        s = schedule
        async with self._acquire() as conn:
            row = await conn.fetchrow(
                Q["insert_schedule"],
                s.id,
                s.tenant,
                s.name,
                s.cron,
                s.timezone,
                template_to_dict(s.job),
                s.misfire,
                s.no_overlap,
                s.paused,
                s.next_fire_at,
                s.last_fired_at,
                s.last_job_id,
                s.created_at,
                s.updated_at,
            )
        if row is None:
            raise Conflict(
                f"tenant {s.tenant!r} already has a schedule named {s.name!r}",
                tenant=s.tenant,
                name=s.name,
            )
        return _schedule(row)

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        async with self._acquire() as conn:
            row = await conn.fetchrow(Q["get_schedule"], schedule_id)
        return _schedule(row) if row else None

    async def list_schedules(self, tenant: str | None = None) -> list[Schedule]:
        async with self._acquire() as conn:
            found = await conn.fetch(Q["list_schedules"], tenant)
        return [_schedule(r) for r in found]

    async def set_schedule_paused(
        self, schedule_id: str, paused: bool, now: float, next_fire_at: float | None = None
    ) -> Schedule:
        async with self._acquire() as conn:
            row = await conn.fetchrow(
                Q["set_schedule_paused"], schedule_id, paused, next_fire_at, now
            )
        if row is None:
            raise ScheduleNotFound(schedule_id)
        return _schedule(row)

    async def delete_schedule(self, schedule_id: str) -> None:
        async with self._acquire() as conn:
            deleted = await conn.fetchval(Q["delete_schedule"], schedule_id)
        if deleted is None:
            raise ScheduleNotFound(schedule_id)

    async def due_schedules(self, now: float, limit: int) -> list[DueSchedule]:
        async with self._acquire() as conn:
            found = await conn.fetch(Q["due_schedules"], now, limit)
        return [
            DueSchedule(
                _schedule(r),
                None if r["last_job_status"] is None else JobStatus(r["last_job_status"]),
            )
            for r in found
        ]

    async def advance_schedule(
        self,
        schedule_id: str,
        expected_next_fire_at: float,
        next_fire_at: float,
        now: float,
        last_fired_at: float | None = None,
        last_job_id: str | None = None,
    ) -> bool:
        async with self._acquire() as conn:
            moved = await conn.fetchval(
                Q["advance_schedule"],
                schedule_id,
                expected_next_fire_at,
                next_fire_at,
                last_fired_at,
                last_job_id,
                now,
            )
        return moved is not None

    async def schedule_jobs(self, schedule_id: str, limit: int) -> list[Job]:
        async with self._acquire() as conn:
            found = await conn.fetch(Q["schedule_jobs"], schedule_id, limit)
        return [rows.job_from_row(r) for r in found]
