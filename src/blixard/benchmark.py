"""``blixard bench``: real server and worker processes, figures printed, nothing asserted.

1. submit: N no-op jobs (mock backend) bulk-submitted over HTTP, in batches;
2. end to end: one worker process started after the enqueue runs them all; jobs/s is
   counted from the worker's start (start-up included) and from its first completion
   (steady state);
3. latency: with that worker idle and long-polling, single jobs are submitted one at a time
   and enqueue-to-start (the agent's started_at minus the server's created_at) is measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from blixard.client import Client
from blixard.errors import ClientError


@dataclass(frozen=True, slots=True)
class BenchResult:
    jobs: int
    submit_jobs_per_s: float
    e2e_jobs_per_s: float
    steady_jobs_per_s: float
    latency_p50_ms: float
    latency_p99_ms: float
    latency_samples: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _blixard(*args: str) -> list[str]:
    return [sys.executable, "-m", "blixard", *args]


@contextlib.contextmanager
def running(cmd: list[str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_healthy(url: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    with Client(url, timeout=2) as client:
        while True:
            try:
                client.health()
                return
            except ClientError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def run_once(
    *,
    database: str | None,
    jobs: int,
    concurrency: int,
    latency_samples: int,
    workdir: Path,
    progress: Callable[[str, int, int], None] = lambda *a: None,
) -> BenchResult:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with fresh_database(database, workdir, port) as db:
        return _measure(db, url, port, jobs, concurrency, latency_samples, workdir, progress)


@contextlib.contextmanager
def fresh_database(database: str | None, workdir: Path, tag: int) -> Iterator[str]:
    """A new SQLite file, or a new schema in the given PostgreSQL database (dropped after)."""
    if database is None or database.startswith("sqlite"):
        yield database or f"sqlite:///{workdir / f'bench-{tag}.db'}"
        return
    schema = f"blixard_bench_{secrets.token_hex(4)}"
    sep = "&" if "?" in database else "?"
    try:
        yield f"{database}{sep}schema={schema}"
    finally:
        asyncio.run(_drop_schema(database, schema))


async def _drop_schema(database: str, schema: str) -> None:
    import asyncpg

    from blixard.storage.postgres import split_schema

    conn = await asyncpg.connect(split_schema(database)[0])
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def _measure(
    db: str,
    url: str,
    port: int,
    jobs: int,
    concurrency: int,
    latency_samples: int,
    workdir: Path,
    progress: Callable[[str, int, int], None],
) -> BenchResult:
    server_cmd = _blixard("server", "--database", db, "--port", str(port), "--log-level", "warning")
    worker_cmd = _blixard(
        "worker",
        "--server",
        url,
        "--type",
        "mock",
        "--concurrency",
        str(concurrency),
        "--log-level",
        "warning",
        "--claim-wait",
        "30",
    )
    with running(server_cmd, workdir / "server.log"), Client(url, timeout=60) as client:
        wait_healthy(url)
        # 1. submit
        body = {"payload": {}, "worker_types": ["mock"], "max_attempts": 1}
        batch = 1000
        t0 = time.perf_counter()
        done = 0
        while done < jobs:
            n = min(batch, jobs - done)
            client.submit_many([body] * n)
            done += n
            progress("submit", done, jobs)
        submit_s = time.perf_counter() - t0
        # 2. end to end, one worker started after the enqueue
        t_start = time.perf_counter()
        with running(worker_cmd, workdir / "worker.log"):
            first_done_at: float | None = None
            completed = 0
            while completed < jobs:
                time.sleep(0.02)
                counts = client.stats()["jobs_by_status"]
                completed = counts["completed"] + counts["failed"]
                if completed and first_done_at is None:
                    first_done_at = time.perf_counter()
                    first_count = completed
                progress("run", completed, jobs)
            t_end = time.perf_counter()
            e2e = jobs / (t_end - t_start)
            assert first_done_at is not None
            steady_time = t_end - first_done_at
            steady = (jobs - first_count) / steady_time if steady_time > 0 else e2e
            # 3. latency on an idle, long-polling worker
            latencies: list[float] = []
            for i in range(latency_samples):
                time.sleep(0.005)  # let the worker go back to its long-poll
                job = client.submit({}, worker_types=["mock"], max_attempts=1)
                final = client.wait(job["id"], 10)
                if final["started_at"]:
                    latencies.append(
                        (_epoch(final["started_at"]) - _epoch(final["created_at"])) * 1000
                    )
                progress("latency", i + 1, latency_samples)
    latencies.sort()
    p99_index = min(len(latencies) - 1, int(len(latencies) * 0.99))
    return BenchResult(
        jobs=jobs,
        submit_jobs_per_s=jobs / submit_s,
        e2e_jobs_per_s=e2e,
        steady_jobs_per_s=steady,
        latency_p50_ms=statistics.median(latencies) if latencies else float("nan"),
        latency_p99_ms=latencies[p99_index] if latencies else float("nan"),
        latency_samples=len(latencies),
    )


def run(
    *,
    database: str | None,
    jobs: int,
    concurrency: int,
    latency_samples: int,
    repeat: int,
    progress: Callable[[str, int, int], None] = lambda *a: None,
) -> tuple[list[BenchResult], BenchResult]:
    """``repeat`` runs on fresh databases and their per-figure medians."""
    results = []
    with tempfile.TemporaryDirectory(prefix="blixard-bench-") as tmp:
        for _ in range(repeat):
            results.append(
                run_once(
                    database=database,
                    jobs=jobs,
                    concurrency=concurrency,
                    latency_samples=latency_samples,
                    workdir=Path(tmp),
                    progress=progress,
                )
            )
    median = BenchResult(
        jobs=jobs,
        **{
            key: statistics.median(getattr(r, key) for r in results)
            for key in (
                "submit_jobs_per_s",
                "e2e_jobs_per_s",
                "steady_jobs_per_s",
                "latency_p50_ms",
                "latency_p99_ms",
            )
        },
        latency_samples=sum(r.latency_samples for r in results),
    )
    return results, median


def machine() -> str:
    return f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"


@dataclass(frozen=True, slots=True)
class ClaimScaling:
    backlog: int
    claim_p50_ms: float
    claim_p99_ms: float


async def _claim_latency(
    database: str, backlog: int, samples: int, progress: Callable[[str, int, int], None]
) -> ClaimScaling:
    """Claim (and complete) one job at a time from a backlog of ``backlog`` pending jobs,
    straight through the store: the cost of the claim query itself as the queue grows."""
    from blixard.domain.jobs import JobSpec, NewJob
    from blixard.domain.reports import Report, ReportKind
    from blixard.domain.workers import Resources, WorkerSpec
    from blixard.ids import new_ids
    from blixard.storage.base import ClaimRequest
    from blixard.storage.urls import store_from_url

    store = store_from_url(database)
    await store.open()
    try:
        now = time.time()
        spec = JobSpec.build({}, worker_types=["mock"], max_attempts=1)
        done, batch = 0, 5000
        while done < backlog + samples:
            n = min(batch, backlog + samples - done)
            await store.insert_jobs([NewJob(i, spec, now, now) for i in new_ids(n)])
            done += n
            progress(f"fill {backlog:,}", done, backlog + samples)
        worker = WorkerSpec(
            id="bench",
            worker_type="mock",
            name="bench",
            concurrency=1,
            resources=Resources(cpu=1, memory_mb=1024),
        )
        await store.register_worker(worker, now)
        request = ClaimRequest("bench", 1, 60.0)
        timings = []
        for i in range(samples):
            t0 = time.perf_counter()
            (job,) = await store.claim_jobs(request, time.time())
            timings.append((time.perf_counter() - t0) * 1000)
            await store.apply_reports(
                "bench", [Report(job.id, job.attempt, ReportKind.COMPLETED)], time.time()
            )
            progress(f"claims {backlog:,}", i + 1, samples)
    finally:
        await store.close()
    timings.sort()
    return ClaimScaling(
        backlog,
        statistics.median(timings),
        timings[min(len(timings) - 1, int(len(timings) * 0.99))],
    )


def claim_scaling(
    *,
    database: str | None,
    backlogs: list[int],
    samples: int,
    progress: Callable[[str, int, int], None] = lambda *a: None,
) -> list[ClaimScaling]:
    out = []
    with tempfile.TemporaryDirectory(prefix="blixard-bench-") as tmp:
        for backlog in backlogs:
            with fresh_database(database, Path(tmp), backlog) as db:
                out.append(asyncio.run(_claim_latency(db, backlog, samples, progress)))
    return out
