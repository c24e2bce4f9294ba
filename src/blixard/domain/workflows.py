"""Workflows: a DAG of named steps submitted as one. Pure: no I/O.

A workflow is a list of steps. Each step is a job submission (a ``JobSpec``) with a name,
the names of the steps it depends on (``depends_on``) and, optionally, ids of jobs that
already exist (``after``). Planning checks the graph (names valid and unique, every name
referenced is a step, no cycle) and turns it into jobs: one per step, in a topological
order (Kahn's algorithm; among the steps ready at once, the one given first goes first, so
steps already given in a valid order keep it), every job carrying its step name and the
workflow's group id, its ``depends_on`` mapped to the job ids of its parent steps followed
by its ``after`` ids. The jobs can then be inserted in one batch: each names only parents
that exist or come earlier in it.

Errors name the field: ``steps[3].name`` (an invalid or duplicate name),
``steps.deploy.depends_on[0]`` (an unknown step), ``steps`` for a cycle, with the cycle in
the message (``cycle a -> b -> a``, each step depending on the next) and in ``cycle``.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace

from blixard.domain import validation as v
from blixard.domain.jobs import MAX_PARENTS, JobSpec
from blixard.errors import ValidationError

MAX_STEPS = 1000
MAX_JOB_ID_CHARS = 64


@dataclass(frozen=True, slots=True)
class Step:
    """One step as submitted. ``spec.depends_on`` is ignored: a step's parents are the
    steps named in ``depends_on`` and the existing jobs in ``after``."""

    name: str
    spec: JobSpec
    depends_on: tuple[str, ...] = ()
    after: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PlannedStep:
    name: str
    job_id: str
    spec: JobSpec
    """With ``step``, ``group_id`` and ``depends_on`` (parent step job ids, then ``after``)."""
    parent_fields: tuple[str, ...]
    """For each entry of ``spec.depends_on``, where the step named it: ``depends_on[i]``
    or ``after[i]``."""


@dataclass(frozen=True, slots=True)
class WorkflowPlan:
    group_id: str
    steps: tuple[PlannedStep, ...]
    """In topological order: every step comes after all of its parents."""

    @property
    def specs(self) -> list[JobSpec]:
        return [s.spec for s in self.steps]


def _check_steps(steps: Sequence[Step], tenant: str, group_id: str) -> dict[str, int]:
    """Names valid and unique, one tenant and group, ``after`` ids well formed; returns
    name -> index."""
    index: dict[str, int] = {}
    for i, step in enumerate(steps):
        v.check_name(f"steps[{i}].name", step.name)
        if step.name in index:
            raise ValidationError(
                f"steps[{i}].name",
                f"duplicate step name {step.name!r} (also steps[{index[step.name]}])",
            )
        index[step.name] = i
        if step.spec.tenant != tenant:
            raise ValidationError(
                f"steps[{i}].tenant",
                f"must be the workflow's tenant {tenant!r}: a step's parents are in its tenant",
            )
    for i, step in enumerate(steps):
        if step.spec.group_id is not None and step.spec.group_id != group_id:
            raise ValidationError(
                f"steps[{i}].group_id", "the steps of a workflow share the workflow's group"
            )
        for j, job_id in enumerate(step.after):
            if not isinstance(job_id, str) or not 1 <= len(job_id) <= MAX_JOB_ID_CHARS:
                raise ValidationError(f"steps.{step.name}.after[{j}]", "must be a job id")
        if len(set(step.depends_on)) + len(set(step.after)) > MAX_PARENTS:
            raise ValidationError(f"steps.{step.name}", f"at most {MAX_PARENTS} parents")
    return index


def _parents(steps: Sequence[Step], index: Mapping[str, int]) -> list[dict[int, int]]:
    """Each step's parent steps: index -> where it was first named in ``depends_on``, in
    the order named."""
    out: list[dict[int, int]] = []
    for step in steps:
        parents: dict[int, int] = {}
        for j, name in enumerate(step.depends_on):
            found = index.get(name) if isinstance(name, str) else None
            if found is None:
                raise ValidationError(
                    f"steps.{step.name}.depends_on[{j}]", f"unknown step {name!r}"
                )
            parents.setdefault(found, j)
        out.append(parents)
    return out


def _find_cycle(parents: Sequence[Collection[int]], left: set[int]) -> list[int]:
    """A cycle among the steps ``left`` after Kahn's algorithm (each has a parent in
    ``left``): from the first of them, follow the first parent still left until a step
    repeats. The cycle starts at its step given first; each step depends on the next."""
    path: list[int] = []
    seen: dict[int, int] = {}
    node = min(left)
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = next(p for p in parents[node] if p in left)
    cycle = path[seen[node] :]
    start = cycle.index(min(cycle))
    cycle = cycle[start:] + cycle[:start]
    return [*cycle, cycle[0]]


def topological_order(parents: Sequence[Collection[int]]) -> tuple[list[int], list[int]]:
    """Kahn's algorithm over steps ``0..n-1`` with ``parents[i]`` the steps ``i`` depends
    on; among the steps ready at once, the lowest index goes first. Returns (the order,
    []) or, when there is a cycle, (the steps ordered before it stalled, the cycle: its
    steps from the lowest index, each depending on the next, the first repeated last)."""
    n = len(parents)
    children: list[list[int]] = [[] for _ in range(n)]
    waiting = [len(p) for p in parents]
    for child, ps in enumerate(parents):
        for p in ps:
            children[p].append(child)
    ready = [i for i in range(n) if waiting[i] == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        for child in children[node]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, child)
    if len(order) < n:
        return order, _find_cycle(parents, set(range(n)) - set(order))
    return order, []


def plan_workflow(
    steps: Sequence[Step],
    *,
    group_id: str,
    job_ids: Sequence[str],
    tenant: str | None = None,
) -> WorkflowPlan:
    """The jobs of a workflow, in topological order. ``job_ids`` (one per step) are given
    to the steps in that order, so time-ordered ids sort parents before children.
    ``tenant``: the workflow's (default: the first step's); every step must be in it."""
    if not steps:
        raise ValidationError("steps", "at least one step is required")
    if len(steps) > MAX_STEPS:
        raise ValidationError("steps", f"at most {MAX_STEPS} steps, got {len(steps)}")
    if len(job_ids) != len(steps):
        raise ValueError(f"{len(steps)} steps need as many job ids, got {len(job_ids)}")
    v.check_name("group_id", group_id)
    index = _check_steps(steps, steps[0].spec.tenant if tenant is None else tenant, group_id)
    parents = _parents(steps, index)
    order, cycle = topological_order(parents)
    if cycle:
        names = [steps[i].name for i in cycle]
        raise ValidationError(
            "steps", f"cycle {' -> '.join(names)} (each step depends on the next)", cycle=names
        )
    ids = {node: job_ids[k] for k, node in enumerate(order)}
    planned: list[PlannedStep] = []
    for node in order:
        step = steps[node]
        depends_on = {ids[p]: f"depends_on[{j}]" for p, j in parents[node].items()}
        for j, job_id in enumerate(step.after):
            depends_on.setdefault(job_id, f"after[{j}]")
        spec = replace(step.spec, step=step.name, group_id=group_id, depends_on=tuple(depends_on))
        planned.append(PlannedStep(step.name, ids[node], spec, tuple(depends_on.values())))
    return WorkflowPlan(group_id, tuple(planned))


_JOB_FIELD = re.compile(r"^jobs\[(\d+)\]\.(.+)$")
_PARENT_FIELD = re.compile(r"^depends_on\[(\d+)\](.*)$")


def step_field(plan: WorkflowPlan, field: str) -> str:
    """A field named by the store for the batch of a plan's jobs (``jobs[4].depends_on[2]``,
    or ``depends_on[2]`` for a batch of one) in the workflow's terms
    (``steps.deploy.after[0]``); other fields unchanged."""
    matched = _JOB_FIELD.match(field)
    if matched:
        position, rest = int(matched.group(1)), matched.group(2)
    elif len(plan.steps) == 1:
        position, rest = 0, field
    else:
        return field
    if position >= len(plan.steps):
        return field
    step = plan.steps[position]
    parent = _PARENT_FIELD.match(rest)
    if parent and int(parent.group(1)) < len(step.parent_fields):
        rest = step.parent_fields[int(parent.group(1))] + parent.group(2)
    return f"steps.{step.name}.{rest}"
