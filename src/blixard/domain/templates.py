"""Job templates: the submission a schedule fires, kept as JSON. Pure: no I/O.

A template is a validated ``JobSpec`` (the API builds it from the same request model as
``POST /jobs``) without what belongs to one fired job: its run time, idempotency key,
schedule id, parents, group and step. As JSON it has the shape of a submit request body
(``payload``, ``queue``, ``worker_types``, ``requirements``...), so what ``GET`` shows can
be submitted as it is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import orjson

from blixard.domain.constraints import parse_constraints, parse_preferences
from blixard.domain.jobs import NO_REQUIREMENTS, JobSpec, Requirements
from blixard.domain.retry import DEFAULT_BACKOFF, Backoff
from blixard.errors import ValidationError

PER_JOB_FIELDS = (
    "run_at",
    "idempotency_key",
    "schedule_id",
    "depends_on",
    "on_parent_failure",
    "group_id",
    "step",
)
"""JobSpec fields set for each fired job, never by the template."""

TEMPLATE_FIELDS = (
    "payload_json",
    "queue",
    "tenant",
    "worker_types",
    "requirements",
    "priority",
    "max_attempts",
    "backoff",
    "timeout_s",
    "concurrency_key",
    "concurrency_limit",
    "preferences",
)
"""JobSpec fields a template carries (``payload_json`` as ``payload``)."""

_DEFAULTS = JobSpec(payload_json="{}")


def check_template(spec: JobSpec, tenant: str, field: str = "job") -> JobSpec:
    """``spec`` as a template of ``tenant``'s schedule; ValidationError naming the field
    (``job.run_at``...) for what a template cannot carry."""
    if spec.tenant != tenant:
        raise ValidationError(
            f"{field}.tenant", f"must be the schedule's tenant {tenant!r}, got {spec.tenant!r}"
        )
    for f in dataclasses.fields(JobSpec):
        if f.name in TEMPLATE_FIELDS:
            continue
        if getattr(spec, f.name) != getattr(_DEFAULTS, f.name):
            why = (
                "is set for each fired job, not by the template"
                if f.name in PER_JOB_FIELDS
                else "is not supported in schedule templates yet"
            )
            raise ValidationError(f"{field}.{f.name}", why)
    return spec


def template_to_dict(spec: JobSpec) -> dict[str, Any]:
    """The JSON of a template: the shape of a submit request body."""
    return {
        "payload": orjson.loads(spec.payload_json),
        "queue": spec.queue,
        "tenant": spec.tenant,
        "worker_types": list(spec.worker_types),
        "requirements": spec.requirements.to_dict(),
        "priority": spec.priority,
        "max_attempts": spec.max_attempts,
        "backoff": spec.backoff.to_dict(),
        "timeout_s": spec.timeout_s,
        "concurrency_key": spec.concurrency_key,
        "concurrency_limit": spec.concurrency_limit,
        "preferences": [p.to_dict() for p in spec.preferences],
    }


def template_from_dict(data: Mapping[str, Any]) -> JobSpec:
    """A stored template back as a JobSpec (missing keys take the JobSpec defaults, so a
    template stored by an older version still loads)."""
    req = data.get("requirements") or {}
    requirements = Requirements(
        cpu=float(req.get("cpu", 0.0)),
        memory_mb=int(req.get("memory_mb", 0)),
        gpu=int(req.get("gpu", 0)),
        labels=dict(req.get("labels") or {}),
        constraints=parse_constraints("job.requirements.constraints", req.get("constraints")),
    )
    backoff = data.get("backoff")
    return JobSpec(
        payload_json=orjson.dumps(data["payload"]).decode(),
        queue=data.get("queue", _DEFAULTS.queue),
        tenant=data.get("tenant", _DEFAULTS.tenant),
        worker_types=tuple(data.get("worker_types") or ()),
        requirements=NO_REQUIREMENTS if requirements.empty else requirements,
        priority=int(data.get("priority", _DEFAULTS.priority)),
        max_attempts=int(data.get("max_attempts", _DEFAULTS.max_attempts)),
        backoff=Backoff.from_dict(dict(backoff)) if backoff else DEFAULT_BACKOFF,
        timeout_s=data.get("timeout_s"),
        concurrency_key=data.get("concurrency_key"),
        concurrency_limit=data.get("concurrency_limit"),
        preferences=parse_preferences("job.preferences", data.get("preferences")),
    )


def fired_spec(template: JobSpec, schedule_id: str, slot: float) -> JobSpec:
    """The job a schedule fires for ``slot``: the template, tagged with the schedule and
    the slot's idempotency key (which makes each slot fire once, whoever fires it)."""
    return dataclasses.replace(
        template, schedule_id=schedule_id, idempotency_key=slot_key(schedule_id, slot)
    )


def slot_key(schedule_id: str, slot: float) -> str:
    """``schedule:<schedule id>:<slot as integer epoch seconds>``."""
    return f"schedule:{schedule_id}:{int(slot)}"
