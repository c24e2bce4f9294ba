"""LISTEN/NOTIFY for several servers on one database, and leadership by advisory locks.

Both use a dedicated connection, not one from the pool: a LISTEN and a session-level
advisory lock belong to a session, and a pooled connection is shared by everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from blixard.storage.base import JobsListener, WorkListener

log = logging.getLogger("blixard.storage.postgres")

WORK_CHANNEL = "blixard_work"
JOBS_CHANNEL = "blixard_jobs"

Connect = Callable[[], Awaitable["asyncpg.Connection[Any]"]]
CONNECTION_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


async def _close_quietly(conn: asyncpg.Connection[Any] | None) -> None:
    if conn is None or conn.is_closed():
        return
    try:
        await asyncio.wait_for(conn.close(), 2.0)
    except Exception:  # closing a broken connection: nothing left to do but drop it
        conn.terminate()


class Listener:
    """One LISTEN connection for both channels, kept alive by a supervisor task.

    When the connection is lost the task reconnects with exponential backoff and, once back,
    calls ``on_work()``: notifications sent meanwhile are lost, so waiters should look again.
    """

    def __init__(
        self,
        connect: Connect,
        *,
        health_interval_s: float = 15.0,
        min_backoff_s: float = 0.05,
        max_backoff_s: float = 5.0,
    ) -> None:
        self._connect = connect
        self._health_interval_s = health_interval_s
        self._min_backoff_s = min_backoff_s
        self._max_backoff_s = max_backoff_s
        self._on_work: list[WorkListener] = []
        self._on_jobs: list[JobsListener] = []
        self._conn: asyncpg.Connection[Any] | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.reconnects = 0

    @property
    def pid(self) -> int | None:
        """The server process id of the LISTEN connection (None while disconnected)."""
        conn = self._conn
        return None if conn is None or conn.is_closed() else conn.get_server_pid()

    async def add(self, on_work: WorkListener, on_jobs: JobsListener) -> None:
        """Register the callbacks; the first call connects (errors propagate) and starts the
        supervisor."""
        if self._task is None:
            await self._establish()
            self._task = asyncio.create_task(self._supervise(), name="blixard-pg-listener")
        self._on_work.append(on_work)
        self._on_jobs.append(on_jobs)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        conn, self._conn = self._conn, None
        await _close_quietly(conn)

    async def _establish(self) -> None:
        conn = await self._connect()
        try:
            self._lost.clear()
            conn.add_termination_listener(self._terminated)
            await conn.add_listener(WORK_CHANNEL, self._work_notified)
            await conn.add_listener(JOBS_CHANNEL, self._jobs_notified)
        except BaseException:
            await _close_quietly(conn)
            raise
        self._conn = conn

    def _terminated(self, conn: object) -> None:
        if conn is self._conn:
            self._lost.set()

    def _work_notified(self, conn: object, pid: int, channel: str, payload: object) -> None:
        for callback in list(self._on_work):
            try:
                callback()
            except Exception:
                log.exception("work listener failed")

    def _jobs_notified(self, conn: object, pid: int, channel: str, payload: object) -> None:
        ids = [i for i in str(payload).split(",") if i]
        if not ids:
            return
        for callback in list(self._on_jobs):
            try:
                callback(ids)
            except Exception:
                log.exception("jobs listener failed")

    async def _healthy(self) -> bool:
        conn = self._conn
        if conn is None or conn.is_closed():
            return False
        try:
            await asyncio.wait_for(conn.fetchval("SELECT 1"), self._health_interval_s)
        except CONNECTION_ERRORS:
            return False
        return True

    async def _supervise(self) -> None:
        while True:
            # Wait for a loss, checking now and then that a silent connection still answers.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), self._health_interval_s)
            if not self._lost.is_set() and await self._healthy():
                continue
            await self._reconnect()

    async def _reconnect(self) -> None:
        old, self._conn = self._conn, None
        await _close_quietly(old)
        delay = self._min_backoff_s
        while True:
            try:
                await self._establish()
            except CONNECTION_ERRORS as exc:
                log.warning("LISTEN connection lost, retrying in %.2fs: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff_s)
                continue
            self.reconnects += 1
            log.info("LISTEN connection re-established")
            self._work_notified(self._conn, 0, WORK_CHANNEL, "")
            return


class Leadership:
    """Session-level advisory locks on one dedicated connection, one per role held.

    A role is held while the connection lives; if this process or its connection dies, the
    server releases the lock and the next caller elsewhere takes the role.
    """

    def __init__(self, connect: Connect, key: Callable[[str], int]) -> None:
        self._connect = connect
        self._key = key
        self._conn: asyncpg.Connection[Any] | None = None
        self._held: set[str] = set()
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        conn = self._conn
        return None if conn is None or conn.is_closed() else conn.get_server_pid()

    async def try_lead(self, role: str) -> bool:
        async with self._lock:
            for attempt in range(2):
                try:
                    return await self._try(role)
                except CONNECTION_ERRORS:
                    # The connection died (and with it every lock it held): start afresh.
                    self._held.clear()
                    old, self._conn = self._conn, None
                    await _close_quietly(old)
                    if attempt == 1:
                        raise
            raise AssertionError("unreachable")

    async def _try(self, role: str) -> bool:
        conn = self._conn
        if conn is None or conn.is_closed():
            self._held.clear()
            conn = self._conn = await self._connect()
        if role in self._held:
            await conn.fetchval("SELECT 1")  # still alive, so still ours
            return True
        got = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._key(role)))
        if got:
            self._held.add(role)
        return got

    async def close(self) -> None:
        async with self._lock:
            conn, self._conn = self._conn, None
            held, self._held = self._held, set()
            if conn is not None and not conn.is_closed() and held:
                # Release now rather than when the server notices the session ended, so
                # another server's very next call can take the roles.
                with contextlib.suppress(*CONNECTION_ERRORS):
                    await asyncio.wait_for(conn.execute("SELECT pg_advisory_unlock_all()"), 2.0)
            await _close_quietly(conn)
