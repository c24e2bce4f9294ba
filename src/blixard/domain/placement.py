"""Placement: which job fits which worker, given what the worker already runs, and why a
job fits no live worker at all (the unschedulable diagnosis)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from blixard.domain.constraints import LabelConstraint, Op, allowed
from blixard.domain.jobs import Requirements
from blixard.domain.workers import Worker, WorkerStatus


@dataclass(slots=True)
class Capacity:
    """What a worker has free right now; ``take`` books a job's share of it."""

    slots: int
    cpu: float
    memory_mb: int
    gpu: int

    def fits(self, req: Requirements) -> bool:
        return (
            self.slots >= 1
            and req.cpu <= self.cpu + 1e-9
            and req.memory_mb <= self.memory_mb
            and req.gpu <= self.gpu
        )

    def take(self, req: Requirements) -> None:
        self.slots -= 1
        self.cpu -= req.cpu
        self.memory_mb -= req.memory_mb
        self.gpu -= req.gpu


def type_matches(job_types: Sequence[str], worker_type: str) -> bool:
    """An empty list means any worker type may run the job."""
    return not job_types or worker_type in job_types


def labels_match(required: Mapping[str, str], worker_labels: Mapping[str, str]) -> bool:
    return all(worker_labels.get(k) == val for k, val in required.items())


def free_capacity(
    *,
    concurrency: int,
    cpu: float,
    memory_mb: int,
    gpu: int,
    running: int,
    used_cpu: float,
    used_memory_mb: int,
    used_gpu: int,
    limit: int,
) -> Capacity:
    return Capacity(
        slots=max(0, min(limit, concurrency - running)),
        cpu=cpu - used_cpu,
        memory_mb=memory_mb - used_memory_mb,
        gpu=gpu - used_gpu,
    )


# The unschedulable diagnosis ---------------------------------------------------------------


def could_ever_run(job_types: Sequence[str], req: Requirements, worker: Worker) -> bool:
    """Whether ``worker``, idle, could run the job: type, labels, constraints and total
    resources (what it runs now does not count: that only makes the job wait)."""
    return (
        type_matches(job_types, worker.worker_type)
        and labels_match(req.labels, worker.labels)
        and allowed(req.constraints, worker.labels)
        and req.cpu <= worker.resources.cpu + 1e-9
        and req.memory_mb <= worker.resources.memory_mb
        and req.gpu <= worker.resources.gpu
    )


def _types(job_types: Sequence[str]) -> str:
    return " or ".join(job_types)


def _matching(job_types: Sequence[str], req: Requirements) -> str:
    labelled = bool(req.labels or req.constraints)
    if job_types and labelled:
        return "online worker of a matching type and labels"
    if job_types:
        return "online worker of a matching type"
    if labelled:
        return "online worker with matching labels"
    return "online worker"


def _nobody(c: LabelConstraint, where: str) -> str:
    """The reason when no worker meets constraint ``c``."""
    values = ",".join(c.values)
    match c.op:
        case Op.EQ:
            return f"no online worker{where} has label {c.label}={values}"
        case Op.IN:
            return f"no online worker{where} has label {c.label} in {values}"
        case Op.EXISTS:
            return f"no online worker{where} has label {c.label}"
        case Op.NE | Op.NOT_IN:
            shown = f"={values}" if len(c.values) == 1 else f" in {values}"
            return f"every online worker{where} has label {c.label}{shown}"
        case Op.NOT_EXISTS:
            return f"every online worker{where} has label {c.label}"


def _label_reason(job_types: Sequence[str], req: Requirements, workers: Sequence[Worker]) -> str:
    where = f" of type {_types(job_types)}" if job_types else ""
    for key, value in sorted(req.labels.items()):
        if not any(w.labels.get(key) == value for w in workers):
            return f"no online worker{where} has label {key}={value}"
    for c in req.constraints:
        if not any(c.allows(w.labels) for w in workers):
            return _nobody(c, where)
    wanted = [f"{k}={v}" for k, v in sorted(req.labels.items())]
    wanted += [c.describe() for c in req.constraints]
    return f"no online worker{where} meets all of: {'; '.join(wanted)}"


def _resource_reason(job_types: Sequence[str], req: Requirements, workers: Sequence[Worker]) -> str:
    which = _matching(job_types, req)
    cpu = max(w.resources.cpu for w in workers)
    if req.cpu > cpu + 1e-9:
        return f"needs {req.cpu:g} cpu; the largest {which} has {cpu:g}"
    memory = max(w.resources.memory_mb for w in workers)
    if req.memory_mb > memory:
        return f"needs {req.memory_mb} MB of memory; the largest {which} has {memory} MB"
    gpu = max(w.resources.gpu for w in workers)
    if req.gpu > gpu:
        return f"needs {req.gpu} gpu; the largest {which} has {gpu}"
    return (
        f"needs {req.cpu:g} cpu, {req.memory_mb} MB of memory and {req.gpu} gpu together; "
        f"no {which} has them all"
    )


def unschedulable_reason(
    job_types: Sequence[str], req: Requirements, workers: Iterable[Worker]
) -> str | None:
    """Why no online worker could ever run a job of these worker types and requirements,
    or None when one could (it may still wait for free capacity or a limit). The reason
    names the first filter that leaves nothing: worker type, then labels and constraints,
    then total cpu, memory and gpu."""
    online = [w for w in workers if w.status is WorkerStatus.ONLINE]
    if any(could_ever_run(job_types, req, w) for w in online):
        return None
    if not online:
        return "no worker is online"
    typed = [w for w in online if type_matches(job_types, w.worker_type)]
    if not typed:
        return f"no online worker of type {_types(job_types)}"
    labelled = [
        w
        for w in typed
        if labels_match(req.labels, w.labels) and allowed(req.constraints, w.labels)
    ]
    if not labelled:
        return _label_reason(job_types, req, typed)
    return _resource_reason(job_types, req, labelled)
