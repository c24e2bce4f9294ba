"""PostgreSQL for acceptance tests: a fresh schema per test, and servers on it.

The server is the one at ``$BLIXARD_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``). When it cannot be reached the test fails (it
is never skipped) with how to start it.

    from support.postgres import pg_schema_url, start_pg_server

    __all__ = ["pg_schema_url"]  # the fixture, imported for pytest

    def test_x(pg_schema_url: str, procs: ProcessGroup) -> None:
        server = start_pg_server(procs, pg_schema_url, name="server-a")

Ask for ``pg_schema_url`` before ``procs``: pytest then stops the processes before it drops
the schema.

``pg_schema_url`` is ``<server URL>?schema=blixard_acc_<random>&application_name=<same>``:
every Blixard process on it works in that schema (created when the first one starts) and
tags its connections with the schema's name. At teardown those connections are terminated
(whatever the order pytest tears fixtures down in, the DROP does not wait on a live
server) and the schema is dropped with CASCADE.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest

from support.processes import HOST, ProcessGroup, ServerProcess, cli_flags, free_port

POSTGRES_URL = os.environ.get(
    "BLIXARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
POSTGRES_HELP = (
    "the PostgreSQL acceptance tests need a server at $BLIXARD_TEST_POSTGRES_URL "
    f"(now {POSTGRES_URL!r}). Start the local one with:\n"
    "    pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n"
    "or point BLIXARD_TEST_POSTGRES_URL at another server."
)
SCHEMA_PREFIX = "blixard_acc_"
_CONNECT_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def with_query(url: str, **params: str) -> str:
    """``url`` with these query parameters set (replacing any of the same name)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query += list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def schema_url(schema: str, base: str = POSTGRES_URL) -> str:
    """The URL Blixard uses for ``schema``; its connections are named after the schema."""
    return with_query(base, schema=schema, application_name=schema)


async def _connect() -> asyncpg.Connection[Any]:
    return await asyncpg.connect(POSTGRES_URL, timeout=5)


def check_postgres() -> None:
    """Fail the calling test (not skip it), with how to start PostgreSQL, if it is down."""

    async def probe() -> None:
        conn = await _connect()
        await conn.close()

    try:
        asyncio.run(probe())
    except _CONNECT_ERRORS as exc:
        failure = f"cannot connect to PostgreSQL ({exc!r}): {POSTGRES_HELP}"
    else:
        return
    pytest.fail(failure, pytrace=False)  # outside the except: no chained traceback


def query(sql: str, *args: Any) -> list[dict[str, Any]]:
    """Run one statement on the test server (outside any schema); its rows as dicts."""

    async def run() -> list[dict[str, Any]]:
        conn = await _connect()
        try:
            return [dict(r) for r in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    return asyncio.run(run())


def table_counts(schema: str, tables: Sequence[str]) -> dict[str, int]:
    """Rows per table of ``schema``."""
    quoted = '"' + schema.replace('"', '""') + '"'
    out: dict[str, int] = {}
    for table in tables:
        (row,) = query(f'SELECT count(*) AS n FROM {quoted}."{table}"')
        out[table] = int(row["n"])
    return out


def drop_schema(schema: str) -> None:
    """End every connection tagged with the schema's name, then DROP SCHEMA ... CASCADE."""

    async def run() -> None:
        conn = await _connect()
        try:
            await conn.execute("SET lock_timeout = '10s'")
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = $1 AND pid <> pg_backend_pid()",
                schema,
            )
            quoted = '"' + schema.replace('"', '""') + '"'
            await conn.execute(f"DROP SCHEMA IF EXISTS {quoted} CASCADE")
        finally:
            await conn.close()

    asyncio.run(run())


def schema_exists(schema: str) -> bool:
    return bool(query("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema))


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A database URL on a fresh schema (``...?schema=blixard_acc_<random>``), dropped with
    CASCADE at teardown. Fails the test, with how to start PostgreSQL, if it is down."""
    check_postgres()
    schema = SCHEMA_PREFIX + secrets.token_hex(6)
    try:
        yield schema_url(schema)
    finally:
        drop_schema(schema)


def schema_of(url: str) -> str:
    """The ``schema`` query parameter of a Blixard PostgreSQL URL."""
    return dict(parse_qsl(urlsplit(url).query))["schema"]


def start_pg_server(
    group: ProcessGroup,
    database: str,
    *,
    name: str,
    port: int | None = None,
    wait: bool = True,
    **flags: Any,
) -> ServerProcess:
    """``blixard server --database <database>`` on 127.0.0.1, owned by ``group`` (stopped at
    its teardown); waits for GET /healthz unless ``wait=False``. Defaults as
    ``ProcessGroup.start_server``: a free port, a 2 s lease TTL, a 0.2 s reaper interval;
    ``flags`` are more options. ``name`` names the log file: give each process its own."""
    if any(p.name == name for p in group.processes):
        raise ValueError(f"a process named {name!r} already exists in this group")
    port = port or free_port()
    options = {"lease_ttl": 2, "reaper_interval": 0.2, "log_level": "info", **flags}
    args = ["server", "--database", database, "--host", HOST, "--port", str(port)]
    args += cli_flags(options)
    proc = ServerProcess(
        name,
        args,
        group.log_dir / f"{name}.log",
        cwd=group.tmp_path,
        port=port,
        database=database,
    )
    group.processes.append(proc)
    if wait:
        proc.wait_healthy()
    return proc
