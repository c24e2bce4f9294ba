"""The control plane: a store, the use cases over it, and the background loops."""

from __future__ import annotations

from blixard.clock import Clock, SystemClock
from blixard.service.context import ServiceContext
from blixard.service.diagnosis import Diagnosis
from blixard.service.groups import GroupService
from blixard.service.jobs import JobService
from blixard.service.queues import QueueService, TenantService
from blixard.service.reaper import Reaper
from blixard.service.schedules import Scheduler, ScheduleService
from blixard.service.settings import ServerSettings
from blixard.service.signals import JobWatchers, Signal
from blixard.service.workers import WorkerService
from blixard.service.workflows import WorkflowService
from blixard.storage.base import Stats, Store


class ControlPlane:
    def __init__(
        self,
        store: Store,
        settings: ServerSettings | None = None,
        clock: Clock | None = None,
        *,
        run_reaper: bool = True,
        run_scheduler: bool = True,
    ) -> None:
        self.store = store
        self.settings = settings or ServerSettings()
        self.clock = clock or SystemClock()
        self.work = Signal()
        self.watchers = JobWatchers()
        ctx = ServiceContext(store, self.clock, self.settings, self.work, self.watchers)
        self.jobs = JobService(ctx)
        self.workers = WorkerService(ctx)
        self.queues = QueueService(ctx)
        self.tenants = TenantService(ctx)
        self.groups = GroupService(ctx)
        self.workflows = WorkflowService(ctx)
        self.diagnosis = Diagnosis(ctx)
        self.reaper = Reaper(ctx)
        self.schedules = ScheduleService(ctx)
        self.scheduler = Scheduler(ctx, self.jobs)
        self._run_reaper = run_reaper
        self._run_scheduler = run_scheduler
        self._started = False

    async def start(self) -> None:
        if self._started:
            return
        await self.store.open()
        await self.store.listen(self.work.notify, self.watchers.notify)
        if self._run_reaper:
            await self.reaper.start()
        if self._run_scheduler:
            await self.scheduler.start()
        self._started = True

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        await self.reaper.stop()
        await self.scheduler.stop()
        await self.store.close()

    async def stats(self, tenant: str | None = None) -> Stats:
        return await self.store.stats(tenant)
