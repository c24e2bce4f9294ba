"""Copy everything from one store to another: jobs, their attempts and dependencies,
workers, queue and tenant settings, cron schedules.

For moving from a laptop's SQLite file to a fleet's PostgreSQL. Run it with the servers
stopped: jobs that were running keep their status and lease, and the reaper of the new
database brings them back once the lease runs out. Records already in the target are left
alone, so an interrupted copy can run again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from blixard.storage.base import Store


@dataclass(frozen=True, slots=True)
class CopyReport:
    jobs_read: int
    jobs_created: int
    attempts: int
    workers: int
    queues: int = 0
    tenants: int = 0
    schedules: int = 0


async def copy_store(
    source: Store,
    target: Store,
    *,
    batch: int = 2000,
    progress: Callable[[int], None] = lambda n: None,
) -> CopyReport:
    workers = await source.list_workers()
    await target.import_records([], [], workers)
    after: str | None = None
    read = created = attempts = 0
    while True:
        jobs = await source.export_jobs(after, batch)
        if not jobs:
            break
        history = await source.export_attempts([j.id for j in jobs])
        created += await target.import_records(jobs, history, [])
        read += len(jobs)
        attempts += len(history)
        after = jobs[-1].id
        progress(read)
    now = time.time()
    queues = [q.queue for q in await source.list_queues()]
    for q in queues:
        await target.configure_queue(
            q.name, paused=q.paused, max_running=q.max_running, rate=q.rate, now=now
        )
    tenants = [t.tenant for t in await source.list_tenants()]
    for t in tenants:
        await target.configure_tenant(t.name, weight=t.weight, max_running=t.max_running, now=now)
    schedules = 0
    for schedule in await source.list_schedules():
        if await target.get_schedule(schedule.id) is None:
            await target.create_schedule(schedule)
            schedules += 1
    return CopyReport(read, created, attempts, len(workers), len(queues), len(tenants), schedules)
