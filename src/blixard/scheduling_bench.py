"""``blixard bench --scheduling``: claim throughput with fairness and limits on, beside the
plain figure, straight through the store (the claim's own cost, no HTTP, no agent).

Both runs fill the same number of pending no-op jobs, then claim them in batches (completing
each batch, so running counts stay small) until none is left, and report claimed jobs/s.

- plain: one tenant, one queue, no limits, no constraints;
- scheduling (what issue 4 calls limits and fairness): 8 tenants with weights 1-8 and
  quotas (fair share re-ranks after every job), the queue capped (``max_running``) and
  rate-limited, every job with one of 50 concurrency keys (counted and locked in every
  claim); every limit is set high enough never to refuse a job, so both runs claim the
  same jobs and the ratio is the price of the bookkeeping, not of waiting. Placement
  (constraints, preferences) is not part of it: a job without them costs nothing extra.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from blixard.benchmark import fresh_database
from blixard.domain.jobs import JobSpec, NewJob
from blixard.domain.queues import RateLimit
from blixard.domain.reports import Report, ReportKind
from blixard.domain.workers import Resources, WorkerSpec
from blixard.ids import new_ids
from blixard.storage.base import ClaimRequest, Store
from blixard.storage.urls import store_from_url

Progress = Callable[[str, int, int], None]
TENANTS = 8
KEYS = 50


@dataclass(frozen=True, slots=True)
class ClaimThroughput:
    plain_jobs_per_s: float
    scheduling_jobs_per_s: float

    @property
    def ratio(self) -> float:
        """How many times slower the claim is with the scheduling features on."""
        return self.plain_jobs_per_s / self.scheduling_jobs_per_s


def _specs(jobs: int, scheduling: bool) -> list[JobSpec]:
    if not scheduling:
        spec = JobSpec.build({}, worker_types=["mock"], max_attempts=1)
        return [spec] * jobs
    return [
        JobSpec.build(
            {},
            worker_types=["mock"],
            max_attempts=1,
            tenant=f"tenant-{i % TENANTS}",
            concurrency_key=f"key-{i % KEYS}",
            concurrency_limit=1_000_000,
        )
        for i in range(jobs)
    ]


async def _setup(store: Store, scheduling: bool, now: float) -> None:
    if not scheduling:
        return
    await store.configure_queue(
        "default", max_running=1_000_000, rate=RateLimit(1_000_000, 1.0), now=now
    )
    for i in range(TENANTS):
        await store.configure_tenant(
            f"tenant-{i}", weight=float(i + 1), max_running=1_000_000, now=now
        )


async def _run(database: str, jobs: int, batch: int, scheduling: bool, progress: Progress) -> float:
    store = store_from_url(database)
    await store.open()
    try:
        now = time.time()
        await _setup(store, scheduling, now)
        specs = _specs(jobs, scheduling)
        for start in range(0, jobs, 5000):
            chunk = specs[start : start + 5000]
            await store.insert_jobs(
                [NewJob(i, s, now, now) for i, s in zip(new_ids(len(chunk)), chunk, strict=True)]
            )
            progress("fill", start + len(chunk), jobs)
        worker = WorkerSpec(
            id="bench",
            worker_type="mock",
            name="bench",
            concurrency=batch,
            resources=Resources(cpu=64, memory_mb=65536),
            labels={"zone": "eu"},
        )
        await store.register_worker(worker, now)
        request = ClaimRequest("bench", batch, 60.0)
        claimed, claim_s = 0, 0.0
        label = "claims (scheduling)" if scheduling else "claims (plain)"
        while claimed < jobs:
            t0 = time.perf_counter()
            got = await store.claim_jobs(request, time.time())
            claim_s += time.perf_counter() - t0
            if not got:
                raise RuntimeError(f"the claim stopped after {claimed} of {jobs} jobs")
            claimed += len(got)
            await store.apply_reports(
                "bench", [Report(j.id, j.attempt, ReportKind.COMPLETED) for j in got], time.time()
            )
            progress(label, claimed, jobs)
        return claimed / claim_s
    finally:
        await store.close()


def claim_throughput(
    *,
    database: str | None,
    jobs: int,
    batch: int,
    repeat: int,
    progress: Progress = lambda *a: None,
) -> tuple[list[ClaimThroughput], ClaimThroughput]:
    """Each run measures plain then scheduling on fresh databases; medians over runs."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="blixard-bench-") as tmp:
        for r in range(repeat):
            figures = []
            for scheduling in (False, True):
                with fresh_database(database, Path(tmp), r * 2 + scheduling) as db:
                    figures.append(asyncio.run(_run(db, jobs, batch, scheduling, progress)))
            runs.append(ClaimThroughput(*figures))
    median = ClaimThroughput(
        statistics.median(r.plain_jobs_per_s for r in runs),
        statistics.median(r.scheduling_jobs_per_s for r in runs),
    )
    return runs, median
