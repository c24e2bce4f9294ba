"""Rows of the SQLite schema to domain objects and back, in one place."""

from __future__ import annotations

from typing import Any

import orjson

from blixard.domain.jobs import NO_REQUIREMENTS, Attempt, Job, NewJob, Requirements
from blixard.domain.reports import JobState
from blixard.domain.retry import Backoff
from blixard.domain.states import JobStatus
from blixard.domain.workers import Resources, Worker, WorkerSpec, WorkerStatus

# The column order of the jobs table (migration 0001); later migrations append columns.
JOB_COLUMNS = (
    "id",
    "queue",
    "tenant",
    "payload",
    "worker_types",
    "req_cpu",
    "req_memory_mb",
    "req_gpu",
    "req_labels",
    "priority",
    "run_at",
    "max_attempts",
    "backoff",
    "timeout_s",
    "idempotency_key",
    "status",
    "attempt",
    "claimed_by",
    "claimed_at",
    "lease_expires_at",
    "deadline_at",
    "started_at",
    "finished_at",
    "result",
    "error",
    "created_at",
    "updated_at",
)
WORKER_COLUMNS = (
    "id",
    "worker_type",
    "name",
    "concurrency",
    "cpu",
    "memory_mb",
    "gpu",
    "labels",
    "capabilities",
    "host",
    "pid",
    "version",
    "status",
    "registered_at",
    "last_seen_at",
)

_loads = orjson.loads


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def dumps_or_none(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def requirements(cpu: float, memory_mb: int, gpu: int, labels: str) -> Requirements:
    if not cpu and not memory_mb and not gpu and labels == "{}":
        return NO_REQUIREMENTS
    return Requirements(cpu=cpu, memory_mb=memory_mb, gpu=gpu, labels=_loads(labels))


_BACKOFF_CACHE: dict[str, Backoff] = {}


def backoff(text: str) -> Backoff:
    found = _BACKOFF_CACHE.get(text)
    if found is None:
        found = Backoff.from_dict(_loads(text))
        if len(_BACKOFF_CACHE) < 256:
            _BACKOFF_CACHE[text] = found
    return found


def job_from_row(r: tuple[Any, ...]) -> Job:
    return Job(
        id=r[0],
        queue=r[1],
        tenant=r[2],
        payload=_loads(r[3]),
        worker_types=tuple(_loads(r[4])) if r[4] != "[]" else (),
        requirements=requirements(r[5], r[6], r[7], r[8]),
        priority=r[9],
        run_at=r[10],
        max_attempts=r[11],
        backoff=backoff(r[12]),
        timeout_s=r[13],
        idempotency_key=r[14],
        status=JobStatus(r[15]),
        attempt=r[16],
        claimed_by=r[17],
        claimed_at=r[18],
        lease_expires_at=r[19],
        started_at=r[21],
        finished_at=r[22],
        result=None if r[23] is None else _loads(r[23]),
        error=None if r[24] is None else _loads(r[24]),
        created_at=r[25],
        updated_at=r[26],
    )


def job_state(r: tuple[Any, ...]) -> JobState:
    """What a report or an expiry decides on, from a full jobs row (deadline included)."""
    return JobState(
        id=r[0],
        status=JobStatus(r[15]),
        claimed_by=r[17],
        attempt=r[16],
        max_attempts=r[11],
        backoff=backoff(r[12]),
        claimed_at=r[18],
        started_at=r[21],
        deadline_at=r[20],
    )


def new_job_params(job: NewJob) -> tuple[Any, ...]:
    s = job.spec
    req = s.requirements
    return (
        job.id,
        s.queue,
        s.tenant,
        s.payload_json,
        dumps(list(s.worker_types)),
        req.cpu,
        req.memory_mb,
        req.gpu,
        dumps(dict(req.labels)),
        s.priority,
        job.run_at,
        s.max_attempts,
        dumps(s.backoff.to_dict()),
        s.timeout_s,
        s.idempotency_key,
        job.created_at,
        job.created_at,
    )


def attempt_from_row(r: tuple[Any, ...]) -> Attempt:
    return Attempt(
        job_id=r[0],
        attempt=r[1],
        worker_id=r[2],
        claimed_at=r[3],
        started_at=r[4],
        finished_at=r[5],
        outcome=r[6],
        error=None if r[7] is None else _loads(r[7]),
    )


def worker_from_row(r: tuple[Any, ...], usage: tuple[Any, ...] | None = None) -> Worker:
    running, cpu, mem, gpu = usage if usage else (0, 0.0, 0, 0)
    return Worker(
        id=r[0],
        worker_type=r[1],
        name=r[2],
        concurrency=r[3],
        resources=Resources(cpu=r[4], memory_mb=r[5], gpu=r[6]),
        labels=_loads(r[7]),
        capabilities=_loads(r[8]),
        host=r[9],
        pid=r[10],
        version=r[11],
        status=WorkerStatus(r[12]),
        registered_at=r[13],
        last_seen_at=r[14],
        running=running,
        used=Resources(cpu=float(cpu), memory_mb=int(mem), gpu=int(gpu)),
    )


def worker_params(spec: WorkerSpec, now: float) -> tuple[Any, ...]:
    res = spec.resources
    return (
        spec.id,
        spec.worker_type,
        spec.name,
        spec.concurrency,
        res.cpu,
        res.memory_mb,
        res.gpu,
        dumps(dict(spec.labels)),
        dumps(dict(spec.capabilities)),
        spec.host,
        spec.pid,
        spec.version,
        now,
        now,
    )


def job_params(j: Job) -> tuple[Any, ...]:
    """Every column of a stored job but the private deadline, for a verbatim copy."""
    req = j.requirements
    return (
        j.id,
        j.queue,
        j.tenant,
        dumps(j.payload),
        dumps(list(j.worker_types)),
        req.cpu,
        req.memory_mb,
        req.gpu,
        dumps(dict(req.labels)),
        j.priority,
        j.run_at,
        j.max_attempts,
        dumps(j.backoff.to_dict()),
        j.timeout_s,
        j.idempotency_key,
        str(j.status),
        j.attempt,
        j.claimed_by,
        j.claimed_at,
        j.lease_expires_at,
        j.started_at,
        j.finished_at,
        dumps_or_none(j.result),
        dumps_or_none(j.error),
        j.created_at,
        j.updated_at,
    )


def attempt_params(a: Attempt) -> tuple[Any, ...]:
    return (
        a.job_id,
        a.attempt,
        a.worker_id,
        a.claimed_at,
        a.started_at,
        a.finished_at,
        a.outcome,
        dumps_or_none(a.error),
    )


def full_worker_params(w: Worker) -> tuple[Any, ...]:
    res = w.resources
    return (
        w.id,
        w.worker_type,
        w.name,
        w.concurrency,
        res.cpu,
        res.memory_mb,
        res.gpu,
        dumps(dict(w.labels)),
        dumps(dict(w.capabilities)),
        w.host,
        w.pid,
        w.version,
        str(w.status),
        w.registered_at,
        w.last_seen_at,
    )
