"""SQLite: what arriving and ending jobs do to queues, tenants and dependants.

Functions over an open write transaction (the driver's single writer); the decisions come
from ``domain.dependencies``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence

import orjson

from blixard.domain.dependencies import Dependant, initial_state, plan_dependants
from blixard.domain.jobs import NewJob
from blixard.domain.states import JobStatus
from blixard.errors import ValidationError
from blixard.storage import sqlfiles

Q = sqlfiles.queries("blixard.storage.sqlite")


def _ids(values: Iterable[str]) -> str:
    return orjson.dumps(list(values)).decode()


def ensure_queues_and_tenants(conn: sqlite3.Connection, jobs: Sequence[NewJob]) -> None:
    """Queues and tenants exist from their first job on."""
    now = jobs[0].created_at if jobs else 0.0
    ensure_names(conn, {j.spec.queue for j in jobs}, {j.spec.tenant for j in jobs}, now)


def ensure_names(
    conn: sqlite3.Connection, queues: Iterable[str], tenants: Iterable[str], now: float = 0.0
) -> None:
    conn.executemany(Q["ensure_queue"], [(q, now, now) for q in sorted(queues)])
    conn.executemany(Q["ensure_tenant"], [(t, now, now) for t in sorted(tenants)])


def link_parents(
    conn: sqlite3.Connection,
    job: NewJob,
    field: str,
    batch: Mapping[str, tuple[str, JobStatus]],
) -> tuple[JobStatus, int, dict[str, object] | None]:
    """Mark the job's parents (stored or earlier in ``batch``: id -> (tenant, status)) and
    decide its first status. ValidationError names a parent that is not in the tenant."""
    parents = job.spec.depends_on
    found = {
        r[0]: (r[1], JobStatus(r[2])) for r in conn.execute(Q["mark_parents"], (_ids(parents),))
    }
    statuses: dict[str, JobStatus] = {}
    for i, parent in enumerate(parents):
        tenant_status = found.get(parent) or batch.get(parent)
        if parent == job.id or tenant_status is None or tenant_status[0] != job.spec.tenant:
            raise ValidationError(
                f"{field}[{i}]", f"no job {parent!r} in tenant {job.spec.tenant!r}"
            )
        statuses[parent] = tenant_status[1]
    return initial_state(statuses, job.spec.on_parent_failure)


def insert_links(conn: sqlite3.Connection, job: NewJob) -> None:
    """After the job's row: one link per parent."""
    conn.executemany(Q["insert_dependency"], [(job.id, p) for p in job.spec.depends_on])


def settle_dependants(
    conn: sqlite3.Connection, ended: Mapping[str, JobStatus], now: float
) -> list[str]:
    """The parents in ``ended`` ended: release or cancel their blocked dependants, and the
    dependants of those cancelled in turn. The ids of the jobs that changed."""
    changed: list[str] = []
    while ended:
        dependants = [
            Dependant(r[0], r[1], r[2]) for r in conn.execute(Q["dependants_of"], (_ids(ended),))
        ]
        plan = plan_dependants(ended, dependants)
        for job_id, count in plan.released.items():
            row = conn.execute(
                Q["release_dependant"], {"id": job_id, "ended": count, "now": now}
            ).fetchone()
            if row is not None and row[0] == "pending":
                changed.append(job_id)
        next_ended: dict[str, JobStatus] = {}
        for job_id, error in plan.cancelled.items():
            row = conn.execute(
                Q["cancel_dependant"],
                {"id": job_id, "error": orjson.dumps(error).decode(), "now": now},
            ).fetchone()
            if row is not None:
                changed.append(job_id)
                if row[0]:
                    next_ended[job_id] = JobStatus.CANCELLED
        ended = next_ended
    return changed
