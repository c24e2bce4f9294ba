"""PostgreSQL driver specifics: connection errors, migrations, schema, plans, URLs, jsonb."""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from helpers import TTL, add_job, add_worker, claim_one, completed, new_job, worker_spec

from blixard.errors import SchemaTooNew, StorageError, ValidationError
from blixard.storage.base import ClaimRequest, Report, ReportKind
from blixard.storage.postgres import PostgresStore, split_schema
from blixard.storage.postgres.driver import Q, describe_url, redact
from blixard.storage.urls import store_from_url

T0 = 1_700_000_000.0


def _with_netloc(url: str, netloc: str) -> str:
    return urlunsplit(urlsplit(url)._replace(netloc=netloc))


def _with_path(url: str, path: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=path))


@pytest.fixture
async def schema(pg_schemas: Callable[[], Awaitable[str]]) -> str:
    return await pg_schemas()


@pytest.fixture
async def pg(pg_url: str, schema: str) -> AsyncIterator[PostgresStore]:
    s = PostgresStore(pg_url, rng=random.Random(7), schema=schema, min_size=1)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def _admin(url: str, schema: str | None = None) -> asyncpg.Connection[asyncpg.Record]:
    settings = {"search_path": f'"{schema}"'} if schema else None
    return await asyncpg.connect(url, server_settings=settings)


# connecting ---------------------------------------------------------------------------------
async def test_unreachable_port_is_a_storage_error_naming_host_and_port(pg_url: str) -> None:
    url = _with_netloc(pg_url, "blixard:s3cret-pw@127.0.0.1:1")
    store = PostgresStore(url, min_size=1, connect_timeout_s=5)
    with pytest.raises(StorageError) as info:
        await store.open()
    message = str(info.value)
    assert "127.0.0.1:1" in message
    assert "cannot connect" in message
    assert "s3cret-pw" not in message
    assert "s3cret-pw" not in store.url
    assert info.value.__cause__ is not None  # raised from the driver's error


async def test_missing_database_is_a_storage_error_naming_it(pg_url: str) -> None:
    url = _with_path(pg_url, "/blixard_no_such_database")
    with pytest.raises(StorageError) as info:
        await PostgresStore(url, min_size=1).open()
    assert "blixard_no_such_database" in str(info.value)
    assert "does not exist" in str(info.value)


async def test_operations_on_a_closed_store_are_storage_errors(pg: PostgresStore) -> None:
    await pg.close()
    with pytest.raises(StorageError):
        await pg.get_job("x")


def test_url_helpers_never_show_the_password() -> None:
    url = "postgresql://user:p%40ss@db.example:6543/prod?sslmode=require"
    assert redact(url) == "postgresql://user:***@db.example:6543/prod?sslmode=require"
    assert describe_url(url) == ("db.example:6543", "prod", "user")
    assert describe_url("postgresql://[::1]/x") == ("[::1]:5432", "x", "(default user)")
    assert redact("postgresql://h/db?password=pw&sslmode=disable") == (
        "postgresql://h/db?password=***&sslmode=disable"
    )


# migrations and schema ------------------------------------------------------------------------
async def test_objects_live_in_the_store_schema(
    pg_url: str, pg: PostgresStore, schema: str
) -> None:
    conn = await _admin(pg_url)
    try:
        tables = {
            r[0]
            for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = $1", schema
            )
        }
        functions = {
            r[0]
            for r in await conn.fetch(
                "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                " WHERE n.nspname = $1",
                schema,
            )
        }
        types = {
            r[0]: r[1]
            for r in await conn.fetch(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = $1 AND table_name = 'jobs'",
                schema,
            )
        }
    finally:
        await conn.close()
    assert tables == {
        "jobs",
        "job_attempts",
        "job_dependencies",
        "workers",
        "queues",
        "tenants",
        "schedules",
        "blixard_migrations",
    }
    assert "blixard_claim" not in functions  # migration 2 moved the claim to the driver
    assert types["payload"] == "jsonb"
    assert types["worker_types"] == "ARRAY"
    assert types["run_at"] == "double precision"
    assert types["req_labels"] == "jsonb"


async def test_open_without_migrate_connects_only(pg_url: str, schema: str) -> None:
    store = PostgresStore(pg_url, schema=schema, min_size=1)
    await store.open(migrate=False)
    try:
        assert await store.schema_version() == 0
        with pytest.raises(StorageError, match="migrat"):
            await store.get_job("x")
        assert await store.migrate() == [1, 2]
        assert await store.migrate() == []
        assert await store.schema_version() == 2
    finally:
        await store.close()


async def test_newer_database_schema_raises_schema_too_new(
    pg_url: str, pg: PostgresStore, schema: str
) -> None:
    conn = await _admin(pg_url, schema)
    try:
        await conn.execute(
            "INSERT INTO blixard_migrations (version, name, applied_at)"
            " VALUES (99, '0099_future.sql', 0)"
        )
    finally:
        await conn.close()
    newer = PostgresStore(pg_url, schema=schema, min_size=1)
    with pytest.raises(SchemaTooNew) as info:
        await newer.open()
    assert info.value.details == {"database_version": 99, "code_version": 2}
    # without migrating it still connects, and can tell the version
    await newer.open(migrate=False)
    try:
        assert await newer.schema_version() == 99
    finally:
        await newer.close()


# the claim -------------------------------------------------------------------------------------
async def test_claim_scan_and_hot_queries_use_their_indexes(
    pg_url: str, pg: PostgresStore, schema: str
) -> None:
    """On 20,000 pending jobs of two tenants: EXPLAIN of the claim's candidate scan (custom
    and generic plans: asyncpg prepares statements, and PostgreSQL may switch a prepared
    statement to its generic plan after five runs) and of the other hot statements."""
    await pg.insert_jobs(
        [
            new_job(T0, {"i": i}, priority=i % 3, run_at=T0 - i % 7, tenant=f"t{i % 2}")
            for i in range(20_000)
        ]
    )
    await add_worker(pg, T0, "w1", concurrency=10_000, labels={"zone": "eu"})
    claimed = [j.id for j in await pg.claim_jobs(ClaimRequest("w1", 40, TTL), T0)]
    assert len(claimed) == 40
    conn = await _admin(pg_url, schema)
    try:
        await conn.execute("ANALYZE jobs")
        args = (
            ["t0", "t1"],
            [None, None],
            [None, None],
            [None, None],
            T0,
            "process",
            '{"zone": "eu"}',
            8.0,
            16_384,
            0,
            ["paused"],
            ["repo-1"],
            64,
            [1],
        )
        sql = Q["claim_candidates"].replace("$7::jsonb", "$7::text::jsonb")
        for mode in ("force_custom_plan", "force_generic_plan"):
            await conn.execute(f"SET plan_cache_mode = {mode}")
            plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {sql}", *args))
            assert "Index Scan using jobs_claimable on jobs" in plan, (mode, plan)
            assert "Seq Scan on jobs" not in plan, (mode, plan)
            assert not re.search(r"^\s*(->\s+)?Sort\b", plan, re.MULTILINE), plan
        await conn.execute("RESET plan_cache_mode")

        hot = {
            "next_due": ((), "jobs_pending_due"),
            "expired_leases": ((T0 + 100, 500), "jobs_leases"),
            "report_state": ((claimed[:20],), "jobs_pkey"),
            "get_jobs": ((claimed[:20],), "jobs_pkey"),
            "heartbeat": (("w1", T0, claimed[:20], [1] * 20, T0 + 30), "jobs_by_worker"),
        }
        for name, (params, index) in hot.items():
            plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {Q[name]}", *params))
            assert f"using {index} on jobs" in plan, (name, plan)
            assert "Seq Scan on jobs" not in plan, (name, plan)
    finally:
        await conn.close()


async def test_claim_unknown_worker_leaves_jobs_alone(pg: PostgresStore) -> None:
    job = await add_job(pg, T0)
    from blixard.errors import WorkerNotFound

    with pytest.raises(WorkerNotFound):
        await pg.claim_jobs(ClaimRequest("ghost", 5, TTL), T0)
    assert (await pg.get_job(job.id)) == job


# jsonb limits ----------------------------------------------------------------------------------
async def test_nul_in_payload_is_a_validation_error(pg: PostgresStore) -> None:
    with pytest.raises(ValidationError) as info:
        await pg.insert_jobs([new_job(T0, {"text": "a\x00b"})])
    assert info.value.field == "payload"
    # an escaped backslash before "u0000" is ordinary text, stored as is
    (ok,) = await pg.insert_jobs([new_job(T0, {"text": "a\\u0000b"})])
    assert (await pg.get_job(ok.job.id)) == ok.job


async def test_nul_in_reported_result_is_replaced(pg: PostgresStore) -> None:
    await pg.register_worker(worker_spec("w1"), T0)
    await add_job(pg, T0)
    job = await claim_one(pg, "w1", T0)
    (r,) = await pg.apply_reports("w1", [completed(job, {"out": "x\x00y"})], T0 + 1)
    assert r.applied
    stored = await pg.get_job(job.id)
    assert stored is not None
    assert stored.result == {"out": "x\ufffdy"}
    failing = await add_job(pg, T0, max_attempts=1)
    job2 = await claim_one(pg, "w1", T0)
    assert job2.id == failing.id
    err = {"kind": "exit", "message": "bad\x00"}
    (r,) = await pg.apply_reports(
        "w1", [Report(job2.id, job2.attempt, ReportKind.FAILED, error=err)], T0 + 2
    )
    assert r.applied
    after = await pg.get_job(job2.id)
    assert after is not None
    assert after.error == {"kind": "exit", "message": "bad\ufffd"}


# URLs ------------------------------------------------------------------------------------------
def test_split_schema() -> None:
    assert split_schema("postgresql://u@h/db") == ("postgresql://u@h/db", None)
    assert split_schema("postgresql://u@h/db?schema=s1&sslmode=disable") == (
        "postgresql://u@h/db?sslmode=disable",
        "s1",
    )
    assert split_schema("postgres://u@h/db?schema=s1") == ("postgres://u@h/db", "s1")


async def test_store_from_url_opens_postgres_in_the_schema(pg_url: str, schema: str) -> None:
    for scheme in ("postgresql", "postgres"):
        url = urlunsplit(urlsplit(pg_url)._replace(scheme=scheme, query=f"schema={schema}"))
        store = store_from_url(url)
        assert isinstance(store, PostgresStore)
        assert store.schema == schema
        await store.open()
        try:
            job = await add_job(store, T0)
            assert await store.get_job(job.id) == job
        finally:
            await store.close()
