"""Group use cases: a group's summary and jobs, and cancelling the whole group."""

from __future__ import annotations

from dataclasses import dataclass

from blixard.domain.jobs import Job
from blixard.errors import GroupNotFound
from blixard.service.context import UseCases
from blixard.storage.base import GroupSummary, JobPage, JobQuery


@dataclass(frozen=True, slots=True)
class GroupCancelled:
    summary: GroupSummary
    cancelled: list[Job]


class GroupService(UseCases):
    async def summary(self, group_id: str) -> GroupSummary:
        found = await self._store.group_summary(group_id)
        if found is None:
            raise GroupNotFound(group_id)
        return found

    async def jobs(self, group_id: str, limit: int = 50, before: str | None = None) -> JobPage:
        """The group's jobs, newest first, a page at a time."""
        return await self._store.list_jobs(JobQuery(group_id=group_id, limit=limit, before=before))

    async def cancel(
        self, group_id: str, reason: str = "group cancelled by request"
    ) -> GroupCancelled:
        """Cancel every job of the group that has not ended; running ones are stopped on
        their workers through the heartbeat."""
        cancelled = await self._store.cancel_group(group_id, self._clock.now(), reason)
        if cancelled:
            self._watchers.notify(j.id for j in cancelled)
            self._work.notify()  # capacity freed, or dependants released
        return GroupCancelled(await self.summary(group_id), cancelled)
