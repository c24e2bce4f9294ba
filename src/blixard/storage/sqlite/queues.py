"""SQLite: the queues, tenants and groups part of the Store (a mixin of SqliteStore).

Reads run on the single connection's thread like every other call; each configuration
change is one write transaction (create the row if missing, read it, write it back).
Cancelling a group cancels its unfinished jobs in two statements and settles the
dependants they leave behind, in the same transaction.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from blixard.domain.jobs import Job
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
from blixard.storage.sqlite import dependencies, rows
from blixard.storage.sqlite.connection import SqliteConnection

Q = sqlfiles.queries("blixard.storage.sqlite")


def _queue(r: tuple[Any, ...]) -> Queue:
    name, paused, max_running, limit, period, tokens, tokens_at, created, updated = r
    return Queue(
        name=name,
        paused=bool(paused),
        max_running=max_running,
        rate=RateLimit(limit, period) if limit is not None else None,
        rate_tokens=tokens,
        rate_updated_at=tokens_at,
        created_at=created,
        updated_at=updated,
    )


def _tenant(r: tuple[Any, ...]) -> Tenant:
    name, weight, max_running, served_at, created, updated = r
    return Tenant(name, weight, max_running, served_at, created, updated)


class SqliteQueues:
    _db: SqliteConnection

    # queues ----------------------------------------------------------------------------
    async def list_queues(self) -> list[QueueInfo]:
        return await self._db.run(self._list_queues_sync)

    def _list_queues_sync(self) -> list[QueueInfo]:
        conn = self._db.conn
        queues = {r[0]: _queue(r) for r in conn.execute(Q["queue_rows"])}
        return admin.queue_infos(
            queues, conn.execute(Q["queue_job_counts"]), conn.execute(Q["queue_oldest_pending"])
        )

    async def get_queue(self, name: str) -> QueueInfo | None:
        return await self._db.run(self._get_queue_sync, self._db.conn, name)

    @staticmethod
    def _get_queue_sync(conn: sqlite3.Connection, name: str) -> QueueInfo | None:
        row = conn.execute(Q["queue_row"], (name,)).fetchone()
        found = admin.queue_infos(
            {name: _queue(row)} if row else {},
            conn.execute(Q["one_queue_job_counts"], (name,)),
            conn.execute(Q["one_queue_oldest_pending"], (name,)),
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
        return await self._db.run(self._configure_queue_sync, name, paused, max_running, rate, now)

    def _configure_queue_sync(
        self,
        name: str,
        paused: bool | None,
        max_running: int | Unset | None,
        rate: RateLimit | Unset | None,
        now: float,
    ) -> QueueInfo:
        with self._db.transaction() as conn:
            conn.execute(Q["create_queue_if_missing"], (name, now, now))
            old = _queue(conn.execute(Q["queue_row"], (name,)).fetchone())
            new = admin.updated_queue(
                old, paused=paused, max_running=max_running, rate=rate, now=now
            )
            conn.execute(
                Q["update_queue"],
                {
                    "name": name,
                    "paused": int(new.paused),
                    "max_running": new.max_running,
                    "rate_limit": new.rate.limit if new.rate else None,
                    "rate_period_s": new.rate.period_s if new.rate else None,
                    "rate_tokens": new.rate_tokens,
                    "rate_updated_at": new.rate_updated_at,
                    "now": now,
                },
            )
            info = self._get_queue_sync(conn, name)
        assert info is not None  # the row exists now
        return info

    # tenants ---------------------------------------------------------------------------
    async def list_tenants(self) -> list[TenantInfo]:
        return await self._db.run(self._list_tenants_sync)

    def _list_tenants_sync(self) -> list[TenantInfo]:
        conn = self._db.conn
        tenants = {r[0]: _tenant(r) for r in conn.execute(Q["tenant_rows"])}
        return admin.tenant_infos(
            tenants,
            conn.execute(Q["tenant_job_counts"]),
            conn.execute(Q["tenant_oldest_pending"]),
        )

    async def get_tenant(self, name: str) -> TenantInfo | None:
        return await self._db.run(self._get_tenant_sync, self._db.conn, name)

    @staticmethod
    def _get_tenant_sync(conn: sqlite3.Connection, name: str) -> TenantInfo | None:
        row = conn.execute(Q["tenant_row"], (name,)).fetchone()
        found = admin.tenant_infos(
            {name: _tenant(row)} if row else {},
            conn.execute(Q["one_tenant_job_counts"], (name,)),
            conn.execute(Q["one_tenant_oldest_pending"], (name,)),
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
        return await self._db.run(self._configure_tenant_sync, name, weight, max_running, now)

    def _configure_tenant_sync(
        self, name: str, weight: float | None, max_running: int | Unset | None, now: float
    ) -> TenantInfo:
        with self._db.transaction() as conn:
            conn.execute(Q["create_tenant_if_missing"], (name, now, now))
            old = _tenant(conn.execute(Q["tenant_row"], (name,)).fetchone())
            new = admin.updated_tenant(old, weight=weight, max_running=max_running, now=now)
            conn.execute(
                Q["update_tenant"],
                {"name": name, "weight": new.weight, "max_running": new.max_running, "now": now},
            )
            info = self._get_tenant_sync(conn, name)
        assert info is not None
        return info

    # groups ----------------------------------------------------------------------------
    async def group_summary(self, group_id: str) -> GroupSummary | None:
        return await self._db.run(self._group_summary_sync, group_id)

    def _group_summary_sync(self, group_id: str) -> GroupSummary | None:
        return admin.group_summary(group_id, self._db.conn.execute(Q["group_counts"], (group_id,)))

    async def cancel_group(self, group_id: str, now: float, reason: str) -> list[Job]:
        return await self._db.run(self._cancel_group_sync, group_id, now, reason)

    def _cancel_group_sync(self, group_id: str, now: float, reason: str) -> list[Job]:
        params = {
            "group_id": group_id,
            "now": now,
            "error": orjson.dumps({"kind": "cancelled", "message": reason}).decode(),
        }
        with self._db.transaction() as conn:
            if conn.execute(Q["group_exists"], (group_id,)).fetchone() is None:
                raise GroupNotFound(group_id)
            conn.execute(Q["group_cancel_attempts"], params)
            cancelled = conn.execute(Q["group_cancel"], params).fetchall()
            # Every job of the group is cancelled by now, so the dependants left to settle
            # are those outside the group.
            ended = {r[0]: JobStatus.CANCELLED for r in cancelled if rows.has_dependants(r)}
            if ended:
                dependencies.settle_dependants(conn, ended, now)
        return sorted((rows.job_from_row(r) for r in cancelled), key=lambda j: j.id)

    # the unschedulable diagnosis -------------------------------------------------------
    async def pending_shapes(self, tenant: str | None = None) -> list[PendingShape]:
        return await self._db.run(self._pending_shapes_sync, tenant)

    def _pending_shapes_sync(self, tenant: str | None) -> list[PendingShape]:
        found = self._db.conn.execute(
            Q["pending_shapes"], {"tenant": tenant, "limit": admin.MAX_SHAPES}
        )
        return admin.merge_shapes(
            (
                tuple(orjson.loads(types)) if types != "[]" else (),
                rows.requirements(cpu, memory_mb, gpu, labels, constraints),
                count,
            )
            for types, cpu, memory_mb, gpu, labels, constraints, count in found
        )
