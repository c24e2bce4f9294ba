"""The lease reaper: no job stays claimed by a worker that stopped heartbeating."""

from __future__ import annotations

import asyncio
import logging

from blixard.domain.states import JobStatus
from blixard.errors import BlixardError
from blixard.service.context import ServiceContext, UseCases
from blixard.storage.base import Reaped

log = logging.getLogger("blixard.reaper")


class Reaper(UseCases):
    """Every ``reaper_interval_s``: requeue or fail jobs whose lease expired (worker died,
    lost contact, or the attempt overran its timeout), and mark silent workers offline."""

    BATCH = 500

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self._task: asyncio.Task[None] | None = None
        self.reaped_total = 0
        self.runs = 0
        self.leader = False

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="blixard-reaper")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def run_once(self) -> list[Reaped]:
        """One pass, if this server leads the reaper role (one server at a time does)."""
        self.leader = await self._store.try_lead("reaper")
        if not self.leader:
            return []
        now = self._clock.now()
        reaped: list[Reaped] = []
        while True:
            batch = await self._store.reap_expired(now, self.BATCH)
            reaped.extend(batch)
            if len(batch) < self.BATCH:
                break
        lost = await self._store.mark_lost_workers(now, now - self._settings.worker_ttl_s)
        for worker in lost:
            log.warning(
                "worker %s (%s) lost: not seen for %.0fs",
                worker.id,
                worker.name,
                self._settings.worker_ttl_s,
            )
        if reaped:
            self.reaped_total += len(reaped)
            for item in reaped:
                log.warning(
                    "job %s: %s on attempt %d -> %s",
                    item.job.id,
                    item.reason,
                    item.job.attempt,
                    item.job.status,
                )
            self._watchers.notify(r.job.id for r in reaped)
            if any(r.job.status is JobStatus.PENDING for r in reaped):
                self._work.notify()
        self.runs += 1
        return reaped

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except BlixardError as exc:
                log.error("reaper: %s", exc)
            except Exception:  # keep the loop alive; the next run retries
                log.exception("reaper run failed")
            await asyncio.sleep(self._settings.reaper_interval_s)
