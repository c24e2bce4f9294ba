"""The hot SQLite queries walk their indexes: no full scan of the jobs table.

Checked with EXPLAIN QUERY PLAN on a database with rows in every state, so the planner has
real statistics to choose from.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from blixard.domain.jobs import JobSpec, NewJob
from blixard.ids import new_id
from blixard.storage.sqlite import SqliteStore
from blixard.storage.sqlite.driver import Q


@pytest.fixture
async def db(tmp_path: Path) -> sqlite3.Connection:
    path = tmp_path / "plans.db"
    store = SqliteStore(str(path), rng=random.Random(1))
    await store.open()
    jobs = [
        NewJob(new_id(), JobSpec.build({"i": i}, priority=i % 5), float(i), float(i))
        for i in range(2000)
    ]
    await store.insert_jobs(jobs)
    await store.close()
    conn = sqlite3.connect(path)
    conn.execute("ANALYZE")
    return conn


def plan(conn: sqlite3.Connection, sql: str, params: object) -> str:
    rows = conn.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()  # type: ignore[arg-type]
    return "\n".join(str(r[3]) for r in rows)


CLAIM_PARAMS = {
    "tenant": "default",
    "labels": '{"zone": "eu"}',
    "blocked_queues": '["paused"]',
    "busy_keys": '{"repo-1": 1}',
    "now": 1e12,
    "worker_type": "process",
    "cpu": 4.0,
    "memory_mb": 1000,
    "gpu": 0,
    "scan": 64,
    "after_priority": None,
    "after_run_at": None,
    "after_id": None,
}


@pytest.mark.parametrize(
    ("query", "params", "index"),
    [
        ("claim_candidates", CLAIM_PARAMS, "jobs_claimable"),
        ("next_due", (), "jobs_pending_due"),
        ("expired_leases", (1e12, 100), "jobs_leases"),
        ("worker_usage", ("w1",), "jobs_by_worker"),
        ("active_by_tenant_queue", (), "jobs_active_by_tenant"),
        ("pending_tenants", (), "jobs_claimable"),
        ("active_by_key", ('["repo-1"]',), "jobs_active_by_key"),
        ("stats_oldest_pending", (), "jobs_by_status"),
        (
            "list_jobs_one_status",
            {
                "one_status": "failed",
                "queue": None,
                "tenant": None,
                "worker_type": None,
                "group_id": None,
                "before": None,
                "limit": 50,
            },
            "jobs_by_status",
        ),
    ],
)
async def test_hot_queries_use_their_index(
    db: sqlite3.Connection, query: str, params: object, index: str
) -> None:
    text = plan(db, Q[query], params)
    assert index in text, text
    assert "SCAN jobs\n" not in text + "\n", text  # a bare SCAN is a full table scan


async def test_claim_orders_by_the_index_without_a_sort(db: sqlite3.Connection) -> None:
    text = plan(db, Q["claim_candidates"], CLAIM_PARAMS)
    assert "TEMP B-TREE" not in text, text
