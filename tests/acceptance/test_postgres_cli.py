"""The command line against a real PostgreSQL: ``db migrate``, a server whose database is
unreachable, and ``db copy`` from a SQLite file that real jobs went through."""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from blixard.client import Client
from support.postgres import (
    pg_schema_url,
    schema_exists,
    schema_of,
    start_pg_server,
    table_counts,
)
from support.processes import (
    ProcessGroup,
    ServerProcess,
    describe_run,
    free_port,
    run_cli,
    wait_until,
)

pytestmark = pytest.mark.acceptance
__all__ = ["pg_schema_url"]  # the fixture, imported for pytest

TABLES = ("jobs", "job_attempts", "workers", "blixard_migrations")
N_COPIED_JOBS = 13


def _get(server: ServerProcess, path: str) -> Any:
    response = httpx.get(f"{server.url}{path}", timeout=10)
    assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
    return response.json()


def all_jobs(server: ServerProcess) -> list[dict[str, Any]]:
    """Every job the server lists (all pages), each as GET /api/v1/jobs/{id} has it."""
    ids: list[str] = []
    cursor: str | None = None
    while True:
        query = "?limit=1000" + (f"&cursor={cursor}" if cursor else "")
        page = _get(server, f"/api/v1/jobs{query}")
        ids += [job["id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    return [_get(server, f"/api/v1/jobs/{job_id}") for job_id in sorted(ids)]


# -- db migrate ----------------------------------------------------------------------------


def test_db_migrate_applies_then_reports_up_to_date(
    pg_schema_url: str, procs: ProcessGroup
) -> None:
    schema = schema_of(pg_schema_url)
    assert not schema_exists(schema)

    first = run_cli("db", "migrate", "--database", pg_schema_url)
    assert first.returncode == 0, describe_run(first)
    applied = re.fullmatch(
        r"applied migration\(s\) ([0-9, ]+); schema version (\d+)\n", first.stdout
    )
    assert applied, describe_run(first)
    versions = [int(v) for v in applied.group(1).split(", ")]
    version = int(applied.group(2))
    assert versions == list(range(1, version + 1)), describe_run(first)
    assert schema_exists(schema), f"no schema {schema} after\n{describe_run(first)}"
    counts = table_counts(schema, TABLES)
    assert counts == {"jobs": 0, "job_attempts": 0, "workers": 0, "blixard_migrations": version}

    second = run_cli("db", "migrate", "--database", pg_schema_url)
    assert second.returncode == 0, describe_run(second)
    assert second.stdout == f"schema is up to date (version {version})\n", describe_run(second)
    assert table_counts(schema, TABLES) == counts

    # A server on the migrated schema agrees.
    server = start_pg_server(procs, pg_schema_url, name="server")
    health = _get(server, "/healthz")
    assert health["schema_version"] == version, health
    assert health["database"] == "ok", health


# -- an unreachable database ---------------------------------------------------------------


def test_server_on_unreachable_database_fails_fast_with_one_line(tmp_path: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:1/test"  # nothing listens on port 1
    began = time.monotonic()
    result = run_cli(
        "server", "--database", url, "--port", str(free_port()), timeout=60, cwd=tmp_path
    )
    took = time.monotonic() - began
    output = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    print(f"\nunreachable database: exit code {result.returncode} after {took:.2f}s: {output}")
    assert result.returncode != 0, describe_run(result)
    assert took < 15, f"took {took:.1f}s\n{describe_run(result)}"
    assert "Traceback" not in result.stdout + result.stderr, describe_run(result)
    assert len(output) == 1, f"expected one line of output\n{describe_run(result)}"
    assert output[0].startswith("error: "), describe_run(result)
    assert "127.0.0.1:1 " in output[0] or output[0].endswith("127.0.0.1:1"), describe_run(result)


# -- db copy -------------------------------------------------------------------------------


def _run_jobs_on_sqlite(procs: ProcessGroup, db_path: Path) -> ServerProcess:
    """A SQLite-backed server and a mock worker put jobs through every ending: completed
    (some after a failed attempt), failed after retries, cancelled while pending and while
    running, plus one still waiting for its run_at. The worker is stopped at the end."""
    server = procs.start_server(db_path, name="sqlite-server")
    worker = procs.start_worker(server.url, "mock", concurrency=4, label=["zone=a"])
    client = Client(server.url)
    retry = {"max_attempts": 3, "backoff": {"base_s": 0.05, "jitter": 0}}
    bodies: list[dict[str, Any]] = [
        *(
            {"payload": {"duration": 0.01, "result": {"i": i}}, "worker_types": ["mock"]}
            for i in range(6)
        ),
        {
            "payload": {"fail_attempts": 1, "result": "second time lucky"},
            "worker_types": ["mock"],
            **retry,
        },
        *(
            {
                "payload": {"fail": True, "error_message": f"broken {i}"},
                "worker_types": ["mock"],
                **retry,
            }
            for i in range(2)
        ),
        {
            "payload": {"duration": 0, "result": [1, "two", {"three": 3.5}]},
            "queue": "special",
            "tenant": "acme",
            "worker_types": ["mock"],
            "requirements": {"cpu": 0.5, "memory_mb": 10, "labels": {"zone": "a"}},
            "priority": 7,
            "timeout_s": 30,
            "idempotency_key": "copy-me-once",
        },
    ]
    finishing = client.submit_many(bodies)
    later = client.submit({"duration": 0}, worker_types=["mock"], delay_s=3600)
    never = client.submit({"duration": 0}, worker_types=["nobody-runs-this"])
    long = client.submit({"duration": 60}, worker_types=["mock"], max_attempts=1)
    wait_until(
        lambda: client.get(long["id"])["status"] == "in_progress",
        20,
        message=lambda: f"the long job to start: {client.get(long['id'])}\n{procs.describe()}",
    )
    client.cancel(long["id"], "stopped by the test")
    client.cancel(never["id"])
    for job in [*finishing, long, never]:
        final = client.wait(job["id"], 30)
        assert final["status"] in ("completed", "failed", "cancelled"), (
            f"{json.dumps(final, indent=1)}\n{procs.describe()}"
        )
    statuses = {j["id"]: client.get(j["id"])["status"] for j in [*finishing, long, never, later]}
    expected = ["completed"] * 8 + ["failed"] * 2 + ["cancelled"] * 2 + ["pending"]
    assert sorted(statuses.values()) == sorted(expected), statuses
    client.close()
    assert worker.terminate_and_wait() == 0, worker.describe()
    return server


def test_db_copy_moves_every_job_with_its_history_once(
    pg_schema_url: str, procs: ProcessGroup, tmp_path: Path
) -> None:
    sqlite = _run_jobs_on_sqlite(procs, tmp_path / "laptop.db")
    before = all_jobs(sqlite)
    workers_before = _get(sqlite, "/api/v1/workers")
    # Copy with the servers stopped (uvicorn re-raises SIGTERM once it shut down cleanly).
    assert sqlite.terminate_and_wait() in (0, -signal.SIGTERM), sqlite.describe()
    n_jobs, n_attempts = len(before), sum(len(j["attempts"]) for j in before)
    assert n_jobs == N_COPIED_JOBS, json.dumps(before, indent=1)
    # 7 jobs completed at once, one after a failed attempt, 2 x 3 failures, one cancelled
    # while running; the cancelled-while-pending and the pending jobs have no attempt.
    assert n_attempts == 7 + 2 + 2 * 3 + 1, json.dumps(before, indent=1)

    source = f"sqlite:///{(tmp_path / 'laptop.db').resolve()}"
    schema = schema_of(pg_schema_url)
    first = run_cli("db", "copy", "--from", source, "--to", pg_schema_url)
    assert first.returncode == 0, describe_run(first)
    assert f"copied {n_jobs} new job(s) of {n_jobs} read, {n_attempts} attempt record(s), " in (
        first.stdout
    ), describe_run(first)
    counts = table_counts(schema, TABLES)
    assert counts["jobs"] == n_jobs, (counts, describe_run(first))
    assert counts["job_attempts"] == n_attempts, (counts, describe_run(first))
    assert counts["workers"] == len(workers_before), (counts, describe_run(first))

    # Again: nothing new, row for row.
    second = run_cli("db", "copy", "--from", source, "--to", pg_schema_url)
    assert second.returncode == 0, describe_run(second)
    assert f"copied 0 new job(s) of {n_jobs} read" in second.stdout, describe_run(second)
    assert table_counts(schema, TABLES) == counts, describe_run(second)

    # A server on the copy shows every job exactly as the SQLite server did: payload,
    # options, status, result or error, timestamps, and the whole attempt history. Nothing
    # is ignored (lease_expires_at is null on both: no job was running).
    server = start_pg_server(procs, pg_schema_url, name="pg-server")
    after = all_jobs(server)
    assert [j["id"] for j in after] == [j["id"] for j in before]
    for old, new in zip(before, after, strict=True):
        assert new == old, (
            f"job {old['id']} differs after the copy:\n--- sqlite ---\n"
            f"{json.dumps(old, indent=1, sort_keys=True)}\n--- postgresql ---\n"
            f"{json.dumps(new, indent=1, sort_keys=True)}\n{procs.describe()}"
        )
    # The workers came along too (their status is the reaper's business on the new
    # database: the copy of a stopped worker may be marked offline).
    keep = ("id", "worker_type", "name", "concurrency", "labels", "host", "pid", "registered_at")
    assert [{k: w[k] for k in keep} for w in _get(server, "/api/v1/workers")] == [
        {k: w[k] for k in keep} for w in workers_before
    ]

    # The idempotency key came along: resubmitting through the new server finds the job.
    keyed = next(j for j in before if j["idempotency_key"] == "copy-me-once")
    response = httpx.post(
        f"{server.url}/api/v1/jobs",
        json={"payload": {"other": True}, "tenant": "acme", "idempotency_key": "copy-me-once"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json()["id"] == keyed["id"], response.text
    assert server.terminate_and_wait() in (0, -signal.SIGTERM), server.describe()


def test_db_copy_names_the_databases_it_copied(pg_schema_url: str, tmp_path: Path) -> None:
    """The summary line names both databases as given (they carry no password to hide),
    not a mangled ``sqlite://tmp/...`` that points at no file."""
    source = f"sqlite:///{(tmp_path / 'empty.db').resolve()}"
    made = run_cli("db", "migrate", "--database", source)
    assert made.returncode == 0, describe_run(made)
    result = run_cli("db", "copy", "--from", source, "--to", pg_schema_url)
    assert result.returncode == 0, describe_run(result)
    assert result.stdout == (
        f"copied 0 new job(s) of 0 read, 0 attempt record(s), 0 worker(s), 0 queue(s), "
        f"0 tenant(s), 0 new schedule(s) from {source} to {pg_schema_url}\n"
    ), describe_run(result)
