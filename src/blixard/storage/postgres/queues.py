"""PostgreSQL: the queues, tenants and groups part of the Store (a mixin of PostgresStore).

A configuration change creates the row if it is missing and locks it, so concurrent
changes to one queue or tenant apply one after the other. A change that may let waiting
jobs run (a queue resumed, a limit raised or removed, a fresh rate bucket) sends NOTIFY on
the work channel in the same transaction, so the long-polling claims of every server wake.
Cancelling a group locks its unfinished jobs in id order, cancels them, settles the
dependants they leave behind, and announces the changed jobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

from asyncpg import Record

from blixard.domain.constraints import parse_constraints
from blixard.domain.jobs import NO_REQUIREMENTS, Job, Requirements
from blixard.domain.queues import Queue, RateLimit, Tenant
from blixard.domain.states import JobStatus
from blixard.errors import GroupNotFound
from blixard.storage import admin, sqlfiles
from blixard.storage.base import (
    UNSET,
    GroupSummary,
    PendingShape,
    QueueInfo,
    TenantInfo,
    Unset,
)
from blixard.storage.postgres import dependencies, rows

if TYPE_CHECKING:
    from blixard.storage.postgres.driver import Conn

Q = sqlfiles.queries("blixard.storage.postgres")


def _queue(r: Record) -> Queue:
    limit = r["rate_limit"]
    return Queue(
        name=r["name"],
        paused=r["paused"],
        max_running=r["max_running"],
        rate=RateLimit(limit, r["rate_period_s"]) if limit is not None else None,
        rate_tokens=r["rate_tokens"],
        rate_updated_at=r["rate_updated_at"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
    )


def _tenant(r: Record) -> Tenant:
    return Tenant(
        name=r["name"],
        weight=r["weight"],
        max_running=r["max_running"],
        served_at=r["served_at"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
    )


def _requirements(r: Record) -> Requirements:
    cpu, memory_mb, gpu = r["req_cpu"], r["req_memory_mb"], r["req_gpu"]
    labels, constraints = r["req_labels"], r["req_constraints"]
    if not (cpu or memory_mb or gpu or labels or constraints):
        return NO_REQUIREMENTS
    return Requirements(
        cpu=cpu,
        memory_mb=memory_mb,
        gpu=gpu,
        labels=dict(labels),
        constraints=parse_constraints("constraints", constraints) if constraints else (),
    )


def _counted(found: Sequence[Record]) -> list[tuple[str, str, int]]:
    return [(r[0], r[1], r[2]) for r in found]


def _oldest(found: Sequence[Record]) -> list[tuple[str, float]]:
    return [(r[0], r[1]) for r in found]


async def _announce(conn: Conn, job_ids: Sequence[str], work: bool) -> None:
    from blixard.storage.postgres.driver import _Notices  # the driver imports this module

    notices = _Notices()
    notices.work = work
    notices.job_ids = list(job_ids)
    await notices.send(conn)


class PostgresQueues:
    if TYPE_CHECKING:  # provided by PostgresStore

        def _transaction(self) -> AbstractAsyncContextManager[Conn]: ...

        def _acquire(self) -> AbstractAsyncContextManager[Conn]: ...

    # queues ----------------------------------------------------------------------------
    async def list_queues(self) -> list[QueueInfo]:
        async with self._acquire() as conn, conn.transaction(isolation="repeatable_read"):
            queues = {r["name"]: _queue(r) for r in await conn.fetch(Q["queue_rows"])}
            counted = await conn.fetch(Q["queue_job_counts"])
            oldest = await conn.fetch(Q["queue_oldest_pending"])
        return admin.queue_infos(queues, _counted(counted), _oldest(oldest))

    async def get_queue(self, name: str) -> QueueInfo | None:
        async with self._acquire() as conn, conn.transaction(isolation="repeatable_read"):
            return await self._queue_info(conn, name)

    @staticmethod
    async def _queue_info(conn: Conn, name: str) -> QueueInfo | None:
        row = await conn.fetchrow(Q["queue_row"], name)
        counted = await conn.fetch(Q["one_queue_job_counts"], name)
        oldest = await conn.fetch(Q["one_queue_oldest_pending"], name)
        found = admin.queue_infos(
            {name: _queue(row)} if row else {}, _counted(counted), _oldest(oldest)
        )
        return found[0] if found else None

    async def configure_queue(
        self,
        name: str,
        *,
        paused: bool | None = None,
        max_running: int | Unset | None = UNSET,
        rate: RateLimit | Unset | None = UNSET,
        now: float,
    ) -> QueueInfo:
        async with self._transaction() as conn:
            await conn.execute(Q["create_queue_if_missing"], name, now)
            row = await conn.fetchrow(Q["queue_row_for_update"], name)
            assert row is not None  # created above if it was missing
            old = _queue(row)
            new = admin.updated_queue(
                old, paused=paused, max_running=max_running, rate=rate, now=now
            )
            await conn.execute(
                Q["update_queue"],
                name,
                new.paused,
                new.max_running,
                new.rate.limit if new.rate else None,
                new.rate.period_s if new.rate else None,
                new.rate_tokens,
                new.rate_updated_at,
                now,
            )
            if admin.queue_loosened(old, new):
                await _announce(conn, (), work=True)
            info = await self._queue_info(conn, name)
        assert info is not None  # the row exists now
        return info

    # tenants ---------------------------------------------------------------------------
    async def list_tenants(self) -> list[TenantInfo]:
        async with self._acquire() as conn, conn.transaction(isolation="repeatable_read"):
            tenants = {r["name"]: _tenant(r) for r in await conn.fetch(Q["tenant_rows"])}
            counted = await conn.fetch(Q["tenant_job_counts"])
            oldest = await conn.fetch(Q["tenant_oldest_pending"])
        return admin.tenant_infos(tenants, _counted(counted), _oldest(oldest))

    async def get_tenant(self, name: str) -> TenantInfo | None:
        async with self._acquire() as conn, conn.transaction(isolation="repeatable_read"):
            return await self._tenant_info(conn, name)

    @staticmethod
    async def _tenant_info(conn: Conn, name: str) -> TenantInfo | None:
        row = await conn.fetchrow(Q["tenant_row"], name)
        counted = await conn.fetch(Q["one_tenant_job_counts"], name)
        oldest = await conn.fetch(Q["one_tenant_oldest_pending"], name)
        found = admin.tenant_infos(
            {name: _tenant(row)} if row else {}, _counted(counted), _oldest(oldest)
        )
        return found[0] if found else None

    async def configure_tenant(
        self,
        name: str,
        *,
        weight: float | None = None,
        max_running: int | Unset | None = UNSET,
        now: float,
    ) -> TenantInfo:
        async with self._transaction() as conn:
            await conn.execute(Q["create_tenant_if_missing"], name, now)
            row = await conn.fetchrow(Q["tenant_row_for_update"], name)
            assert row is not None
            old = _tenant(row)
            new = admin.updated_tenant(old, weight=weight, max_running=max_running, now=now)
            await conn.execute(Q["update_tenant"], name, new.weight, new.max_running, now)
            if admin.tenant_loosened(old, new):
                await _announce(conn, (), work=True)
            info = await self._tenant_info(conn, name)
        assert info is not None
        return info

    # groups ----------------------------------------------------------------------------
    async def group_summary(self, group_id: str) -> GroupSummary | None:
        async with self._acquire() as conn:
            found = await conn.fetch(Q["group_counts"], group_id)
        return admin.group_summary(group_id, [(r[0], r[1], r[2], r[3], r[4]) for r in found])

    async def cancel_group(self, group_id: str, now: float, reason: str) -> list[Job]:
        error = rows.dumps({"kind": "cancelled", "message": reason})
        async with self._transaction() as conn:
            if not await conn.fetchval(Q["group_exists"], group_id):
                raise GroupNotFound(group_id)
            locked = await conn.fetch(Q["lock_group"], group_id)
            freed = any(JobStatus(r["status"]).active for r in locked)  # capacity is free
            await conn.execute(Q["group_cancel_attempts"], group_id, now, error)
            cancelled = await conn.fetch(Q["group_cancel"], group_id, now, error)
            # Every job of the group is cancelled by now, so the dependants left to settle
            # are those outside the group.
            ended = {r["id"]: JobStatus.CANCELLED for r in cancelled if r["has_dependants"]}
            settled = await dependencies.settle_dependants(conn, ended, now) if ended else []
            changed = [r["id"] for r in cancelled] + settled
            if changed:
                await _announce(conn, changed, work=freed or bool(settled))
        return sorted((rows.job_from_row(r) for r in cancelled), key=lambda j: j.id)

    # the unschedulable diagnosis -------------------------------------------------------
    async def pending_shapes(self, tenant: str | None = None) -> list[PendingShape]:
        async with self._acquire() as conn:
            found = await conn.fetch(Q["pending_shapes"], tenant, admin.MAX_SHAPES)
        items: list[tuple[Sequence[str], Requirements, int]] = [
            (tuple(r["worker_types"] or ()), _requirements(r), r["jobs"]) for r in found
        ]
        return admin.merge_shapes(items)
