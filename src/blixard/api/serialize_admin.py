"""Queues, tenants and groups to the administration API's JSON shapes (schemas_admin.py)."""

from __future__ import annotations

from typing import Any

from blixard.api.serialize import iso
from blixard.storage.base import GroupSummary, QueueInfo, TenantInfo


def _iso_or_none(t: float) -> str | None:
    return iso(t) if t > 0 else None


def queue_dict(info: QueueInfo, now: float) -> dict[str, Any]:
    q = info.queue
    rate = q.rate
    return {
        "name": q.name,
        "paused": q.paused,
        "max_running": q.max_running,
        "rate_limit": None if rate is None else {"limit": rate.limit, "period_s": rate.period_s},
        "rate_tokens": None
        if rate is None
        else round(rate.refill(q.rate_tokens, q.rate_updated_at, now), 3),
        "running": info.running,
        "jobs_by_status": info.jobs_by_status,
        "oldest_pending_at": iso(info.oldest_pending_at),
        "created_at": _iso_or_none(q.created_at),
        "updated_at": _iso_or_none(q.updated_at),
    }


def tenant_dict(info: TenantInfo) -> dict[str, Any]:
    t = info.tenant
    return {
        "name": t.name,
        "weight": t.weight,
        "max_running": t.max_running,
        "running": info.running,
        "jobs_by_status": info.jobs_by_status,
        "oldest_pending_at": iso(info.oldest_pending_at),
        "created_at": _iso_or_none(t.created_at),
        "updated_at": _iso_or_none(t.updated_at),
    }


def group_dict(s: GroupSummary) -> dict[str, Any]:
    return {
        "id": s.group_id,
        "status": str(s.status),
        "total": s.total,
        "jobs_by_status": s.jobs_by_status,
        "created_at": iso(s.created_at),
        "updated_at": iso(s.updated_at),
        "finished_at": iso(s.finished_at),
    }
