"""PostgreSQL: what arriving and ending jobs do to queues, tenants and dependants.

Functions over the caller's transaction; the decisions come from ``domain.dependencies``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from blixard.domain.dependencies import Dependant, initial_state, plan_dependants
from blixard.domain.jobs import NewJob
from blixard.domain.states import JobStatus
from blixard.errors import ValidationError
from blixard.storage import sqlfiles
from blixard.storage.postgres import rows

if TYPE_CHECKING:
    from blixard.storage.postgres.driver import Conn

Q = sqlfiles.queries("blixard.storage.postgres")

First = tuple[JobStatus, int, dict[str, Any] | None]


async def ensure_names(conn: Conn, jobs: Sequence[NewJob]) -> None:
    """Queues and tenants exist from their first job on."""
    await conn.execute(
        Q["ensure_names"],
        sorted({j.spec.queue for j in jobs}),
        sorted({j.spec.tenant for j in jobs}),
        jobs[0].created_at,
    )


async def first_states(conn: Conn, jobs: Sequence[NewJob]) -> dict[str, First]:
    """Each job with parents: its first status, from its parents' (stored, or earlier in
    the batch). ValidationError names a parent that is not in the job's tenant."""
    stored_parents = sorted({p for j in jobs for p in j.spec.depends_on})
    found = {
        r["id"]: (r["tenant"], JobStatus(r["status"]))
        for r in await conn.fetch(Q["mark_parents"], stored_parents)
    }
    batch: dict[str, tuple[str, JobStatus]] = {}
    out: dict[str, First] = {}
    single = len(jobs) == 1
    for index, job in enumerate(jobs):
        status: JobStatus = JobStatus.PENDING
        if job.spec.depends_on:
            statuses: dict[str, JobStatus] = {}
            for i, parent in enumerate(job.spec.depends_on):
                known = batch.get(parent) or found.get(parent)
                if parent == job.id or known is None or known[0] != job.spec.tenant:
                    where = "depends_on" if single else f"jobs[{index}].depends_on"
                    raise ValidationError(
                        f"{where}[{i}]", f"no job {parent!r} in tenant {job.spec.tenant!r}"
                    )
                statuses[parent] = known[1]
            out[job.id] = initial_state(statuses, job.spec.on_parent_failure)
            status = out[job.id][0]
        batch[job.id] = (job.spec.tenant, status)
    return out


async def link(conn: Conn, jobs: Sequence[NewJob], created: set[str]) -> None:
    pairs = [(j.id, p) for j in jobs if j.id in created for p in j.spec.depends_on]
    if pairs:
        await conn.execute(Q["insert_dependencies"], [c for c, _ in pairs], [p for _, p in pairs])
        # Parents from this batch did not exist yet when the stored ones were marked.
        batch = {j.id for j in jobs}
        fresh = sorted({p for _, p in pairs if p in batch})
        if fresh:
            await conn.execute(Q["mark_parents"], fresh)


async def settle_dependants(conn: Conn, ended: Mapping[str, JobStatus], now: float) -> list[str]:
    """The parents in ``ended`` ended: release or cancel their blocked dependants, and the
    dependants of those cancelled in turn. The ids of the jobs that changed."""
    changed: list[str] = []
    while ended:
        dependants = [
            Dependant(r["job_id"], r["parent_id"], r["on_parent_failure"])
            for r in await conn.fetch(Q["dependants_of"], list(ended))
        ]
        plan = plan_dependants(ended, dependants)
        if plan.released:
            released = await conn.fetch(
                Q["release_dependants"],
                list(plan.released),
                list(plan.released.values()),
                now,
            )
            changed += [r["id"] for r in released if r["status"] == "pending"]
        next_ended: dict[str, JobStatus] = {}
        if plan.cancelled:
            cancelled = await conn.fetch(
                Q["cancel_dependants"],
                list(plan.cancelled),
                [rows.dumps(e) for e in plan.cancelled.values()],
                now,
            )
            for r in cancelled:
                changed.append(r["id"])
                if r["has_dependants"]:
                    next_ended[r["id"]] = JobStatus.CANCELLED
        ended = next_ended
    return changed
