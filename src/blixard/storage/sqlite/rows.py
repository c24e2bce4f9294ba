"""Rows of the SQLite schema to domain objects and back, in one place."""

from __future__ import annotations

from typing import Any

import orjson

from blixard.domain.constraints import (
    Preference,
    constraints_to_json,
    parsed_json,
    preferences_to_json,
)
from blixard.domain.jobs import NO_REQUIREMENTS, Attempt, Job, NewJob, Requirements
from blixard.domain.reports import JobState
from blixard.domain.retry import Backoff
from blixard.domain.states import JobStatus
from blixard.domain.workers import Resources, Worker, WorkerSpec, WorkerStatus

# The column order of the jobs table (migration 0002 rebuilt it); ``SELECT *`` rows are
# read by these positions.
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
    "req_constraints",
    "preferences",
    "priority",
    "run_at",
    "max_attempts",
    "backoff",
    "timeout_s",
    "idempotency_key",
    "concurrency_key",
    "concurrency_limit",
    "group_id",
    "step",
    "schedule_id",
    "depends_on",
    "on_parent_failure",
    "deps_pending",
    "has_dependants",
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
STATUS = JOB_COLUMNS.index("status")
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


_REQUIREMENTS: dict[tuple[float, int, int, str, str], Requirements] = {}


def requirements(
    cpu: float, memory_mb: int, gpu: int, labels: str, constraints: str = "[]"
) -> Requirements:
    if not cpu and not memory_mb and not gpu and labels == "{}" and constraints == "[]":
        return NO_REQUIREMENTS
    key = (cpu, memory_mb, gpu, labels, constraints)
    found = _REQUIREMENTS.get(key)
    if found is None:
        found = _requirements(cpu, memory_mb, gpu, labels, constraints)
        if len(_REQUIREMENTS) < 1024:
            _REQUIREMENTS[key] = found
    return found


def _requirements(
    cpu: float, memory_mb: int, gpu: int, labels: str, constraints: str
) -> Requirements:
    return Requirements(
        cpu=cpu,
        memory_mb=memory_mb,
        gpu=gpu,
        labels=_loads(labels),
        constraints=parsed_json(constraints, "[]")[0] if constraints != "[]" else (),
    )


def labels(text: str) -> dict[str, str]:
    return {} if text == "{}" else dict(_loads(text))


def preferences(text: str) -> tuple[Preference, ...]:
    return () if text == "[]" else parsed_json("[]", text)[1]


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
        requirements=requirements(r[5], r[6], r[7], r[8], r[9]),
        preferences=preferences(r[10]),
        priority=r[11],
        run_at=r[12],
        max_attempts=r[13],
        backoff=backoff(r[14]),
        timeout_s=r[15],
        idempotency_key=r[16],
        concurrency_key=r[17],
        concurrency_limit=r[18],
        group_id=r[19],
        step=r[20],
        schedule_id=r[21],
        depends_on=tuple(_loads(r[22])) if r[22] != "[]" else (),
        on_parent_failure=r[23],
        deps_pending=r[24],
        status=JobStatus(r[26]),
        attempt=r[27],
        claimed_by=r[28],
        claimed_at=r[29],
        lease_expires_at=r[30],
        started_at=r[32],
        finished_at=r[33],
        result=None if r[34] is None else _loads(r[34]),
        error=None if r[35] is None else _loads(r[35]),
        created_at=r[36],
        updated_at=r[37],
    )


def job_state(r: tuple[Any, ...]) -> JobState:
    """What a report or an expiry decides on, from a full jobs row (deadline included)."""
    return JobState(
        id=r[0],
        status=JobStatus(r[26]),
        claimed_by=r[28],
        attempt=r[27],
        max_attempts=r[13],
        backoff=backoff(r[14]),
        claimed_at=r[29],
        started_at=r[32],
        deadline_at=r[31],
        has_dependants=bool(r[25]),
    )


def has_dependants(r: tuple[Any, ...]) -> bool:
    return bool(r[25])


def new_job_params(
    job: NewJob, status: JobStatus, deps_pending: int, error: dict[str, Any] | None
) -> tuple[Any, ...]:
    """The insert_job parameters; ``status`` and ``deps_pending`` come from the parents."""
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
        dumps(constraints_to_json(req.constraints)) if req.constraints else "[]",
        dumps(preferences_to_json(s.preferences)) if s.preferences else "[]",
        s.priority,
        job.run_at,
        s.max_attempts,
        dumps(s.backoff.to_dict()),
        s.timeout_s,
        s.idempotency_key,
        s.concurrency_key,
        s.concurrency_limit,
        s.group_id,
        s.step,
        s.schedule_id,
        dumps(list(s.depends_on)) if s.depends_on else "[]",
        s.on_parent_failure,
        deps_pending,
        str(status),
        job.created_at if status.terminal else None,
        dumps_or_none(error),
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
    """Every column of a stored job but the private deadline and the dependants flag, for a
    verbatim copy (import_job)."""
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
        dumps(constraints_to_json(req.constraints)),
        dumps(preferences_to_json(j.preferences)),
        j.priority,
        j.run_at,
        j.max_attempts,
        dumps(j.backoff.to_dict()),
        j.timeout_s,
        j.idempotency_key,
        j.concurrency_key,
        j.concurrency_limit,
        j.group_id,
        j.step,
        j.schedule_id,
        dumps(list(j.depends_on)),
        j.on_parent_failure,
        j.deps_pending,
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
