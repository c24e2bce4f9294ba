"""Rows of the PostgreSQL schema to domain objects and back, in one place.

jsonb columns arrive already decoded (the pool registers an orjson codec on every
connection); ``text[]`` arrives as a list. Batches go out as parallel arrays for unnest().
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from asyncpg import Record

from blixard.domain.constraints import (
    constraints_to_json,
    parse_constraints,
    parse_preferences,
    preferences_to_json,
)
from blixard.domain.jobs import NO_REQUIREMENTS, Attempt, Job, NewJob, Requirements
from blixard.domain.reports import AttemptRecord, JobState
from blixard.domain.retry import Backoff
from blixard.domain.states import JobStatus
from blixard.domain.workers import Resources, Worker, WorkerSpec, WorkerStatus
from blixard.errors import ValidationError

# jsonb cannot hold U+0000 (and PostgreSQL text cannot either). A "\u0000" escape in JSON
# text, not preceded by an odd number of backslashes (which would make it literal text).
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def encode_jsonb(value: Any) -> bytes:
    """The binary jsonb wire format: a version byte (1) and the JSON text."""
    return b"\x01" + orjson.dumps(value)


def decode_jsonb(data: bytes) -> Any:
    return orjson.loads(memoryview(data)[1:])


def has_nul(text: str) -> bool:
    return "\\u0000" in text and _NUL_ESCAPE.search(text) is not None


def check_storable(field: str, text: str) -> str:
    """JSON text a client sent: refuse what jsonb cannot store, naming the field."""
    if has_nul(text):
        raise ValidationError(field, "must not contain the NUL character (\\u0000)")
    return text


def storable(text: str) -> str:
    """JSON text an agent reported (results, errors): NUL becomes U+FFFD rather than
    making the report impossible to store."""
    return _NUL_ESCAPE.sub(r"\1\\ufffd", text) if has_nul(text) else text


def dumps(value: Any) -> str:
    return storable(orjson.dumps(value).decode())


def dumps_or_none(value: Any) -> str | None:
    return None if value is None else dumps(value)


def text_array(values: Sequence[str]) -> str:
    """A PostgreSQL array literal (cast to text[] in SQL): one text value per batch row."""
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(quoted) + "}"


_BACKOFF_CACHE: dict[tuple[tuple[str, Any], ...], Backoff] = {}


def _backoff(data: Mapping[str, Any]) -> Backoff:
    key = tuple(sorted(data.items()))
    found = _BACKOFF_CACHE.get(key)
    if found is None:
        found = Backoff.from_dict(dict(data))
        if len(_BACKOFF_CACHE) < 256:
            _BACKOFF_CACHE[key] = found
    return found


def _requirements(
    cpu: float, memory_mb: int, gpu: int, labels: dict[str, str], constraints: list[Any]
) -> Requirements:
    if not cpu and not memory_mb and not gpu and not labels and not constraints:
        return NO_REQUIREMENTS
    return Requirements(
        cpu=cpu,
        memory_mb=memory_mb,
        gpu=gpu,
        labels=labels,
        constraints=parse_constraints("constraints", constraints) if constraints else (),
    )


def job_from_row(r: Record) -> Job:
    types = r["worker_types"]
    return Job(
        id=r["id"],
        queue=r["queue"],
        tenant=r["tenant"],
        payload=r["payload"],
        worker_types=tuple(types) if types else (),
        requirements=_requirements(
            r["req_cpu"], r["req_memory_mb"], r["req_gpu"], r["req_labels"], r["req_constraints"]
        ),
        preferences=parse_preferences("preferences", r["preferences"]) if r["preferences"] else (),
        priority=r["priority"],
        run_at=r["run_at"],
        max_attempts=r["max_attempts"],
        backoff=_backoff(r["backoff"]),
        timeout_s=r["timeout_s"],
        idempotency_key=r["idempotency_key"],
        status=JobStatus(r["status"]),
        attempt=r["attempt"],
        claimed_by=r["claimed_by"],
        claimed_at=r["claimed_at"],
        lease_expires_at=r["lease_expires_at"],
        started_at=r["started_at"],
        finished_at=r["finished_at"],
        result=r["result"],
        error=r["error"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        concurrency_key=r["concurrency_key"],
        concurrency_limit=r["concurrency_limit"],
        depends_on=tuple(r["depends_on"]) if r["depends_on"] else (),
        on_parent_failure=r["on_parent_failure"],
        deps_pending=r["deps_pending"],
        group_id=r["group_id"],
        step=r["step"],
        schedule_id=r["schedule_id"],
    )


def job_state(r: Record) -> JobState:
    return JobState(
        r["id"],
        JobStatus(r["status"]),
        r["claimed_by"],
        r["attempt"],
        r["max_attempts"],
        _backoff(r["backoff"]),
        r["claimed_at"],
        r["started_at"],
        has_dependants=r["has_dependants"],
    )


def new_jobs_params(
    jobs: Sequence[NewJob],
    firsts: Mapping[str, tuple[JobStatus, int, dict[str, Any] | None]] | None = None,
) -> tuple[list[Any], ...]:
    """The 29 parallel arrays of ``insert_jobs``; ``firsts``: a job's first status, parents
    still running and error (jobs with parents), else pending."""
    cols: tuple[list[Any], ...] = tuple([] for _ in range(29))
    (ids, queues, tenants, payloads, types, cpus, mems, gpus, labels) = cols[:9]
    (priorities, run_ats, max_attempts, backoffs, timeouts, keys, created) = cols[9:16]
    (constraints, prefs, ckeys, climits, groups, steps, schedules, parents) = cols[16:24]
    (on_failure, statuses, waiting, errors, finished) = cols[24:]
    for job in jobs:
        s = job.spec
        req = s.requirements
        ids.append(job.id)
        queues.append(s.queue)
        tenants.append(s.tenant)
        payloads.append(check_storable("payload", s.payload_json))
        types.append(text_array(s.worker_types))
        cpus.append(req.cpu)
        mems.append(req.memory_mb)
        gpus.append(req.gpu)
        labels.append(
            "{}"
            if not req.labels
            else check_storable("requirements.labels", orjson.dumps(dict(req.labels)).decode())
        )
        priorities.append(s.priority)
        run_ats.append(job.run_at)
        max_attempts.append(s.max_attempts)
        backoffs.append(orjson.dumps(s.backoff.to_dict()).decode())
        timeouts.append(s.timeout_s)
        keys.append(s.idempotency_key)
        created.append(job.created_at)
        constraints.append(dumps(constraints_to_json(req.constraints)) if req.constraints else "[]")
        prefs.append(dumps(preferences_to_json(s.preferences)) if s.preferences else "[]")
        ckeys.append(s.concurrency_key)
        climits.append(s.concurrency_limit)
        groups.append(s.group_id)
        steps.append(s.step)
        schedules.append(s.schedule_id)
        parents.append(text_array(s.depends_on))
        on_failure.append(s.on_parent_failure)
        status, pending_parents, error = (firsts or {}).get(job.id, (JobStatus.PENDING, 0, None))
        statuses.append(str(status))
        waiting.append(pending_parents)
        errors.append(dumps_or_none(error))
        finished.append(job.created_at if status.terminal else None)
    return cols


def attempts_params(attempts: Sequence[AttemptRecord] | Sequence[Attempt]) -> tuple[list[Any], ...]:
    """The 8 parallel arrays of ``insert_attempts`` and ``import_attempts``: a planned
    attempt and a stored one have the same fields."""
    return (
        [a.job_id for a in attempts],
        [a.attempt for a in attempts],
        [a.worker_id for a in attempts],
        [a.claimed_at for a in attempts],
        [a.started_at for a in attempts],
        [a.finished_at for a in attempts],
        [a.outcome for a in attempts],
        [dumps_or_none(a.error) for a in attempts],
    )


def attempt_from_row(r: Record) -> Attempt:
    return Attempt(
        job_id=r["job_id"],
        attempt=r["attempt"],
        worker_id=r["worker_id"],
        claimed_at=r["claimed_at"],
        started_at=r["started_at"],
        finished_at=r["finished_at"],
        outcome=r["outcome"],
        error=r["error"],
    )


def worker_from_row(r: Record) -> Worker:
    """A worker row joined with its usage (running, used_cpu, used_memory_mb, used_gpu)."""
    return Worker(
        id=r["id"],
        worker_type=r["worker_type"],
        name=r["name"],
        concurrency=r["concurrency"],
        resources=Resources(cpu=r["cpu"], memory_mb=r["memory_mb"], gpu=r["gpu"]),
        labels=r["labels"],
        capabilities=r["capabilities"],
        host=r["host"],
        pid=r["pid"],
        version=r["version"],
        status=WorkerStatus(r["status"]),
        registered_at=r["registered_at"],
        last_seen_at=r["last_seen_at"],
        running=r["running"],
        used=Resources(
            cpu=float(r["used_cpu"]), memory_mb=int(r["used_memory_mb"]), gpu=int(r["used_gpu"])
        ),
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
        dict(spec.labels),
        dict(spec.capabilities),
        spec.host,
        spec.pid,
        spec.version,
        now,
    )


def jobs_params(jobs: Sequence[Job]) -> tuple[list[Any], ...]:
    """The 36 parallel arrays of ``import_jobs``: every column of a stored job but the
    private deadline and the dependants flag, for a verbatim copy."""
    cols: tuple[list[Any], ...] = tuple([] for _ in range(36))
    for j in jobs:
        req = j.requirements
        values = (
            j.id,
            j.queue,
            j.tenant,
            check_storable(f"payload of job {j.id}", orjson.dumps(j.payload).decode()),
            text_array(j.worker_types),
            req.cpu,
            req.memory_mb,
            req.gpu,
            orjson.dumps(dict(req.labels)).decode(),
            j.priority,
            j.run_at,
            j.max_attempts,
            orjson.dumps(j.backoff.to_dict()).decode(),
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
            dumps(constraints_to_json(req.constraints)),
            dumps(preferences_to_json(j.preferences)),
            j.concurrency_key,
            j.concurrency_limit,
            j.group_id,
            j.step,
            j.schedule_id,
            text_array(j.depends_on),
            j.on_parent_failure,
            j.deps_pending,
        )
        for col, value in zip(cols, values, strict=True):
            col.append(value)
    return cols


def full_workers_params(workers: Sequence[Worker]) -> tuple[list[Any], ...]:
    """The 15 parallel arrays of ``import_workers``."""
    return (
        [w.id for w in workers],
        [w.worker_type for w in workers],
        [w.name for w in workers],
        [w.concurrency for w in workers],
        [w.resources.cpu for w in workers],
        [w.resources.memory_mb for w in workers],
        [w.resources.gpu for w in workers],
        [dumps(dict(w.labels)) for w in workers],
        [dumps(dict(w.capabilities)) for w in workers],
        [w.host for w in workers],
        [w.pid for w in workers],
        [w.version for w in workers],
        [str(w.status) for w in workers],
        [w.registered_at for w in workers],
        [w.last_seen_at for w in workers],
    )
