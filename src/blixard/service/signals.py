"""In-process wake-ups: idle claims wait for new work, ``wait`` calls for job changes.

On SQLite every change goes through this process, so these signals are exact; with several
servers (PostgreSQL) a driver feeds them from LISTEN/NOTIFY, and long-polls also re-check
the store every ``poll_backstop_s`` whatever happens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


class Signal:
    """A broadcast edge: ``wait(epoch)`` returns as soon as ``notify`` was called after the
    caller read ``epoch`` (so a notification between reading and waiting is never lost)."""

    def __init__(self) -> None:
        self._epoch = 0
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False

    def close(self) -> None:
        """The server is shutting down: every waiter returns now, and keeps returning."""
        self.closed = True
        self.notify()

    @property
    def epoch(self) -> int:
        return self._epoch

    def notify(self) -> None:
        self._epoch += 1
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, epoch: int, within_s: float) -> bool:
        """True when notified, False on timeout."""
        if self._epoch != epoch or self.closed:
            return True
        if within_s <= 0:
            return False
        if self._waiter is None or self._waiter.done():
            self._waiter = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._waiter), within_s)
        except TimeoutError:
            return self._epoch != epoch
        return True


class JobWatchers:
    """One Signal per job somebody is waiting on; created on demand, dropped when unused."""

    def __init__(self) -> None:
        self._signals: dict[str, tuple[Signal, int]] = {}

    def watch(self, job_id: str) -> Signal:
        signal, users = self._signals.get(job_id, (Signal(), 0))
        self._signals[job_id] = (signal, users + 1)
        return signal

    def unwatch(self, job_id: str) -> None:
        entry = self._signals.get(job_id)
        if entry is None:
            return
        signal, users = entry
        if users <= 1:
            del self._signals[job_id]
        else:
            self._signals[job_id] = (signal, users - 1)

    def notify(self, job_ids: Iterable[str]) -> None:
        if not self._signals:
            return
        for job_id in job_ids:
            entry = self._signals.get(job_id)
            if entry is not None:
                entry[0].notify()
