"""The PostgreSQL store: several servers on one database. asyncpg pool, SQL in queries/*.sql.

Every Store method is one transaction (or one statement). The claim is one call of the
``blixard_claim`` function (migration 0001); batches are single statements over unnest()ed
arrays; reports and reaping read the rows FOR UPDATE, plan with ``domain.reports`` and apply
each kind of write as one guarded bulk statement. Changes other servers must hear about are
announced with NOTIFY inside the same transaction, so listeners never hear of a change that
did not commit.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeAlias
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from blixard.domain.jobs import Attempt, Job, NewJob, pending_job
from blixard.domain.queues import next_token_at
from blixard.domain.reports import WritePlan, plan_expiry, plan_reports
from blixard.domain.states import CANCEL, RETRY, JobStatus
from blixard.domain.workers import Worker, WorkerSpec, WorkerStatus
from blixard.errors import (
    BlixardError,
    ConfigurationError,
    JobNotFound,
    SchemaTooNew,
    StorageError,
    ValidationError,
    WorkerNotFound,
)
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
from blixard.storage.postgres import claims, rows
from blixard.storage.postgres import dependencies as deps
from blixard.storage.postgres.listener import (
    JOBS_CHANNEL,
    WORK_CHANNEL,
    Leadership,
    Listener,
)
from blixard.storage.postgres.locks import stable_key
from blixard.storage.postgres.queues import PostgresQueues
from blixard.storage.postgres.schedules import PostgresSchedules
from blixard.storage.urls import redact

PACKAGE = "blixard.storage.postgres"
Q = sqlfiles.queries(PACKAGE)

Conn: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"

# SQLSTATE raised by blixard_claim for an unknown worker.
WORKER_NOT_FOUND = "BX404"
ANALYZE_AFTER_BULK = 1000  # a submit of this many jobs refreshes the planner's statistics
ANALYZE_INTERVAL_S = 60.0
log = logging.getLogger("blixard.storage.postgres")
# NOTIFY payloads must stay under 8000 bytes.
NOTIFY_PAYLOAD_MAX = 7900
# Client-side data jsonb/text cannot hold (U+0000): the caller's input, not the database.
_BAD_CHARACTERS = (
    asyncpg.exceptions.UntranslatableCharacterError,
    asyncpg.exceptions.CharacterNotInRepertoireError,
)
# Failures to reach the server (or of the session itself), as opposed to a failed statement.
_CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.InvalidCatalogNameError,
)
_DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def describe_url(url: str) -> tuple[str, str, str]:
    """(host:port, database, user) of a URL, for messages; never the password."""
    try:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        host = parts.hostname or query.get("host") or "localhost"
        port = parts.port or int(query.get("port") or 5432)
        user = unquote(parts.username or "") or query.get("user") or ""
        database = unquote(parts.path.lstrip("/")) or query.get("dbname") or user or "?"
    except ValueError:
        return ("(unparsable URL)", "?", "?")
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return (address, database, user or "(default user)")


def split_schema(url: str) -> tuple[str, str | None]:
    """A ``postgresql://`` URL without its ``schema`` query parameter, and that schema."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in query if key == "schema"]
    if not schemas:
        return url, None
    if len(schemas) > 1 or not schemas[0]:
        raise ConfigurationError(
            f"bad PostgreSQL URL {redact(url)!r}: give at most one non-empty ?schema=name"
        )
    rest = urlencode([(key, value) for key, value in query if key != "schema"])
    return urlunsplit(parts._replace(query=rest)), schemas[0]


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, TimeoutError) and not text:
        return "timed out"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _chunks(ids: Sequence[str], limit: int = NOTIFY_PAYLOAD_MAX) -> list[str]:
    """Comma-separated ids, split so that no payload exceeds ``limit`` bytes."""
    out: list[str] = []
    current: list[str] = []
    size = 0
    for job_id in dict.fromkeys(ids):
        n = len(job_id.encode()) + (1 if current else 0)
        if current and size + n > limit:
            out.append(",".join(current))
            current, size = [], 0
            n = len(job_id.encode())
        current.append(job_id)
        size += n
    if current:
        out.append(",".join(current))
    return out


def _key_of(job: NewJob) -> tuple[str, str]:
    return (job.spec.tenant, job.spec.idempotency_key or "")


def _check_parents_created(jobs: Sequence[NewJob], created: set[str]) -> None:
    """A job of the batch that names, as parent, a batch job that was not inserted (its
    idempotency key already existed) would wait forever: refuse the whole batch."""
    batch = {j.id for j in jobs}
    for index, job in enumerate(jobs):
        if job.id not in created:
            continue
        for i, parent in enumerate(job.spec.depends_on):
            if parent in batch and parent not in created:
                raise ValidationError(
                    f"jobs[{index}].depends_on[{i}]",
                    f"names job {parent!r} of this batch, whose idempotency key already "
                    "exists: depend on the existing job instead",
                )


class _Notices:
    """What one transaction announces: work may be claimable, these jobs changed."""

    __slots__ = ("job_ids", "work")

    def __init__(self) -> None:
        self.work = False
        self.job_ids: list[str] = []

    async def send(self, conn: Conn) -> None:
        channels: list[str] = []
        payloads: list[str] = []
        if self.work:
            channels.append(WORK_CHANNEL)
            payloads.append("")
        for chunk in _chunks(self.job_ids):
            channels.append(JOBS_CHANNEL)
            payloads.append(chunk)
        if channels:
            await conn.execute(Q["notify"], channels, payloads)


async def _init_connection(conn: asyncpg.Connection[Any]) -> None:
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=rows.encode_jsonb,
        decoder=rows.decode_jsonb,
        format="binary",
    )


class PostgresStore(PostgresQueues, PostgresSchedules):
    def __init__(
        self,
        url: str,
        *,
        rng: random.Random | None = None,
        schema: str | None = None,
        min_size: int = 2,
        max_size: int = 10,
        connect_timeout_s: float = 10.0,
    ) -> None:
        if schema is not None and not schema:
            raise ValueError("schema must be a non-empty name or None")
        self._dsn = url
        self.url = redact(url)
        self.schema = schema
        self._rng = rng or random.Random()
        self._min_size = min_size
        self._max_size = max(max_size, min_size, 1)
        self._connect_timeout_s = connect_timeout_s
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._analyze_task: asyncio.Task[None] | None = None
        self._analyzed_at = 0.0
        self._listener = Listener(self._connect_dedicated)
        self._leadership = Leadership(
            self._connect_dedicated, lambda role: stable_key("lead", schema or "", role)
        )
        self._settings: dict[str, str] = {}
        if "application_name" not in dict(parse_qsl(urlsplit(url).query)):
            self._settings["application_name"] = "blixard"
        if schema is not None:
            self._settings["search_path"] = quote_ident(schema)

    # errors ----------------------------------------------------------------------------
    def _where(self) -> str:
        address, database, user = describe_url(self._dsn)
        schema = f", schema {self.schema!r}" if self.schema else ""
        return f"PostgreSQL at {address} (database {database!r}, user {user!r}{schema})"

    def _connect_error(self, exc: BaseException, verb: str = "cannot connect to") -> StorageError:
        address, database, _ = describe_url(self._dsn)
        if isinstance(exc, asyncpg.exceptions.InvalidCatalogNameError):
            return StorageError(
                f"the database {database!r} does not exist on the PostgreSQL server at "
                f"{address}: create it (createdb {database}) or fix the URL",
                host=address,
                database=database,
            )
        return StorageError(
            f"{verb} {self._where()}: {_reason(exc)}", host=address, database=database
        )

    def _error(self, exc: BaseException) -> BlixardError:
        if isinstance(exc, _BAD_CHARACTERS):
            return ValidationError("input", f"cannot be stored in PostgreSQL: {exc}")
        if isinstance(exc, asyncpg.exceptions.UndefinedTableError | asyncpg.UndefinedFunctionError):
            return StorageError(
                f"{self._where()} has no Blixard schema (run the migrations: open the store "
                f"with migrate=True): {exc}"
            )
        if isinstance(exc, _CONNECTION_ERRORS):
            return self._connect_error(exc, "cannot reach")
        return StorageError(f"{self._where()}: {_reason(exc)}")

    # connections -----------------------------------------------------------------------
    async def _connect_dedicated(self) -> asyncpg.Connection[Any]:
        """A connection outside the pool (LISTEN, advisory locks)."""
        return await asyncpg.connect(
            self._dsn,
            timeout=self._connect_timeout_s,
            server_settings=dict(self._settings),
        )

    def _require_pool(self) -> asyncpg.Pool[asyncpg.Record]:
        if self._pool is None:
            raise StorageError(f"the PostgreSQL store {self.url} is not open")
        return self._pool

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[Conn]:
        pool = self._require_pool()
        try:
            async with pool.acquire() as conn:
                yield conn
        except BlixardError:
            raise
        except _DRIVER_ERRORS as exc:
            raise self._error(exc) from exc

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Conn]:
        async with self._acquire() as conn, conn.transaction():
            yield conn

    # lifecycle -------------------------------------------------------------------------
    async def open(self, *, migrate: bool = True) -> None:
        if self._pool is None:
            try:
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=self._min_size,
                    max_size=self._max_size,
                    init=_init_connection,
                    timeout=self._connect_timeout_s,
                    server_settings=dict(self._settings),
                )
            except _DRIVER_ERRORS as exc:
                raise self._connect_error(exc) from exc
            except ValueError as exc:  # asyncpg rejects the DSN itself
                raise StorageError(f"bad PostgreSQL URL {self.url}: {exc}") from exc
        if migrate:
            try:
                await self.migrate()
            except BaseException:
                await self.close()
                raise

    async def close(self) -> None:
        if self._analyze_task is not None:
            self._analyze_task.cancel()
            await asyncio.gather(self._analyze_task, return_exceptions=True)
        await self._listener.close()
        await self._leadership.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), 10.0)
            except _DRIVER_ERRORS:
                pool.terminate()

    def _analyze_soon(self) -> None:
        """Refresh the jobs table's statistics in the background after a big submit, at most
        once a minute: until autovacuum gets to it, the planner would think the burst of
        pending jobs is not there."""
        now = time.monotonic()
        if now - self._analyzed_at < ANALYZE_INTERVAL_S:
            return
        if self._analyze_task is not None and not self._analyze_task.done():
            return
        self._analyzed_at = now
        self._analyze_task = asyncio.create_task(self._analyze())

    async def _analyze(self) -> None:
        try:
            async with self._require_pool().acquire() as conn:
                await conn.execute(Q["analyze_jobs"])
        except _DRIVER_ERRORS as exc:  # statistics are an optimisation: never fail for them
            log.warning("ANALYZE jobs failed: %s", exc)

    async def migrate(self) -> list[int]:
        known = sqlfiles.migrations(PACKAGE)
        newest = known[-1].version if known else 0
        applied: list[int] = []
        async with self._transaction() as conn:
            await conn.execute(Q["migration_lock"], stable_key("migrate", self.schema or ""))
            if self.schema is not None:
                await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(self.schema)}")
            await conn.execute(Q["create_migrations_table"])
            done = {r[0] for r in await conn.fetch(Q["applied_versions"])}
            if done and max(done) > newest:
                raise SchemaTooNew(
                    f"the database at {self._where()} has schema version {max(done)}, this "
                    f"Blixard knows up to {newest}: upgrade Blixard",
                    database_version=max(done),
                    code_version=newest,
                )
            for migration in known:
                if migration.version in done:
                    continue
                await conn.execute(migration.sql)
                await conn.execute(
                    Q["record_migration"], migration.version, migration.name, time.time()
                )
                applied.append(migration.version)
        return applied

    async def schema_version(self) -> int:
        async with self._acquire() as conn:
            exists = await conn.fetchval("SELECT to_regclass('blixard_migrations') IS NOT NULL")
            if not exists:
                return 0
            version = await conn.fetchval("SELECT max(version) FROM blixard_migrations")
            return int(version or 0)

    # jobs ------------------------------------------------------------------------------
    async def insert_jobs(self, jobs: Sequence[NewJob]) -> list[Inserted]:
        if not jobs:
            return []
        # Within the batch, a repeated (tenant, key) is the first occurrence's job.
        first: dict[tuple[str, str], NewJob] = {}
        to_insert: list[NewJob] = []
        for job in jobs:
            key = job.spec.idempotency_key
            if key is not None:
                pair = (job.spec.tenant, key)
                if pair in first:
                    continue
                first[pair] = job
            to_insert.append(job)
        if first:
            # Keys in one global order: two batches sharing keys wait on each other's
            # uncommitted rows in the same order, so they cannot deadlock.
            to_insert.sort(key=lambda j: (j.spec.idempotency_key is not None, _key_of(j)))
        existing: dict[tuple[str, str], Job] = {}
        firsts: dict[str, deps.First] = {}
        with_parents = any(j.spec.depends_on for j in jobs)
        async with self._transaction() as conn:
            await deps.ensure_names(conn, jobs)
            if with_parents:
                # In submission order: a job may name a parent earlier in the batch.
                kept = {j.id for j in to_insert}
                to_insert = [j for j in jobs if j.id in kept]
                firsts = await deps.first_states(conn, to_insert)
            params = rows.new_jobs_params(to_insert, firsts)
            if first:
                created = {r[0] for r in await conn.fetch(Q["insert_jobs"], *params)}
                lost = [pair for pair, job in first.items() if job.id not in created]
                if lost:
                    found = await conn.fetch(
                        Q["find_idempotent"], [p[0] for p in lost], [p[1] for p in lost]
                    )
                    for r in found:
                        existing[(r["tenant"], r["idempotency_key"])] = rows.job_from_row(r)
                    if len(existing) != len(lost):  # cannot happen: keyed rows are never deleted
                        raise StorageError(f"{self._where()}: idempotency keys vanished: {lost}")
            else:
                created = {j.id for j in to_insert}
                await conn.execute(Q["insert_jobs"], *params)
            if with_parents:
                _check_parents_created(to_insert, created)
                await deps.link(conn, to_insert, created)
            if created:
                notices = _Notices()
                notices.work = True
                await notices.send(conn)
        if len(created) >= ANALYZE_AFTER_BULK:
            self._analyze_soon()
        out: list[Inserted] = []
        fresh: dict[str, Job] = {}

        def made(job: NewJob) -> Job:
            return pending_job(job, *firsts.get(job.id, (JobStatus.PENDING, 0, None)))

        for job in jobs:
            key = job.spec.idempotency_key
            if key is None:
                out.append(Inserted(made(job), True))
                continue
            pair = (job.spec.tenant, key)
            if pair in existing:
                out.append(Inserted(existing[pair], False))
                continue
            winner = first[pair]
            if winner is job:
                fresh[job.id] = made(job)
                out.append(Inserted(fresh[job.id], True))
            else:
                out.append(Inserted(fresh[winner.id], False))
        return out

    async def get_job(self, job_id: str) -> Job | None:
        async with self._acquire() as conn:
            row = await conn.fetchrow(Q["get_job"], job_id)
        return rows.job_from_row(row) if row else None

    async def get_jobs(self, job_ids: Sequence[str]) -> list[Job]:
        if not job_ids:
            return []
        async with self._acquire() as conn:
            found = {r["id"]: r for r in await conn.fetch(Q["get_jobs"], list(job_ids))}
        return [rows.job_from_row(found[i]) for i in job_ids if i in found]

    async def list_jobs(self, query: JobQuery) -> JobPage:
        filters = (
            query.queue,
            query.tenant,
            query.worker_type,
            query.before,
            query.limit,
            query.group_id,
        )
        async with self._acquire() as conn:
            if len(query.status) == 1:
                found = await conn.fetch(Q["list_jobs_one_status"], str(query.status[0]), *filters)
            else:
                statuses = [str(s) for s in query.status] if query.status else None
                found = await conn.fetch(Q["list_jobs"], statuses, *filters)
        jobs = [rows.job_from_row(r) for r in found]
        cursor = jobs[-1].id if len(jobs) == query.limit and jobs else None
        return JobPage(jobs, cursor)

    async def job_attempts(self, job_id: str) -> list[Attempt]:
        async with self._acquire() as conn:
            return [rows.attempt_from_row(r) for r in await conn.fetch(Q["job_attempts"], job_id)]

    async def cancel_job(self, job_id: str, now: float, reason: str) -> Job:
        error = {"kind": "cancelled", "message": reason}
        async with self._transaction() as conn:
            before = await conn.fetchrow(Q["get_job_for_update"], job_id)
            if before is None:
                raise JobNotFound(job_id)
            old = rows.job_from_row(before)
            CANCEL.check(old.status, job_id)
            error_text = rows.dumps(error)
            row = await conn.fetchrow(Q["cancel"], error_text, now, job_id)
            assert row is not None  # locked above, and CANCEL allows its status
            notices = _Notices()
            notices.job_ids.append(job_id)
            if row["has_dependants"]:
                changed = await deps.settle_dependants(conn, {job_id: JobStatus.CANCELLED}, now)
                notices.job_ids += changed
                notices.work = notices.work or bool(changed)
            if old.status.active:
                await conn.execute(
                    Q["insert_attempts"],
                    [job_id],
                    [old.attempt],
                    [old.claimed_by],
                    [old.claimed_at],
                    [old.started_at],
                    [now],
                    ["cancelled"],
                    [error_text],
                )
                notices.work = True  # the worker's capacity is free again
            await notices.send(conn)
        return rows.job_from_row(row)

    async def retry_job(self, job_id: str, now: float, extra_attempts: int) -> Job:
        async with self._transaction() as conn:
            before = await conn.fetchrow(Q["get_job_for_update"], job_id)
            if before is None:
                raise JobNotFound(job_id)
            RETRY.check(JobStatus(before["status"]), job_id)
            row = await conn.fetchrow(Q["retry"], now, extra_attempts, job_id)
            assert row is not None
            notices = _Notices()
            notices.work = True
            notices.job_ids.append(job_id)
            await notices.send(conn)
        return rows.job_from_row(row)

    # claims ----------------------------------------------------------------------------
    async def claim_jobs(self, request: ClaimRequest, now: float) -> list[Job]:
        async with self._transaction() as conn:
            return await claims.claim(conn, request, now, self.schema or "")

    async def next_token_at(self, now: float) -> float | None:
        async with self._acquire() as conn:
            found = await conn.fetch(Q["rate_limited_waiting"], now)
        return next_token_at([tuple(r) for r in found], now)

    async def next_due_at(self) -> float | None:
        async with self._acquire() as conn:
            value = await conn.fetchval(Q["next_due"])
        return None if value is None else float(value)

    # reports and leases ---------------------------------------------------------------
    async def apply_reports(
        self, worker_id: str, reports: Sequence[Report], now: float
    ) -> list[ReportResult]:
        if not reports:
            return []
        ids = sorted({r.job_id for r in reports})
        async with self._transaction() as conn:
            states = {r["id"]: rows.job_state(r) for r in await conn.fetch(Q["report_state"], ids)}
            results, plan = plan_reports(worker_id, reports, states, now, self._rng)
            await self._execute_plan(conn, plan, now)
        return results

    async def _execute_plan(self, conn: Conn, plan: WritePlan, now: float) -> None:
        """Each write kind as one guarded statement, the attempt rows as one insert, and the
        announcements, all in the caller's transaction."""
        g = plan.guard
        if plan.starts:
            await conn.execute(
                Q["start"],
                [j for j, _ in plan.starts],
                [at for _, at in plan.starts],
                [g[j][0] for j, _ in plan.starts],
                [g[j][1] for j, _ in plan.starts],
                now,
            )
        if plan.completes:
            await conn.execute(
                Q["complete"],
                [j for j, _, _ in plan.completes],
                [rows.dumps_or_none(res) for _, res, _ in plan.completes],
                [started for _, _, started in plan.completes],
                [g[j][0] for j, _, _ in plan.completes],
                [g[j][1] for j, _, _ in plan.completes],
                now,
            )
        if plan.requeues:
            await conn.execute(
                Q["requeue"],
                [j for j, _, _ in plan.requeues],
                [run_at for _, run_at, _ in plan.requeues],
                [rows.dumps_or_none(err) for _, _, err in plan.requeues],
                [g[j][0] for j, _, _ in plan.requeues],
                [g[j][1] for j, _, _ in plan.requeues],
                now,
            )
        if plan.fails:
            await conn.execute(
                Q["fail"],
                [j for j, _ in plan.fails],
                [rows.dumps_or_none(err) for _, err in plan.fails],
                [g[j][0] for j, _ in plan.fails],
                [g[j][1] for j, _ in plan.fails],
                now,
            )
        if plan.attempts:
            await conn.execute(Q["insert_attempts"], *rows.attempts_params(plan.attempts))
        settled: list[str] = []
        if plan.ended_parents:
            settled = await deps.settle_dependants(conn, plan.ended_parents, now)
        notices = _Notices()
        # An attempt that ended frees its worker's capacity; a requeued job is claimable.
        notices.work = bool(plan.completes or plan.requeues or plan.fails)
        notices.job_ids = [j for j, _ in plan.starts]
        notices.job_ids += [j for j, _, _ in plan.completes]
        notices.job_ids += [j for j, _, _ in plan.requeues]
        notices.job_ids += [j for j, _ in plan.fails]
        notices.job_ids += settled
        await notices.send(conn)

    async def reap_expired(self, now: float, limit: int) -> list[Reaped]:
        if limit <= 0:
            return []
        async with self._transaction() as conn:
            expired = await conn.fetch(Q["expired_leases"], now, limit)
            if not expired:
                return []
            states = []
            for r in expired:
                state = rows.job_state(r)
                state.deadline_at = r["deadline_at"]
                states.append(state)
            reasons, plan = plan_expiry(states, now, self._rng)
            await self._execute_plan(conn, plan, now)
            after = {
                r["id"]: rows.job_from_row(r)
                for r in await conn.fetch(Q["get_jobs"], [s.id for s in states])
            }
        return [Reaped(after[job_id], reason) for job_id, reason in reasons]

    # workers ---------------------------------------------------------------------------
    async def register_worker(self, spec: WorkerSpec, now: float) -> Worker:
        async with self._acquire() as conn:
            row = await conn.fetchrow(Q["upsert_worker"], *rows.worker_params(spec, now))
        assert row is not None
        return rows.worker_from_row(row)

    async def heartbeat(
        self, worker_id: str, running: Sequence[RunningJob], now: float, lease_ttl_s: float
    ) -> HeartbeatResult:
        async with self._acquire() as conn:
            row = await conn.fetchrow(
                Q["heartbeat"],
                worker_id,
                now,
                [j.job_id for j in running],
                [j.attempt for j in running],
                now + lease_ttl_s,
            )
        if row is None:
            raise WorkerNotFound(worker_id)
        held = {(job_id, attempt) for job_id, attempt in row["renewed"]}
        renewed = 0
        cancel: list[str] = []
        for item in running:
            if (item.job_id, item.attempt) in held:
                renewed += 1
            else:
                cancel.append(item.job_id)
        return HeartbeatResult(rows.worker_from_row(row), cancel, renewed)

    async def get_worker(self, worker_id: str) -> Worker | None:
        async with self._acquire() as conn:
            row = await conn.fetchrow(Q["get_worker"], worker_id)
        return rows.worker_from_row(row) if row else None

    async def list_workers(self, status: WorkerStatus | None = None) -> list[Worker]:
        async with self._acquire() as conn:
            found = await conn.fetch(Q["list_workers"], None if status is None else str(status))
        return [rows.worker_from_row(r) for r in found]

    async def set_worker_status(self, worker_id: str, status: WorkerStatus, now: float) -> Worker:
        async with self._acquire() as conn:
            row = await conn.fetchrow(Q["set_worker_status"], worker_id, str(status))
        if row is None:
            raise WorkerNotFound(worker_id)
        return rows.worker_from_row(row)

    async def mark_lost_workers(self, now: float, older_than: float) -> list[Worker]:
        async with self._acquire() as conn:
            found = await conn.fetch(Q["mark_lost_workers"], older_than)
        return [rows.worker_from_row(r) for r in found]

    async def stats(self, tenant: str | None = None) -> Stats:
        async with (
            self._acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            job_rows: list[tuple[str, str, str, int]]
            if tenant is None:
                job_rows = [tuple(r) for r in await conn.fetch(Q["stats_by_queue_and_tenant"])]
                oldest = await conn.fetchval(Q["stats_oldest_pending"])
            else:
                job_rows = [
                    (queue, tenant, status, count)
                    for queue, status, count in await conn.fetch(
                        Q["stats_of_tenant_by_queue"], tenant
                    )
                ]
                oldest = await conn.fetchval(Q["stats_oldest_pending_of_tenant"], tenant)
            worker_rows = await conn.fetch(Q["stats_workers_by_status"])
        by_status = {str(s): 0 for s in JobStatus}
        by_queue: dict[str, dict[str, int]] = {}
        by_tenant: dict[str, dict[str, int]] = {}
        for queue, name, status, count in job_rows:
            by_status[status] += count
            in_queue = by_queue.setdefault(queue, {})
            in_queue[status] = in_queue.get(status, 0) + count
            of_tenant = by_tenant.setdefault(name, {})
            of_tenant[status] = of_tenant.get(status, 0) + count
        workers = {str(s): 0 for s in WorkerStatus}
        for status, count in worker_rows:
            workers[status] = count
        return Stats(
            by_status,
            by_queue,
            workers,
            None if oldest is None else float(oldest),
            jobs_by_tenant=by_tenant,
            tenant=tenant,
        )

    # copying -----------------------------------------------------------------------------
    async def export_jobs(self, after: str | None, limit: int) -> list[Job]:
        async with self._acquire() as conn:
            found = await conn.fetch(Q["export_jobs"], after, limit)
        return [rows.job_from_row(r) for r in found]

    async def export_attempts(self, job_ids: Sequence[str]) -> list[Attempt]:
        if not job_ids:
            return []
        async with self._acquire() as conn:
            found = await conn.fetch(Q["export_attempts"], list(job_ids))
        return [rows.attempt_from_row(r) for r in found]

    async def import_records(
        self, jobs: Sequence[Job], attempts: Sequence[Attempt], workers: Sequence[Worker]
    ) -> int:
        created = 0
        async with self._transaction() as conn:
            if workers:
                await conn.execute(Q["import_workers"], *rows.full_workers_params(workers))
            if jobs:
                status = await conn.execute(Q["import_jobs"], *rows.jobs_params(jobs))
                created = int(status.rsplit(" ", 1)[-1])
                await conn.execute(Q["import_links"], [j.id for j in jobs], time.time())
            if attempts:
                await conn.execute(Q["import_attempts"], *rows.attempts_params(attempts))
            if created:
                notices = _Notices()
                notices.work = True
                await notices.send(conn)
        return created

    # several servers ---------------------------------------------------------------------
    async def listen(self, on_work: WorkListener, on_jobs: JobsListener) -> None:
        self._require_pool()
        try:
            await self._listener.add(on_work, on_jobs)
        except _DRIVER_ERRORS as exc:
            raise self._error(exc) from exc

    async def try_lead(self, role: str) -> bool:
        self._require_pool()
        try:
            return await self._leadership.try_lead(role)
        except _DRIVER_ERRORS as exc:
            raise self._error(exc) from exc
