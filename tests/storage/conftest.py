"""The storage conformance suite runs every test against every driver via ``store``."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from blixard.clock import ManualClock
from blixard.storage.base import Store
from blixard.storage.memory import MemoryStore

DRIVERS: dict[str, Callable[[Path], Store]] = {
    "memory": lambda tmp_path: MemoryStore(rng=random.Random(7)),
}

# The SQLite driver is being written alongside this suite: it joins the parametrisation
# automatically as soon as ``blixard.storage.sqlite`` imports. PostgreSQL will follow.
try:
    from blixard.storage.sqlite import SqliteStore
except ImportError:
    pass
else:
    DRIVERS["sqlite"] = lambda tmp_path: SqliteStore(
        path=str(tmp_path / "t.db"), rng=random.Random(7)
    )


@pytest.fixture(params=list(DRIVERS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s = DRIVERS[request.param](tmp_path)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_700_000_000.0)
