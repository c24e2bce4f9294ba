"""The SQLite store: the embedded default. WAL, one writer thread, SQL in queries/*.sql."""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

import orjson

from blixard.domain.jobs import Attempt, Job, NewJob, pending_job
from blixard.domain.queues import next_token_at
from blixard.domain.reports import JobState, WritePlan, plan_expiry, plan_reports
from blixard.domain.states import CANCEL, RETRY, JobStatus
from blixard.domain.workers import Worker, WorkerSpec, WorkerStatus
from blixard.errors import JobNotFound, SchemaTooNew, StorageError, WorkerNotFound
from blixard.storage import sqlfiles
from blixard.storage.base import (
    ClaimRequest,
    HeartbeatResult,
    Inserted,
    JobPage,
    JobQuery,
    JobsListener,
    Reaped,
    Report,
    ReportResult,
    RunningJob,
    Stats,
    WorkListener,
)
from blixard.storage.sqlite import claims, rows
from blixard.storage.sqlite import dependencies as deps
from blixard.storage.sqlite.connection import SqliteConnection
from blixard.storage.sqlite.queues import SqliteQueues
from blixard.storage.sqlite.schedules import SqliteSchedules

PACKAGE = "blixard.storage.sqlite"
Q = sqlfiles.queries(PACKAGE)
ACTIVE = ("claimed", "in_progress")


def _ids(values: Sequence[str]) -> str:
    return orjson.dumps(list(values)).decode()


class SqliteStore(SqliteQueues, SqliteSchedules):
    def __init__(
        self, path: str, *, rng: random.Random | None = None, synchronous: str = "NORMAL"
    ) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        self._db = SqliteConnection(path, synchronous=synchronous)
        self._rng = rng or random.Random()

    # lifecycle -------------------------------------------------------------------------
    async def open(self, *, migrate: bool = True) -> None:
        await self._db.open()
        if migrate:
            await self.migrate()

    async def close(self) -> None:
        await self._db.close()

    async def migrate(self) -> list[int]:
        return await self._db.run(self._migrate_sync)

    async def schema_version(self) -> int:
        return await self._db.run(self._schema_version_sync)

    def _schema_version_sync(self) -> int:
        conn = self._db.conn
        conn.execute(Q["create_migrations_table"])
        versions = [r[0] for r in conn.execute(Q["applied_versions"])]
        return max(versions, default=0)

    def _migrate_sync(self) -> list[int]:
        # A migration may rebuild a table (SQLite cannot alter a CHECK constraint): foreign
        # keys are off meanwhile (the pragma is a no-op inside a transaction) and checked
        # before the commit.
        self._db.conn.execute("PRAGMA foreign_keys = OFF")
        try:
            return self._apply_migrations()
        finally:
            self._db.conn.execute("PRAGMA foreign_keys = ON")

    def _apply_migrations(self) -> list[int]:
        known = sqlfiles.migrations(PACKAGE)
        applied: list[int] = []
        with self._db.transaction() as conn:
            conn.execute(Q["create_migrations_table"])
            done = {r[0] for r in conn.execute(Q["applied_versions"])}
            newest = known[-1].version if known else 0
            if done and max(done) > newest:
                raise SchemaTooNew(
                    f"the database {self.path!r} has schema version {max(done)}, this Blixard "
                    f"knows up to {newest}: upgrade Blixard",
                    database_version=max(done),
                    code_version=newest,
                )
            for migration in known:
                if migration.version in done:
                    continue
                for statement in _split_statements(migration.sql):
                    conn.execute(statement)
                conn.execute(
                    Q["record_migration"], (migration.version, migration.name, time.time())
                )
                applied.append(migration.version)
            broken = conn.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise StorageError(f"a migration broke foreign keys: {broken[:5]}")
        return applied

    # jobs ------------------------------------------------------------------------------
    async def insert_jobs(self, jobs: Sequence[NewJob]) -> list[Inserted]:
        return await self._db.run(self._insert_jobs_sync, jobs)

    def _insert_jobs_sync(self, jobs: Sequence[NewJob]) -> list[Inserted]:
        with self._db.transaction() as conn:
            deps.ensure_queues_and_tenants(conn, jobs)
            if not any(j.spec.idempotency_key is not None or j.spec.depends_on for j in jobs):
                params = [rows.new_job_params(j, JobStatus.PENDING, 0, None) for j in jobs]
                conn.executemany(Q["insert_job"], params)
                return [Inserted(pending_job(j), True) for j in jobs]
            out: list[Inserted] = []
            seen: dict[tuple[str, str], Job] = {}
            batch: dict[str, tuple[str, JobStatus]] = {}
            for index, job in enumerate(jobs):
                key = job.spec.idempotency_key
                pair = (job.spec.tenant, key or "")
                if key is not None:
                    existing = seen.get(pair)
                    if existing is None:
                        row = conn.execute(Q["find_idempotent"], pair).fetchone()
                        existing = rows.job_from_row(row) if row else None
                    if existing is not None:
                        seen[pair] = existing
                        out.append(Inserted(existing, False))
                        continue
                status, waiting, error = JobStatus.PENDING, 0, None
                if job.spec.depends_on:
                    field = "depends_on" if len(jobs) == 1 else f"jobs[{index}].depends_on"
                    status, waiting, error = deps.link_parents(conn, job, field, batch)
                conn.execute(Q["insert_job"], rows.new_job_params(job, status, waiting, error))
                if job.spec.depends_on:
                    deps.insert_links(conn, job)
                fresh = pending_job(job, status, waiting, error)
                batch[job.id] = (job.spec.tenant, status)
                if key is not None:
                    seen[pair] = fresh
                out.append(Inserted(fresh, True))
            return out

    async def get_job(self, job_id: str) -> Job | None:
        return await self._db.run(self._get_job_sync, job_id)

    def _get_job_sync(self, job_id: str) -> Job | None:
        row = self._db.conn.execute(Q["get_job"], (job_id,)).fetchone()
        return rows.job_from_row(row) if row else None

    async def get_jobs(self, job_ids: Sequence[str]) -> list[Job]:
        return await self._db.run(self._get_jobs_sync, job_ids)

    def _get_jobs_sync(self, job_ids: Sequence[str]) -> list[Job]:
        found = {
            r[0]: rows.job_from_row(r)
            for r in self._db.conn.execute(Q["get_jobs"], (_ids(job_ids),))
        }
        return [found[i] for i in job_ids if i in found]

    async def list_jobs(self, query: JobQuery) -> JobPage:
        return await self._db.run(self._list_jobs_sync, query)

    def _list_jobs_sync(self, query: JobQuery) -> JobPage:
        params: dict[str, Any] = {
            "queue": query.queue,
            "tenant": query.tenant,
            "worker_type": query.worker_type,
            "group_id": query.group_id,
            "before": query.before,
            "limit": query.limit,
        }
        if len(query.status) == 1:
            params["one_status"] = str(query.status[0])
            sql = Q["list_jobs_one_status"]
        else:
            params["status"] = _ids([str(s) for s in query.status]) if query.status else None
            sql = Q["list_jobs"]
        jobs = [rows.job_from_row(r) for r in self._db.conn.execute(sql, params)]
        cursor = jobs[-1].id if len(jobs) == query.limit and jobs else None
        return JobPage(jobs, cursor)

    async def job_attempts(self, job_id: str) -> list[Attempt]:
        return await self._db.run(self._job_attempts_sync, job_id)

    def _job_attempts_sync(self, job_id: str) -> list[Attempt]:
        return [
            rows.attempt_from_row(r) for r in self._db.conn.execute(Q["job_attempts"], (job_id,))
        ]

    async def cancel_job(self, job_id: str, now: float, reason: str) -> Job:
        return await self._db.run(self._cancel_sync, job_id, now, reason)

    def _cancel_sync(self, job_id: str, now: float, reason: str) -> Job:
        with self._db.transaction() as conn:
            before = conn.execute(Q["get_job"], (job_id,)).fetchone()
            if before is None:
                raise JobNotFound(job_id)
            old = rows.job_from_row(before)
            CANCEL.check(old.status, job_id)
            error = {"kind": "cancelled", "message": reason}
            row = conn.execute(Q["cancel"], (rows.dumps(error), now, now, job_id)).fetchone()
            if rows.has_dependants(row):
                deps.settle_dependants(conn, {job_id: JobStatus.CANCELLED}, now)
            if old.status.active:
                conn.execute(
                    Q["insert_attempt"],
                    (
                        job_id,
                        old.attempt,
                        old.claimed_by,
                        old.claimed_at,
                        old.started_at,
                        now,
                        "cancelled",
                        rows.dumps(error),
                    ),
                )
            return rows.job_from_row(row)

    async def retry_job(self, job_id: str, now: float, extra_attempts: int) -> Job:
        return await self._db.run(self._retry_sync, job_id, now, extra_attempts)

    def _retry_sync(self, job_id: str, now: float, extra_attempts: int) -> Job:
        with self._db.transaction() as conn:
            before = conn.execute(Q["get_job"], (job_id,)).fetchone()
            if before is None:
                raise JobNotFound(job_id)
            RETRY.check(JobStatus(before[rows.STATUS]), job_id)
            row = conn.execute(Q["retry"], (now, extra_attempts, now, job_id)).fetchone()
            return rows.job_from_row(row)

    # claims ----------------------------------------------------------------------------
    async def claim_jobs(self, request: ClaimRequest, now: float) -> list[Job]:
        return await self._db.run(self._claim_sync, request, now)

    def _claim_sync(self, request: ClaimRequest, now: float) -> list[Job]:
        with self._db.transaction() as conn:
            return claims.claim(conn, request, now)

    async def next_token_at(self, now: float) -> float | None:
        return await self._db.run(self._next_token_sync, now)

    def _next_token_sync(self, now: float) -> float | None:
        found = self._db.conn.execute(Q["rate_limited_waiting"], (now,)).fetchall()
        return next_token_at(found, now)

    async def next_due_at(self) -> float | None:
        return await self._db.run(self._next_due_sync)

    def _next_due_sync(self) -> float | None:
        row = self._db.conn.execute(Q["next_due"]).fetchone()
        return None if row is None else row[0]

    # reports and leases ---------------------------------------------------------------
    async def apply_reports(
        self, worker_id: str, reports: Sequence[Report], now: float
    ) -> list[ReportResult]:
        return await self._db.run(self._reports_sync, worker_id, reports, now)

    def _reports_sync(
        self, worker_id: str, reports: Sequence[Report], now: float
    ) -> list[ReportResult]:
        with self._db.transaction() as conn:
            ids = list({r.job_id for r in reports})
            states = {
                r[0]: JobState(
                    r[0],
                    JobStatus(r[1]),
                    r[2],
                    r[3],
                    r[4],
                    rows.backoff(r[5]),
                    r[6],
                    r[7],
                    has_dependants=bool(r[8]),
                )
                for r in conn.execute(Q["report_state"], (_ids(ids),))
            }
            results, plan = plan_reports(worker_id, reports, states, now, self._rng)
            self._execute_plan(conn, plan, now)
            return results

    def _execute_plan(self, conn: sqlite3.Connection, plan: WritePlan, now: float) -> None:
        self._write_plan(conn, plan, now)
        if plan.ended_parents:
            deps.settle_dependants(conn, plan.ended_parents, now)

    def _write_plan(self, conn: sqlite3.Connection, plan: WritePlan, now: float) -> None:
        g = plan.guard
        if plan.starts:
            conn.executemany(Q["start"], [(at, now, j, *g[j]) for j, at in plan.starts])
        if plan.completes:
            conn.executemany(
                Q["complete"],
                [
                    (rows.dumps(res), now, started, now, j, *g[j])
                    for j, res, started in plan.completes
                ],
            )
        if plan.requeues:
            conn.executemany(
                Q["requeue"],
                [
                    (run_at, rows.dumps_or_none(err), now, j, *g[j])
                    for j, run_at, err in plan.requeues
                ],
            )
        if plan.fails:
            conn.executemany(
                Q["fail"], [(rows.dumps_or_none(err), now, now, j, *g[j]) for j, err in plan.fails]
            )
        if plan.attempts:
            conn.executemany(
                Q["insert_attempt"],
                [
                    (
                        a.job_id,
                        a.attempt,
                        a.worker_id,
                        a.claimed_at,
                        a.started_at,
                        a.finished_at,
                        a.outcome,
                        rows.dumps_or_none(a.error),
                    )
                    for a in plan.attempts
                ],
            )

    async def reap_expired(self, now: float, limit: int) -> list[Reaped]:
        return await self._db.run(self._reap_sync, now, limit)

    def _reap_sync(self, now: float, limit: int) -> list[Reaped]:
        with self._db.transaction() as conn:
            raw = conn.execute(Q["expired_leases"], (now, limit)).fetchall()
            if not raw:
                return []
            states = [rows.job_state(r) for r in raw]
            reasons, plan = plan_expiry(states, now, self._rng)
            self._execute_plan(conn, plan, now)
            after = {
                r[0]: rows.job_from_row(r)
                for r in conn.execute(Q["get_jobs"], (_ids([s.id for s in states]),))
            }
            return [Reaped(after[job_id], reason) for job_id, reason in reasons]

    # workers ---------------------------------------------------------------------------
    async def register_worker(self, spec: WorkerSpec, now: float) -> Worker:
        return await self._db.run(self._register_sync, spec, now)

    def _register_sync(self, spec: WorkerSpec, now: float) -> Worker:
        with self._db.transaction() as conn:
            conn.execute(Q["upsert_worker"], rows.worker_params(spec, now))
            return self._worker_sync(conn, spec.id)

    @staticmethod
    def _worker_sync(conn: sqlite3.Connection, worker_id: str) -> Worker:
        row = conn.execute(Q["get_worker"], (worker_id,)).fetchone()
        if row is None:
            raise WorkerNotFound(worker_id)
        usage = conn.execute(Q["worker_usage"], (worker_id,)).fetchone()
        return rows.worker_from_row(row, usage)

    async def heartbeat(
        self, worker_id: str, running: Sequence[RunningJob], now: float, lease_ttl_s: float
    ) -> HeartbeatResult:
        return await self._db.run(self._heartbeat_sync, worker_id, running, now, lease_ttl_s)

    def _heartbeat_sync(
        self, worker_id: str, running: Sequence[RunningJob], now: float, lease_ttl_s: float
    ) -> HeartbeatResult:
        with self._db.transaction() as conn:
            if conn.execute(Q["touch_worker"], (now, worker_id)).rowcount == 0:
                raise WorkerNotFound(worker_id)
            held = {
                r[0]: r
                for r in conn.execute(Q["heartbeat_state"], (_ids([j.job_id for j in running]),))
            }
            renew: list[str] = []
            cancel: list[str] = []
            for item in running:
                row = held.get(item.job_id)
                if row and row[1] in ACTIVE and row[2] == worker_id and row[3] == item.attempt:
                    renew.append(item.job_id)
                else:
                    cancel.append(item.job_id)
            if renew:
                conn.execute(
                    Q["renew_leases"],
                    {"lease": now + lease_ttl_s, "ids": _ids(renew), "worker_id": worker_id},
                )
            worker = self._worker_sync(conn, worker_id)
        return HeartbeatResult(worker, cancel, len(renew))

    async def get_worker(self, worker_id: str) -> Worker | None:
        return await self._db.run(self._get_worker_sync, worker_id)

    def _get_worker_sync(self, worker_id: str) -> Worker | None:
        try:
            return self._worker_sync(self._db.conn, worker_id)
        except WorkerNotFound:
            return None

    async def list_workers(self, status: WorkerStatus | None = None) -> list[Worker]:
        return await self._db.run(self._list_workers_sync, status)

    def _list_workers_sync(self, status: WorkerStatus | None) -> list[Worker]:
        conn = self._db.conn
        usage = {r[0]: r[1:] for r in conn.execute(Q["all_worker_usage"])}
        return [
            rows.worker_from_row(r, usage.get(r[0]))
            for r in conn.execute(Q["list_workers"], {"status": status and str(status)})
        ]

    async def set_worker_status(self, worker_id: str, status: WorkerStatus, now: float) -> Worker:
        return await self._db.run(self._set_worker_status_sync, worker_id, status)

    def _set_worker_status_sync(self, worker_id: str, status: WorkerStatus) -> Worker:
        with self._db.transaction() as conn:
            if conn.execute(Q["set_worker_status"], (str(status), worker_id)).rowcount == 0:
                raise WorkerNotFound(worker_id)
            return self._worker_sync(conn, worker_id)

    async def mark_lost_workers(self, now: float, older_than: float) -> list[Worker]:
        return await self._db.run(self._mark_lost_sync, older_than)

    def _mark_lost_sync(self, older_than: float) -> list[Worker]:
        with self._db.transaction() as conn:
            return [
                rows.worker_from_row(r)
                for r in conn.execute(Q["mark_lost_workers"], (older_than,)).fetchall()
            ]

    async def stats(self, tenant: str | None = None) -> Stats:
        return await self._db.run(self._stats_sync, tenant)

    def _stats_sync(self, tenant: str | None) -> Stats:
        conn = self._db.conn
        by_status = {str(s): 0 for s in JobStatus}
        by_queue: dict[str, dict[str, int]] = {}
        by_tenant: dict[str, dict[str, int]] = {}
        # Every job has a tenant row: with a single tenant, its counts are the totals, which
        # covering indexes give cheaply (nothing indexes jobs by tenant and status).
        names = [r[0] for r in conn.execute(Q["stats_two_tenants"])]
        alone = names[0] if len(names) == 1 else None
        if tenant is None or tenant == alone:
            for queue, status, count in conn.execute(Q["stats_by_queue"]):
                by_status[status] += count
                by_queue.setdefault(queue, {})[status] = count
            if alone is not None and any(by_status.values()):
                by_tenant[alone] = {s: n for s, n in by_status.items() if n}
            elif alone is None:
                for name, status, count in conn.execute(Q["stats_by_tenant"]):
                    by_tenant.setdefault(name, {})[status] = count
            oldest = conn.execute(Q["stats_oldest_pending"]).fetchone()
        else:
            for queue, status, count in conn.execute(Q["stats_of_tenant_by_queue"], (tenant,)):
                by_status[status] += count
                by_queue.setdefault(queue, {})[status] = count
            if by_queue:
                by_tenant[tenant] = {s: n for s, n in by_status.items() if n}
            oldest = conn.execute(Q["stats_oldest_pending_of_tenant"], (tenant,)).fetchone()
        workers = {str(s): 0 for s in WorkerStatus}
        for status, count in conn.execute(Q["stats_workers_by_status"]):
            workers[status] = count
        return Stats(
            by_status,
            by_queue,
            workers,
            oldest[0] if oldest else None,
            jobs_by_tenant=by_tenant,
            tenant=tenant,
        )

    # copying -----------------------------------------------------------------------------
    async def export_jobs(self, after: str | None, limit: int) -> list[Job]:
        return await self._db.run(self._export_jobs_sync, after, limit)

    def _export_jobs_sync(self, after: str | None, limit: int) -> list[Job]:
        cursor = self._db.conn.execute(Q["export_jobs"], {"after": after, "limit": limit})
        return [rows.job_from_row(r) for r in cursor]

    async def export_attempts(self, job_ids: Sequence[str]) -> list[Attempt]:
        return await self._db.run(self._export_attempts_sync, job_ids)

    def _export_attempts_sync(self, job_ids: Sequence[str]) -> list[Attempt]:
        cursor = self._db.conn.execute(Q["export_attempts"], (_ids(job_ids),))
        return [rows.attempt_from_row(r) for r in cursor]

    async def import_records(
        self, jobs: Sequence[Job], attempts: Sequence[Attempt], workers: Sequence[Worker]
    ) -> int:
        return await self._db.run(self._import_sync, jobs, attempts, workers)

    def _import_sync(
        self, jobs: Sequence[Job], attempts: Sequence[Attempt], workers: Sequence[Worker]
    ) -> int:
        with self._db.transaction() as conn:
            conn.executemany(Q["import_worker"], [rows.full_worker_params(w) for w in workers])
            before = conn.total_changes
            conn.executemany(Q["import_job"], [rows.job_params(j) for j in jobs])
            created = conn.total_changes - before
            conn.executemany(Q["import_attempt"], [rows.attempt_params(a) for a in attempts])
            links = [(j.id, p) for j in jobs for p in j.depends_on]
            conn.executemany(Q["import_dependency"], [(c, p, p) for c, p in links])
            conn.executemany(Q["mark_has_dependants"], [(p,) for _, p in links])
            deps.ensure_names(conn, {j.queue for j in jobs}, {j.tenant for j in jobs})
            return created

    # One server per SQLite file: it sees all its own changes and leads every role.
    async def listen(self, on_work: WorkListener, on_jobs: JobsListener) -> None:
        return None

    async def try_lead(self, role: str) -> bool:
        return True


def _split_statements(script: str) -> list[str]:
    """Split a migration into statements (no semicolons inside literals in our SQL)."""
    lines = [ln for ln in script.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
