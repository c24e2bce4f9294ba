"""Queue and tenant use cases: list, read, configure (pause, resume, limits, weight).

Values are validated here with ``domain.queues``; the store applies a partial update in
one transaction. A change may let waiting jobs run (a queue resumed, a limit raised), so
this server's idle claims are woken after every change; other servers hear it from the
store (PostgreSQL NOTIFY).
"""

from __future__ import annotations

from blixard.domain import validation as v
from blixard.domain.queues import RateLimit, check_max_running, check_weight
from blixard.errors import QueueNotFound, TenantNotFound
from blixard.service.context import UseCases
from blixard.storage.base import UNSET, QueueInfo, TenantInfo, Unset


class QueueService(UseCases):
    async def list_queues(self) -> list[QueueInfo]:
        return await self._store.list_queues()

    async def get(self, name: str) -> QueueInfo:
        info = await self._store.get_queue(name)
        if info is None:
            raise QueueNotFound(name)
        return info

    async def configure(
        self,
        name: str,
        *,
        paused: bool | None = None,
        max_running: int | Unset | None = UNSET,
        rate: RateLimit | Unset | None = UNSET,
    ) -> QueueInfo:
        """Change the given settings; a queue that does not exist yet is created."""
        v.check_name("queue", name)
        if max_running is not UNSET:
            max_running = check_max_running("max_running", max_running)
        if rate is not UNSET and rate is not None:
            rate = rate.validate()
        info = await self._store.configure_queue(
            name, paused=paused, max_running=max_running, rate=rate, now=self._clock.now()
        )
        self._work.notify()
        return info

    async def pause(self, name: str) -> QueueInfo:
        """The queue keeps accepting jobs and hands none out."""
        return await self.configure(name, paused=True)

    async def resume(self, name: str) -> QueueInfo:
        return await self.configure(name, paused=False)


class TenantService(UseCases):
    async def list_tenants(self) -> list[TenantInfo]:
        return await self._store.list_tenants()

    async def get(self, name: str) -> TenantInfo:
        info = await self._store.get_tenant(name)
        if info is None:
            raise TenantNotFound(name)
        return info

    async def configure(
        self,
        name: str,
        *,
        weight: float | None = None,
        max_running: int | Unset | None = UNSET,
    ) -> TenantInfo:
        """Change the given settings; a tenant that does not exist yet is created."""
        v.check_name("tenant", name)
        if weight is not None:
            weight = check_weight(weight)
        if max_running is not UNSET:
            max_running = check_max_running("max_running", max_running)
        info = await self._store.configure_tenant(
            name, weight=weight, max_running=max_running, now=self._clock.now()
        )
        self._work.notify()
        return info
