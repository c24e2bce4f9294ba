"""Copy everything from one store to another: jobs, their attempts, workers.

For moving from a laptop's SQLite file to a fleet's PostgreSQL. Run it with the servers
stopped: jobs that were running keep their status and lease, and the reaper of the new
database brings them back once the lease runs out. Records already in the target are left
alone, so an interrupted copy can run again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from blixard.storage.base import Store


@dataclass(frozen=True, slots=True)
class CopyReport:
    jobs_read: int
    jobs_created: int
    attempts: int
    workers: int


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
    return CopyReport(read, created, attempts, len(workers))
