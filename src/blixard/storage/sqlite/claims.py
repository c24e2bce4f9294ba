"""SQLite: the claim. Reads the worker, its free capacity and the limits, fetches each
tenant's claimable jobs a page at a time, lets ``domain.admission`` choose, and marks the
chosen jobs claimed, all inside the single writer's transaction (so counts are exact)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import orjson

from blixard.domain.admission import (
    MAX_ROUNDS,
    Admission,
    Candidate,
    LimitState,
    Paging,
    merge_pages,
)
from blixard.domain.jobs import Job
from blixard.domain.placement import free_capacity
from blixard.domain.queues import Queue, RateLimit, Tenant
from blixard.domain.workers import Worker, WorkerStatus
from blixard.errors import WorkerNotFound
from blixard.storage import sqlfiles
from blixard.storage.base import ClaimRequest
from blixard.storage.sqlite import rows

Q = sqlfiles.queries("blixard.storage.sqlite")


def _ids(values: Iterable[str]) -> str:
    return orjson.dumps(list(values)).decode()


def load_limits(conn: sqlite3.Connection, now: float) -> LimitState:
    queues: dict[str, Queue] = {}
    tokens: dict[str, float] = {}
    for name, paused, max_running, rate_limit, period, rtokens, rupdated in conn.execute(
        Q["restricted_queues"]
    ):
        rate = RateLimit(rate_limit, period) if rate_limit is not None else None
        queues[name] = Queue(name, bool(paused), max_running, rate, rtokens, rupdated)
        if rate is not None:
            tokens[name] = rate.refill(rtokens, rupdated, now)
    tenants = {
        r[0]: Tenant(r[0], weight=r[1], max_running=r[2], served_at=r[3])
        for r in conn.execute(Q["pending_tenants"])
    }
    tenant_running: dict[str, int] = {}
    queue_running: dict[str, int] = {}
    for tenant, queue, count in conn.execute(Q["active_by_tenant_queue"]):
        tenant_running[tenant] = tenant_running.get(tenant, 0) + count
        queue_running[queue] = queue_running.get(queue, 0) + count
    return LimitState(
        queues=queues,
        queue_running=queue_running,
        tokens=tokens,
        tenants=tenants,
        tenant_running=tenant_running,
    )


def _candidate(r: tuple[Any, ...]) -> Candidate:
    return Candidate(
        id=r[0],
        tenant=r[1],
        queue=r[2],
        priority=r[3],
        run_at=r[4],
        requirements=rows.requirements(r[5], r[6], r[7], "{}", r[9]),
        preferences=rows.preferences(r[10]),
        concurrency_key=r[11],
        concurrency_limit=r[12],
    )


def claim(conn: sqlite3.Connection, request: ClaimRequest, now: float) -> list[Job]:
    wrow = conn.execute(Q["get_worker"], (request.worker_id,)).fetchone()
    if wrow is None:
        raise WorkerNotFound(request.worker_id)
    worker = rows.worker_from_row(wrow)
    if worker.status is not WorkerStatus.ONLINE or request.limit <= 0:
        return []
    running, ucpu, umem, ugpu = conn.execute(Q["worker_usage"], (worker.id,)).fetchone()
    capacity = free_capacity(
        concurrency=worker.concurrency,
        cpu=worker.resources.cpu,
        memory_mb=worker.resources.memory_mb,
        gpu=worker.resources.gpu,
        running=running,
        used_cpu=ucpu,
        used_memory_mb=umem,
        used_gpu=ugpu,
        limit=request.limit,
    )
    if capacity.slots <= 0:
        return []
    limits = load_limits(conn, now)
    admission = Admission(capacity, worker.labels, limits)
    _choose(conn, worker, admission, limits, now)
    if not admission.chosen:
        return []
    claimed = conn.execute(
        Q["claim"],
        {
            "worker_id": worker.id,
            "now": now,
            "ttl": request.lease_ttl_s,
            "ids": _ids(admission.chosen),
        },
    ).fetchall()
    for name, used in admission.tokens_used().items():
        queue = limits.queues[name]
        if queue.rate is not None:
            conn.execute(Q["spend_tokens"], (limits.tokens[name] - used, now, name))
    served = sorted(admission.served) if admission.contended else []
    if served:
        conn.execute(Q["mark_served"], (now, _ids(served)))
    order = {job_id: i for i, job_id in enumerate(admission.chosen)}
    jobs = [rows.job_from_row(r) for r in claimed]
    jobs.sort(key=lambda j: order[j.id])
    return _with_parent_results(conn, jobs)


def _choose(
    conn: sqlite3.Connection,
    worker: Worker,
    admission: Admission,
    limits: LimitState,
    now: float,
) -> None:
    """Rounds of per-tenant pages until the worker is full or nothing more can fit."""
    paging = Paging.start(limits, admission.capacity.slots)
    after = paging.after
    key_counts_loaded: set[str] = set()
    seen: set[str] = set()
    admission.add_key_hints((r[0], r[1]) for r in conn.execute(Q["busy_keys"]))
    labels = rows.dumps(dict(worker.labels))
    for round_ in range(MAX_ROUNDS):
        tenants, page_size = paging.tenants, paging.page_size
        if admission.done or not tenants:
            return
        cap = admission.capacity
        params: dict[str, Any] = {
            "now": now,
            "worker_type": worker.worker_type,
            "labels": labels,
            "cpu": cap.cpu + 1e-9,
            "memory_mb": cap.memory_mb,
            "gpu": cap.gpu,
            "blocked_queues": _ids(admission.blocked_queues()),
            "busy_keys": rows.dumps(admission.busy_keys()),
            "scan": page_size,
        }
        pages: dict[str, list[Candidate]] = {}
        full: set[str] = set()
        for tenant in tenants:
            found = conn.execute(
                Q["claim_candidates"],
                {
                    **params,
                    "tenant": tenant,
                    "after_priority": after[tenant][0],
                    "after_run_at": after[tenant][1],
                    "after_id": after[tenant][2],
                },
            ).fetchall()
            if found:
                last = found[-1]
                after[tenant] = (last[3], last[4], last[0])
            if len(found) == page_size:
                full.add(tenant)
            page = [_candidate(r) for r in found if r[0] not in seen]
            if round_ == 0:
                preferring = conn.execute(
                    Q["claim_preferring"], {**params, "tenant": tenant}
                ).fetchall()
                page = merge_pages(page, [_candidate(r) for r in preferring])
            seen.update(c.id for c in page)
            pages[tenant] = page
        keys = {c.concurrency_key for p in pages.values() for c in p if c.concurrency_key}
        new_keys = sorted(keys - key_counts_loaded)
        if new_keys:
            counts = dict(conn.execute(Q["active_by_key"], (_ids(new_keys),)).fetchall())
            admission.add_key_counts({k: counts.get(k, 0) for k in new_keys})
            key_counts_loaded.update(new_keys)
        exhausted = admission.offer(pages)
        paging.next_round(full, exhausted, pages)


def _with_parent_results(conn: sqlite3.Connection, jobs: list[Job]) -> list[Job]:
    with_parents = [j.id for j in jobs if j.depends_on]
    if not with_parents:
        return jobs
    results: dict[str, dict[str, Any]] = {}
    for job_id, parent_id, step, result in conn.execute(Q["parent_results"], (_ids(with_parents),)):
        results.setdefault(job_id, {})[step or parent_id] = (
            None if result is None else orjson.loads(result)
        )
    return [replace(j, parent_results=results.get(j.id, {})) if j.depends_on else j for j in jobs]
