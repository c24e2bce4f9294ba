"""Jobs: what a client submits (JobSpec), and what the store keeps (Job, Attempt)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from blixard.domain import validation as v
from blixard.domain.constraints import LabelConstraint, Preference
from blixard.domain.retry import DEFAULT_BACKOFF, Backoff
from blixard.domain.states import JobStatus
from blixard.errors import ValidationError

MAX_ATTEMPTS_LIMIT = 1000
MAX_PARENTS = 1000
MAX_CONCURRENCY_LIMIT = 1_000_000
ON_PARENT_FAILURE = ("cancel", "run")
MAX_TIMEOUT_S = 30 * 86_400
PRIORITY_RANGE = (-1_000_000, 1_000_000)
DEFAULT_MAX_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Requirements:
    """What a job needs from the worker that runs it: resources, exact label matches
    (``labels``) and other label constraints (``constraints``: ne, in, exists, ...)."""

    cpu: float = 0.0
    memory_mb: int = 0
    gpu: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    constraints: tuple[LabelConstraint, ...] = ()

    def validate(self) -> Requirements:
        """Raise ValidationError naming the field; done once, at submission."""
        v.check_range("requirements.cpu", self.cpu, 0, 100_000)
        v.check_range("requirements.memory_mb", self.memory_mb, 0, 1 << 40)
        v.check_range("requirements.gpu", self.gpu, 0, 1024)
        v.check_labels("requirements.labels", self.labels)
        return self

    @property
    def empty(self) -> bool:
        return not (self.cpu or self.memory_mb or self.gpu or self.labels or self.constraints)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cpu": self.cpu,
            "memory_mb": self.memory_mb,
            "gpu": self.gpu,
            "labels": dict(self.labels),
            "constraints": [c.to_dict() for c in self.constraints],
        }


NO_REQUIREMENTS = Requirements()


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A validated submission. ``payload_json`` is the payload's canonical JSON text."""

    payload_json: str
    queue: str = "default"
    tenant: str = "default"
    worker_types: tuple[str, ...] = ()
    requirements: Requirements = NO_REQUIREMENTS
    priority: int = 0
    run_at: float | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff: Backoff = DEFAULT_BACKOFF
    timeout_s: float | None = None
    idempotency_key: str | None = None
    concurrency_key: str | None = None
    concurrency_limit: int | None = None
    depends_on: tuple[str, ...] = ()
    on_parent_failure: str = "cancel"
    group_id: str | None = None
    step: str | None = None
    schedule_id: str | None = None
    preferences: tuple[Preference, ...] = ()

    @classmethod
    def build(
        cls,
        payload: Any,
        *,
        queue: str = "default",
        tenant: str = "default",
        worker_types: Sequence[str] = (),
        requirements: Requirements | None = None,
        priority: int = 0,
        run_at: float | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff: Backoff | None = None,
        timeout_s: float | None = None,
        idempotency_key: str | None = None,
        concurrency_key: str | None = None,
        concurrency_limit: int | None = None,
        depends_on: Sequence[str] = (),
        on_parent_failure: str = "cancel",
        group_id: str | None = None,
        step: str | None = None,
        schedule_id: str | None = None,
        preferences: Sequence[Preference] = (),
        max_payload_bytes: int = v.DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> JobSpec:
        v.check_name("queue", queue)
        v.check_name("tenant", tenant)
        types = tuple(dict.fromkeys(worker_types))  # de-duplicated, order kept
        for i, wt in enumerate(types):
            v.check_name(f"worker_types[{i}]", wt)
        v.check_range("priority", priority, *PRIORITY_RANGE)
        if not isinstance(priority, int):
            raise ValidationError("priority", "must be an integer")
        v.check_range("max_attempts", max_attempts, 1, MAX_ATTEMPTS_LIMIT)
        if not isinstance(max_attempts, int):
            raise ValidationError("max_attempts", "must be an integer")
        if timeout_s is not None:
            v.check_range("timeout_s", timeout_s, 0.001, MAX_TIMEOUT_S)
        if run_at is not None:
            v.check_range("run_at", run_at, 0, 32_503_680_000)  # year 3000
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= v.IDEMPOTENCY_KEY_MAX:
            raise ValidationError(
                "idempotency_key", f"must be 1-{v.IDEMPOTENCY_KEY_MAX} characters"
            )
        if concurrency_key is not None:
            if not 1 <= len(concurrency_key) <= v.IDEMPOTENCY_KEY_MAX:
                raise ValidationError(
                    "concurrency_key", f"must be 1-{v.IDEMPOTENCY_KEY_MAX} characters"
                )
            concurrency_limit = 1 if concurrency_limit is None else concurrency_limit
        if concurrency_limit is not None:
            if concurrency_key is None:
                raise ValidationError("concurrency_limit", "needs a concurrency_key")
            if isinstance(concurrency_limit, bool) or not isinstance(concurrency_limit, int):
                raise ValidationError("concurrency_limit", "must be an integer")
            v.check_range("concurrency_limit", concurrency_limit, 1, MAX_CONCURRENCY_LIMIT)
        parents = tuple(dict.fromkeys(depends_on))
        if len(parents) > MAX_PARENTS:
            raise ValidationError("depends_on", f"at most {MAX_PARENTS} parents")
        for i, parent in enumerate(parents):
            if not isinstance(parent, str) or not 1 <= len(parent) <= 64:
                raise ValidationError(f"depends_on[{i}]", "must be a job id")
        if on_parent_failure not in ON_PARENT_FAILURE:
            raise ValidationError("on_parent_failure", "must be 'cancel' or 'run'")
        if group_id is not None:
            v.check_name("group_id", group_id)
        if step is not None:
            v.check_name("step", step)
        return cls(
            payload_json=v.encode_payload(payload, max_payload_bytes),
            queue=queue,
            tenant=tenant,
            worker_types=types,
            requirements=requirements.validate() if requirements else NO_REQUIREMENTS,
            priority=int(priority),
            run_at=run_at,
            max_attempts=int(max_attempts),
            backoff=backoff or DEFAULT_BACKOFF,
            timeout_s=timeout_s,
            idempotency_key=idempotency_key,
            concurrency_key=concurrency_key,
            concurrency_limit=concurrency_limit,
            depends_on=parents,
            on_parent_failure=on_parent_failure,
            group_id=group_id,
            step=step,
            schedule_id=schedule_id,
            preferences=tuple(preferences),
        )


@dataclass(frozen=True, slots=True)
class NewJob:
    """A spec with its id and times assigned, ready to insert."""

    id: str
    spec: JobSpec
    created_at: float
    run_at: float


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    queue: str
    tenant: str
    payload: dict[str, Any]
    worker_types: tuple[str, ...]
    requirements: Requirements
    priority: int
    run_at: float
    max_attempts: int
    backoff: Backoff
    timeout_s: float | None
    idempotency_key: str | None
    status: JobStatus
    attempt: int
    claimed_by: str | None
    claimed_at: float | None
    lease_expires_at: float | None
    started_at: float | None
    finished_at: float | None
    result: Any
    error: dict[str, Any] | None
    created_at: float
    updated_at: float
    concurrency_key: str | None = None
    concurrency_limit: int | None = None
    depends_on: tuple[str, ...] = ()
    on_parent_failure: str = "cancel"
    deps_pending: int = 0
    group_id: str | None = None
    step: str | None = None
    schedule_id: str | None = None
    preferences: tuple[Preference, ...] = ()
    # Filled by a claim for a job with parents: each parent's result, by step name (or id).
    parent_results: Mapping[str, Any] | None = None


def pending_job(
    new: NewJob,
    status: JobStatus = JobStatus.PENDING,
    deps_pending: int = 0,
    error: dict[str, Any] | None = None,
) -> Job:
    """The job a fresh submission becomes: pending (or blocked on parents, or cancelled
    because a parent already failed), no attempt yet."""
    s = new.spec
    return Job(
        id=new.id,
        queue=s.queue,
        tenant=s.tenant,
        payload=orjson.loads(s.payload_json),
        worker_types=s.worker_types,
        requirements=s.requirements,
        priority=s.priority,
        run_at=new.run_at,
        max_attempts=s.max_attempts,
        backoff=s.backoff,
        timeout_s=s.timeout_s,
        idempotency_key=s.idempotency_key,
        status=status,
        attempt=0,
        claimed_by=None,
        claimed_at=None,
        lease_expires_at=None,
        started_at=None,
        finished_at=new.created_at if status.terminal else None,
        result=None,
        error=error,
        created_at=new.created_at,
        updated_at=new.created_at,
        concurrency_key=s.concurrency_key,
        concurrency_limit=s.concurrency_limit,
        depends_on=s.depends_on,
        on_parent_failure=s.on_parent_failure,
        deps_pending=deps_pending,
        group_id=s.group_id,
        step=s.step,
        schedule_id=s.schedule_id,
        preferences=s.preferences,
    )


@dataclass(frozen=True, slots=True)
class Attempt:
    """One finished attempt of a job: who ran it, when, and how it ended."""

    job_id: str
    attempt: int
    worker_id: str | None
    claimed_at: float | None
    started_at: float | None
    finished_at: float
    outcome: str  # completed | failed | requeued | lease_expired | timeout | cancelled
    error: dict[str, Any] | None


def error_info(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    """The shape of every job error: a machine-readable kind, a message, optional details."""
    return {"kind": kind, "message": message, **extra}
