"""Fixtures: a real uvicorn server over a SQLite file, real agents, and a 5xx tripwire."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from itest_support import Harness, RunningServer, no_5xx_hook

from blixard.client import AsyncClient
from blixard.service.control_plane import ControlPlane


@pytest.fixture(autouse=True)
def server_errors() -> Iterator[list[str]]:
    """Every 5xx any server or raw client saw during the test; must stay empty.

    Autouse fixtures are set up first and torn down last, so the check below runs after
    the servers and agents of the test have stopped."""
    errors: list[str] = []
    yield errors
    assert not errors, f"5xx responses during the test: {errors}"


@pytest.fixture
async def harness(tmp_path: Path, server_errors: list[str]) -> AsyncIterator[Harness]:
    h = Harness(tmp_path, server_errors)
    try:
        yield h
    finally:
        await h.aclose()


@pytest.fixture
async def server(harness: Harness) -> RunningServer:
    return await harness.start_server()


@pytest.fixture
def url(server: RunningServer) -> str:
    return server.url


@pytest.fixture
def plane(server: RunningServer) -> ControlPlane:
    return server.plane


@pytest.fixture
async def http(url: str, server_errors: list[str]) -> AsyncIterator[httpx.AsyncClient]:
    """A raw HTTP client of the server; any 5xx it receives fails the test."""
    async with httpx.AsyncClient(
        base_url=url, timeout=30, event_hooks={"response": [no_5xx_hook(server_errors)]}
    ) as client:
        yield client


@pytest.fixture
async def client(url: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(url) as c:
        yield c
