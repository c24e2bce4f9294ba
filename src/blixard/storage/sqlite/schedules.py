"""SQLite: the schedules part of the Store (a mixin of SqliteStore).

One server owns a SQLite file, so the scheduler's compare-and-set never meets a rival
here; it is kept anyway, for a schedule resumed between a pass's read and its write.
"""

from __future__ import annotations

from typing import Any

import orjson

from blixard.domain.jobs import Job
from blixard.domain.schedules import DueSchedule, Schedule
from blixard.domain.states import JobStatus
from blixard.domain.templates import template_from_dict, template_to_dict
from blixard.errors import Conflict, ScheduleNotFound
from blixard.storage import sqlfiles
from blixard.storage.sqlite import rows
from blixard.storage.sqlite.connection import SqliteConnection

Q = sqlfiles.queries("blixard.storage.sqlite")


def _schedule(r: tuple[Any, ...]) -> Schedule:
    return Schedule(
        id=r[0],
        tenant=r[1],
        name=r[2],
        cron=r[3],
        timezone=r[4],
        job=template_from_dict(orjson.loads(r[5])),
        misfire=r[6],
        no_overlap=bool(r[7]),
        paused=bool(r[8]),
        next_fire_at=r[9],
        last_fired_at=r[10],
        last_job_id=r[11],
        created_at=r[12],
        updated_at=r[13],
    )


def _params(s: Schedule) -> tuple[Any, ...]:
    return (
        s.id,
        s.tenant,
        s.name,
        s.cron,
        s.timezone,
        rows.dumps(template_to_dict(s.job)),
        s.misfire,
        int(s.no_overlap),
        int(s.paused),
        s.next_fire_at,
        s.last_fired_at,
        s.last_job_id,
        s.created_at,
        s.updated_at,
    )


class SqliteSchedules:
    _db: SqliteConnection

    async def create_schedule(self, schedule: Schedule) -> Schedule:
        return await self._db.run(self._create_schedule_sync, schedule)

    def _create_schedule_sync(self, schedule: Schedule) -> Schedule:
        with self._db.transaction() as conn:
            if conn.execute(Q["insert_schedule"], _params(schedule)).rowcount == 0:
                raise Conflict(
                    f"tenant {schedule.tenant!r} already has a schedule named {schedule.name!r}",
                    tenant=schedule.tenant,
                    name=schedule.name,
                )
            row = conn.execute(Q["get_schedule"], (schedule.id,)).fetchone()
        return _schedule(row)

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        return await self._db.run(self._get_schedule_sync, schedule_id)

    def _get_schedule_sync(self, schedule_id: str) -> Schedule | None:
        row = self._db.conn.execute(Q["get_schedule"], (schedule_id,)).fetchone()
        return _schedule(row) if row else None

    async def list_schedules(self, tenant: str | None = None) -> list[Schedule]:
        return await self._db.run(self._list_schedules_sync, tenant)

    def _list_schedules_sync(self, tenant: str | None) -> list[Schedule]:
        cursor = self._db.conn.execute(Q["list_schedules"], {"tenant": tenant})
        return [_schedule(r) for r in cursor]

    async def set_schedule_paused(
        self, schedule_id: str, paused: bool, now: float, next_fire_at: float | None = None
    ) -> Schedule:
        return await self._db.run(
            self._set_schedule_paused_sync, schedule_id, paused, now, next_fire_at
        )

    def _set_schedule_paused_sync(
        self, schedule_id: str, paused: bool, now: float, next_fire_at: float | None
    ) -> Schedule:
        with self._db.transaction() as conn:
            row = conn.execute(
                Q["set_schedule_paused"],
                {
                    "id": schedule_id,
                    "paused": int(paused),
                    "next_fire_at": next_fire_at,
                    "now": now,
                },
            ).fetchone()
        if row is None:
            raise ScheduleNotFound(schedule_id)
        return _schedule(row)

    async def delete_schedule(self, schedule_id: str) -> None:
        await self._db.run(self._delete_schedule_sync, schedule_id)

    def _delete_schedule_sync(self, schedule_id: str) -> None:
        with self._db.transaction() as conn:
            if conn.execute(Q["delete_schedule"], (schedule_id,)).rowcount == 0:
                raise ScheduleNotFound(schedule_id)

    async def due_schedules(self, now: float, limit: int) -> list[DueSchedule]:
        return await self._db.run(self._due_schedules_sync, now, limit)

    def _due_schedules_sync(self, now: float, limit: int) -> list[DueSchedule]:
        cursor = self._db.conn.execute(Q["due_schedules"], {"now": now, "limit": limit})
        return [
            DueSchedule(_schedule(r), None if r[14] is None else JobStatus(r[14])) for r in cursor
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
        params = {
            "id": schedule_id,
            "expected": expected_next_fire_at,
            "next_fire_at": next_fire_at,
            "last_fired_at": last_fired_at,
            "last_job_id": last_job_id,
            "now": now,
        }
        return await self._db.run(self._advance_schedule_sync, params)

    def _advance_schedule_sync(self, params: dict[str, Any]) -> bool:
        with self._db.transaction() as conn:
            return conn.execute(Q["advance_schedule"], params).rowcount == 1

    async def schedule_jobs(self, schedule_id: str, limit: int) -> list[Job]:
        return await self._db.run(self._schedule_jobs_sync, schedule_id, limit)

    def _schedule_jobs_sync(self, schedule_id: str, limit: int) -> list[Job]:
        cursor = self._db.conn.execute(Q["schedule_jobs"], (schedule_id, limit))
        return [rows.job_from_row(r) for r in cursor]
