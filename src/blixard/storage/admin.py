"""What both drivers share for queues, tenants and groups, without I/O: applying a partial
update, whether it may let waiting work run, and assembling results from counted rows."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from blixard.domain.groups import aggregate_status
from blixard.domain.jobs import Requirements
from blixard.domain.queues import Queue, RateLimit, Tenant
from blixard.domain.states import JobStatus
from blixard.storage.base import (
    UNSET,
    GroupSummary,
    PendingShape,
    QueueInfo,
    TenantInfo,
    Unset,
)

MAX_SHAPES = 1000
"""The pending-shape query returns at most this many shapes, the most common first."""

Counted = Iterable[tuple[str, str, int]]
"""Rows of (name, status, count)."""

_S = TypeVar("_S")  # a Queue or a Tenant
_I = TypeVar("_I")  # its QueueInfo or TenantInfo


def empty_counts() -> dict[str, int]:
    return {str(s): 0 for s in JobStatus}


def updated_queue(
    old: Queue,
    *,
    paused: bool | None,
    max_running: int | Unset | None,
    rate: RateLimit | Unset | None,
    now: float,
) -> Queue:
    """``old`` with the given settings changed; a rate limit set starts with a full
    bucket, a rate limit removed leaves an empty one."""
    new = dataclasses.replace(old, updated_at=now)
    if paused is not None:
        new = dataclasses.replace(new, paused=paused)
    if max_running is not UNSET:
        new = dataclasses.replace(new, max_running=max_running)
    if rate is not UNSET:
        tokens, at = (float(rate.limit), now) if rate is not None else (0.0, 0.0)
        new = dataclasses.replace(new, rate=rate, rate_tokens=tokens, rate_updated_at=at)
    return new


def updated_tenant(
    old: Tenant, *, weight: float | None, max_running: int | Unset | None, now: float
) -> Tenant:
    new = dataclasses.replace(old, updated_at=now)
    if weight is not None:
        new = dataclasses.replace(new, weight=weight)
    if max_running is not UNSET:
        new = dataclasses.replace(new, max_running=max_running)
    return new


def _raised(old: int | None, new: int | None) -> bool:
    if old is None:
        return False
    return new is None or new > old


def queue_loosened(old: Queue, new: Queue) -> bool:
    """Whether waiting jobs of the queue may be claimable now and were not: it resumed, or
    (not paused) its cap went up or away, or its rate limit was set anew (a full bucket) or
    removed."""
    if new.paused:
        return False
    rate_changed = new.rate != old.rate or new.rate_updated_at != old.rate_updated_at
    return (
        old.paused
        or _raised(old.max_running, new.max_running)
        or (old.rate is not None and rate_changed)
    )


def tenant_loosened(old: Tenant, new: Tenant) -> bool:
    return _raised(old.max_running, new.max_running)


def _counts_by_name(counted: Counted) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for name, status, count in counted:
        out.setdefault(name, empty_counts())[status] = count
    return out


def queue_infos(
    queues: Mapping[str, Queue], counted: Counted, oldest: Iterable[tuple[str, float]]
) -> list[QueueInfo]:
    """One QueueInfo per queue that has a row or jobs (a queue with jobs but no row, from a
    copied database, shows the default settings), by name."""
    return _infos(queues, counted, oldest, Queue, QueueInfo)


def tenant_infos(
    tenants: Mapping[str, Tenant], counted: Counted, oldest: Iterable[tuple[str, float]]
) -> list[TenantInfo]:
    """One TenantInfo per tenant that has a row or jobs, as ``queue_infos``."""
    return _infos(tenants, counted, oldest, Tenant, TenantInfo)


def _infos(
    settings: Mapping[str, _S],
    counted: Counted,
    oldest: Iterable[tuple[str, float]],
    default: Callable[[str], _S],
    info: Callable[[_S, dict[str, int], float | None], _I],
) -> list[_I]:
    """Per name with settings or jobs, by name: its settings (``default(name)`` if it has
    no row), its counts by status and when its oldest pending job was created."""
    counts = _counts_by_name(counted)
    first = dict(oldest)
    names = sorted(set(settings) | set(counts))
    return [
        info(settings.get(n) or default(n), counts.get(n) or empty_counts(), first.get(n))
        for n in names
    ]


def group_summary(
    group_id: str, rows: Iterable[tuple[str, int, float, float, float | None]]
) -> GroupSummary | None:
    """From rows of (status, count, first created, last updated, last finished)."""
    counts = empty_counts()
    created: list[float] = []
    updated: list[float] = []
    finished: list[float] = []
    for name, count, created_min, updated_max, finished_max in rows:
        counts[name] = count
        created.append(created_min)
        updated.append(updated_max)
        if finished_max is not None:
            finished.append(finished_max)
    status = aggregate_status(counts)
    if status is None:
        return None
    return GroupSummary(
        group_id=group_id,
        status=status,
        jobs_by_status=counts,
        total=sum(counts.values()),
        created_at=min(created),
        updated_at=max(updated),
        finished_at=max(finished) if status.terminal and finished else None,
    )


def _shape_key(types: Sequence[str], req: Requirements) -> tuple[Any, ...]:
    constraints = tuple(sorted((c.label, str(c.op), c.values) for c in req.constraints))
    return (
        tuple(types),
        req.cpu,
        req.memory_mb,
        req.gpu,
        tuple(sorted(req.labels.items())),
        constraints,
    )


def merge_shapes(items: Iterable[tuple[Sequence[str], Requirements, int]]) -> list[PendingShape]:
    """Shapes from rows, merging those that differ only in how their JSON was written (the
    order of labels or constraints); most common first."""
    merged: dict[tuple[Any, ...], PendingShape] = {}
    for types, req, count in items:
        key = _shape_key(types, req)
        seen = merged.get(key)
        merged[key] = PendingShape(
            tuple(types), req, count + (seen.count if seen is not None else 0)
        )
    return sorted(merged.values(), key=lambda s: -s.count)
