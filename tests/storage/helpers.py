"""Builders for the storage conformance suite: jobs, workers, reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from blixard.domain.jobs import Job, JobSpec, NewJob, Requirements
from blixard.domain.states import JobStatus
from blixard.domain.workers import Resources, Worker, WorkerSpec
from blixard.ids import new_id
from blixard.storage.base import ClaimRequest, Report, ReportKind, Store

TTL = 30.0


def spec(payload: Mapping[str, Any] | None = None, **kwargs: Any) -> JobSpec:
    return JobSpec.build(dict(payload) if payload is not None else {"n": 1}, **kwargs)


def new_job(now: float, payload: Mapping[str, Any] | None = None, **kwargs: Any) -> NewJob:
    s = spec(payload, **kwargs)
    return NewJob(id=new_id(), spec=s, created_at=now, run_at=s.run_at or now)


def req(
    cpu: float = 0.0, memory_mb: int = 0, gpu: int = 0, labels: Mapping[str, str] | None = None
) -> Requirements:
    return Requirements(cpu=cpu, memory_mb=memory_mb, gpu=gpu, labels=dict(labels or {}))


async def add_job(store: Store, now: float, **kwargs: Any) -> Job:
    (inserted,) = await store.insert_jobs([new_job(now, **kwargs)])
    assert inserted.created
    return inserted.job


async def add_jobs(store: Store, now: float, n: int, **kwargs: Any) -> list[Job]:
    inserted = await store.insert_jobs([new_job(now, {"i": i}, **kwargs) for i in range(n)])
    assert all(i.created for i in inserted)
    return [i.job for i in inserted]


def worker_spec(
    worker_id: str = "w1",
    *,
    worker_type: str = "process",
    concurrency: int = 4,
    cpu: float = 8.0,
    memory_mb: int = 16_384,
    gpu: int = 0,
    labels: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> WorkerSpec:
    return WorkerSpec(
        id=worker_id,
        worker_type=worker_type,
        name=f"{worker_id}-name",
        concurrency=concurrency,
        resources=Resources(cpu=cpu, memory_mb=memory_mb, gpu=gpu),
        labels=dict(labels or {}),
        **kwargs,
    )


async def add_worker(store: Store, now: float, worker_id: str = "w1", **kwargs: Any) -> Worker:
    return await store.register_worker(worker_spec(worker_id, **kwargs), now)


async def claim(
    store: Store, worker_id: str, now: float, limit: int = 10, ttl: float = TTL
) -> list[Job]:
    return await store.claim_jobs(ClaimRequest(worker_id, limit, ttl), now)


async def claim_one(store: Store, worker_id: str, now: float, ttl: float = TTL) -> Job:
    jobs = await claim(store, worker_id, now, limit=1, ttl=ttl)
    assert len(jobs) == 1, jobs
    return jobs[0]


def started(job: Job, started_at: float | None = None, attempt: int | None = None) -> Report:
    return Report(
        job.id,
        job.attempt if attempt is None else attempt,
        ReportKind.STARTED,
        started_at=started_at,
    )


def completed(
    job: Job, result: Any = None, started_at: float | None = None, attempt: int | None = None
) -> Report:
    return Report(
        job.id,
        job.attempt if attempt is None else attempt,
        ReportKind.COMPLETED,
        result=result,
        started_at=started_at,
    )


def failed(
    job: Job,
    error: dict[str, Any] | None = None,
    retryable: bool = True,
    attempt: int | None = None,
) -> Report:
    return Report(
        job.id,
        job.attempt if attempt is None else attempt,
        ReportKind.FAILED,
        error=error if error is not None else {"kind": "exit", "message": "exit code 1"},
        retryable=retryable,
    )


def invalid(status: JobStatus) -> str:
    """The reason a report on a job in ``status`` is rejected with (the guard's first check)."""
    return f"invalid_transition: {status}"


def ids(jobs: Sequence[Job]) -> list[str]:
    return [j.id for j in jobs]
