"""PostgreSQL: the claim. Locks the worker and the limits that need exact counts, fetches
each tenant's claimable jobs (locked SKIP LOCKED) a page at a time, lets
``domain.admission`` choose, and marks the chosen jobs claimed, in one transaction. See
queries/claims.sql for the lock order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from asyncpg import Record

from blixard.domain.admission import (
    MAX_ROUNDS,
    Admission,
    Candidate,
    LimitState,
    Paging,
    merge_pages,
)
from blixard.domain.constraints import LabelConstraint, Preference, parsed_json
from blixard.domain.jobs import NO_REQUIREMENTS, Job, Requirements
from blixard.domain.placement import free_capacity
from blixard.domain.queues import Queue, RateLimit, Tenant
from blixard.domain.workers import WorkerStatus
from blixard.errors import WorkerNotFound
from blixard.storage import sqlfiles
from blixard.storage.base import ClaimRequest
from blixard.storage.postgres import rows
from blixard.storage.postgres.locks import stable_key

if TYPE_CHECKING:
    from blixard.storage.postgres.driver import Conn

Q = sqlfiles.queries("blixard.storage.postgres")
UNAVAILABLE = 1 << 30  # the running count of a key this claim could not lock


def _limits(ctx: Mapping[str, Any], now: float) -> LimitState:
    queues: dict[str, Queue] = {}
    tokens: dict[str, float] = {}
    for name, paused, max_running, rate_limit, period, rtokens, rupdated in ctx["queues"]:
        rate = RateLimit(rate_limit, period) if rate_limit is not None else None
        queues[name] = Queue(name, paused, max_running, rate, rtokens, rupdated)
        if rate is not None:
            tokens[name] = rate.refill(rtokens, rupdated, now)
    tenants = {
        name: Tenant(name, weight=weight, max_running=max_running, served_at=served_at)
        for name, weight, max_running, served_at in ctx["tenants"]
    }
    tenant_running: dict[str, int] = {}
    queue_running: dict[str, int] = {}
    for tenant, queue, count in ctx["active"]:
        tenant_running[tenant] = tenant_running.get(tenant, 0) + count
        queue_running[queue] = queue_running.get(queue, 0) + count
    return LimitState(
        queues=queues,
        queue_running=queue_running,
        tokens=tokens,
        tenants=tenants,
        tenant_running=tenant_running,
    )


def _candidate(r: Record) -> Candidate:
    constraints_json, prefs_json = r["req_constraints"], r["preferences"]
    constraints: tuple[LabelConstraint, ...] = ()
    prefs: tuple[Preference, ...] = ()
    if constraints_json != "[]" or prefs_json != "[]":
        constraints, prefs = parsed_json(constraints_json, prefs_json)
    cpu, mem, gpu = r["req_cpu"], r["req_memory_mb"], r["req_gpu"]
    if not (cpu or mem or gpu or constraints):
        req = NO_REQUIREMENTS
    else:
        req = Requirements(cpu=cpu, memory_mb=mem, gpu=gpu, constraints=constraints)
    return Candidate(
        id=r["id"],
        tenant=r["tenant"],
        queue=r["queue"],
        priority=r["priority"],
        run_at=r["run_at"],
        requirements=req,
        preferences=prefs,
        concurrency_key=r["concurrency_key"],
        concurrency_limit=r["concurrency_limit"],
    )


async def claim(conn: Conn, request: ClaimRequest, now: float, scope: str) -> list[Job]:
    """In the caller's transaction. ``scope`` keeps advisory keys apart per schema."""
    found = await conn.fetchval(Q["claim_context"], request.worker_id)
    if found is None:
        raise WorkerNotFound(request.worker_id)
    wrow: dict[str, Any] = found["worker"]
    ctx: dict[str, Any] = found["context"]
    if wrow["status"] != WorkerStatus.ONLINE or request.limit <= 0:
        return []
    capacity = free_capacity(
        concurrency=wrow["concurrency"],
        cpu=wrow["cpu"],
        memory_mb=wrow["memory_mb"],
        gpu=wrow["gpu"],
        running=ctx["running"],
        used_cpu=ctx["used_cpu"],
        used_memory_mb=ctx["used_memory_mb"],
        used_gpu=ctx["used_gpu"],
        limit=request.limit,
    )
    if capacity.slots <= 0:
        return []
    limits = _limits(ctx, now)
    labels: dict[str, str] = wrow["labels"]
    admission = Admission(capacity, labels, limits)
    admission.add_key_hints((key, n) for key, n in ctx["busy_keys"])
    await _choose(conn, admission, limits, wrow, now, scope, ctx["any_preferring"])
    if not admission.chosen:
        return []
    spent = [
        (name, limits.tokens[name] - used)
        for name, used in sorted(admission.tokens_used().items())
        if limits.queues[name].rate is not None
    ]
    served = sorted(admission.served) if admission.contended else []
    claim = (admission.chosen, request.worker_id, request.lease_ttl_s, now)
    if spent or served:
        found = await conn.fetch(
            Q["claim_and_account"], *claim, [n for n, _ in spent], [t for _, t in spent], served
        )
    else:  # the usual claim: nothing to account for, a statement that plans faster
        found = await conn.fetch(Q["claim"], *claim)
    order = {job_id: i for i, job_id in enumerate(admission.chosen)}
    jobs = sorted((rows.job_from_row(r) for r in found), key=lambda j: order[j.id])
    return await _with_parent_results(conn, jobs)


async def _choose(
    conn: Conn,
    admission: Admission,
    limits: LimitState,
    worker: Mapping[str, Any],
    now: float,
    scope: str,
    any_preferring: bool,
) -> None:
    paging = Paging.start(limits, admission.capacity.slots)
    after = paging.after
    keys_known: set[str] = set()
    seen: set[str] = set()
    labels = dict(worker["labels"])
    for round_ in range(MAX_ROUNDS):
        tenants, page_size = paging.tenants, paging.page_size
        if admission.done or not tenants:
            return
        cap = admission.capacity
        busy = admission.busy_keys()
        filters = (
            now,
            worker["worker_type"],
            labels,
            cap.cpu + 1e-9,
            cap.memory_mb,
            cap.gpu,
            admission.blocked_queues(),
            list(busy),
            page_size,
            list(busy.values()),
        )
        found = await conn.fetch(
            Q["claim_candidates"],
            tenants,
            [after[t][0] for t in tenants],
            [after[t][1] for t in tenants],
            [after[t][2] for t in tenants],
            *filters,
        )
        pages: dict[str, list[Candidate]] = {t: [] for t in tenants}
        fetched: dict[str, int] = dict.fromkeys(tenants, 0)
        for r in found:
            fetched[r["tenant"]] += 1
            after[r["tenant"]] = (r["priority"], r["run_at"], r["id"])
            if r["id"] not in seen:
                pages[r["tenant"]].append(_candidate(r))
        if round_ == 0 and any_preferring:
            preferring: dict[str, list[Candidate]] = {}
            for r in await conn.fetch(Q["claim_preferring"], tenants, *filters):
                preferring.setdefault(r["tenant"], []).append(_candidate(r))
            for tenant, extra in preferring.items():
                pages[tenant] = merge_pages(pages[tenant], extra)
        for page in pages.values():
            seen.update(c.id for c in page)
        keys = {c.concurrency_key for p in pages.values() for c in p if c.concurrency_key}
        await _count_keys(conn, admission, sorted(keys - keys_known), scope, wait=round_ == 0)
        keys_known |= keys
        exhausted = admission.offer(pages)
        full = {t for t in tenants if fetched[t] == page_size}
        paging.next_round(full, exhausted, pages)


async def _count_keys(
    conn: Conn, admission: Admission, keys: Sequence[str], scope: str, *, wait: bool
) -> None:
    """Lock the keys (so no other claim counts them meanwhile), then count their running
    jobs in a later statement, which sees every claim that committed before the lock.

    Only the first round waits for its locks, taken in key order; keys met in later rounds
    are only tried (a claim holding first-round keys must not wait for keys another claim
    holds: that one may be waiting for ours). A key held elsewhere is skipped this time."""
    if not keys:
        return
    lock_ids = [stable_key("key", scope, k) for k in keys]
    if wait:
        await conn.fetchval(Q["lock_keys"], lock_ids)
        locked = list(keys)
    else:
        got = await conn.fetch(Q["try_lock_keys"], lock_ids)
        held = {r[0] for r in got if r[1]}
        locked = [k for k, lock_id in zip(keys, lock_ids, strict=True) if lock_id in held]
        admission.add_key_counts({k: UNAVAILABLE for k in keys if k not in locked})
    if not locked:
        return
    counts: dict[str, int] = {r[0]: r[1] for r in await conn.fetch(Q["active_by_key"], locked)}
    admission.add_key_counts({k: counts.get(k, 0) for k in locked})


async def _with_parent_results(conn: Conn, jobs: list[Job]) -> list[Job]:
    with_parents = [j.id for j in jobs if j.depends_on]
    if not with_parents:
        return jobs
    results: dict[str, dict[str, Any]] = {}
    for job_id, parent_id, step, result in await conn.fetch(Q["parent_results"], with_parents):
        results.setdefault(job_id, {})[step or parent_id] = result
    return [replace(j, parent_results=results.get(j.id, {})) if j.depends_on else j for j in jobs]
