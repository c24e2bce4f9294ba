"""The storage conformance suite runs every test against every driver via ``store``."""

from __future__ import annotations

import os
import random
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from blixard.clock import ManualClock
from blixard.storage.base import Store
from blixard.storage.sqlite import SqliteStore

DRIVERS: dict[str, Callable[[Path], Store]] = {
    "sqlite": lambda tmp_path: SqliteStore(path=str(tmp_path / "t.db"), rng=random.Random(7)),
}

# PostgreSQL: a real server (never skipped). Each test gets a fresh schema, dropped after.
POSTGRES_URL = os.environ.get(
    "BLIXARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
POSTGRES_HELP = (
    "the PostgreSQL tests need a server at $BLIXARD_TEST_POSTGRES_URL "
    f"(now {POSTGRES_URL!r}). Start the local one with:\n"
    "    pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n"
    "or point BLIXARD_TEST_POSTGRES_URL at another server."
)
DRIVER_NAMES = [*DRIVERS, "postgres"]
_postgres_failure: list[str] = []


async def _check_postgres() -> None:
    """Fail (not skip) every PostgreSQL test, with how to start the server, if it is down."""
    if _postgres_failure:
        pytest.fail(_postgres_failure[0], pytrace=False)
    try:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        _postgres_failure.append(f"cannot connect to PostgreSQL ({exc!r}): {POSTGRES_HELP}")
    else:
        await conn.close()
        return
    pytest.fail(_postgres_failure[0], pytrace=False)


async def drop_schema(schema: str) -> None:
    conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def pg_url() -> str:
    """The test server's URL (the test fails, with how to start it, if it is down)."""
    await _check_postgres()
    return POSTGRES_URL


@pytest.fixture
async def pg_schemas(pg_url: str) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Fresh random schema names (the store creates them); all dropped at teardown."""
    made: list[str] = []

    async def fresh() -> str:
        name = f"blixard_test_{secrets.token_hex(6)}"
        made.append(name)
        return name

    try:
        yield fresh
    finally:
        for name in made:
            await drop_schema(name)


@pytest.fixture(params=DRIVER_NAMES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    schema: str | None = None
    if request.param == "postgres":
        await _check_postgres()
        from blixard.storage.postgres import PostgresStore

        schema = f"blixard_test_{secrets.token_hex(6)}"
        s: Store = PostgresStore(
            POSTGRES_URL, rng=random.Random(7), schema=schema, min_size=1, max_size=4
        )
    else:
        s = DRIVERS[request.param](tmp_path)
    try:
        await s.open()
        try:
            yield s
        finally:
            await s.close()
    finally:
        if schema is not None:
            await drop_schema(schema)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_700_000_000.0)
