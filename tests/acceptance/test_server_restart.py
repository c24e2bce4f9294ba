"""The server dies (SIGKILL) or stops (SIGTERM) mid-run and comes back on the same port and
database: no job is lost or stuck, the workers ride it out (same processes, same ids), and
a process job that was running through the outage completes on its first attempt."""

from __future__ import annotations

import signal
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from blixard.client import Client
from support.processes import ProcessGroup, free_port, wait_until

pytestmark = pytest.mark.acceptance

N_MOCK = 100
N_LONG = 2


@pytest.mark.parametrize("stop_signal", [signal.SIGKILL, signal.SIGTERM], ids=["kill", "term"])
def test_server_restart_loses_nothing(
    procs: ProcessGroup, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    db_path, port = tmp_path / "blixard.db", free_port()
    # A lease long enough to outlive the restart: running jobs must not be reassigned.
    server = procs.start_server(db_path, port, lease_ttl=8)
    mock_worker = procs.start_worker(server.url, "mock", concurrency=2, name="worker-mock")
    process_worker = procs.start_worker(server.url, "process", concurrency=N_LONG)
    client = Client(server.url)

    long_jobs = client.submit_many(
        [
            {
                "payload": {"command": ["sh", "-c", "sleep 3; echo long"]},
                "worker_types": ["process"],
                "max_attempts": 1,
            }
        ]
        * N_LONG
    )
    mock_jobs = client.submit_many(
        [
            {
                "payload": {"duration": 0.05, "result": {"i": i}},
                "worker_types": ["mock"],
                "max_attempts": 3,
                "backoff": {"base_s": 0.1},
            }
            for i in range(N_MOCK)
        ]
    )
    all_ids = [j["id"] for j in long_jobs + mock_jobs]

    def mid_run() -> bool:
        long_running = all(client.get(j["id"])["status"] == "in_progress" for j in long_jobs)
        return long_running and client.stats()["jobs_by_status"]["completed"] >= 10

    wait_until(mid_run, 30, 0.02, message=lambda: f"the batch to be running\n{procs.describe()}")
    done_before = client.stats()["jobs_by_status"]["completed"]
    server.kill(stop_signal)
    crashed_at = time.time()
    code = server.wait(15)
    assert code in (0, -stop_signal), f"server exit code {code}\n{server.describe()}"
    assert done_before < N_MOCK, f"the batch was over before the server stopped ({done_before})"

    restarted = procs.start_server(db_path, port, lease_ttl=8, name="server-restarted")

    def all_terminal() -> bool:
        counts = client.stats()["jobs_by_status"]
        return counts["completed"] + counts["failed"] + counts["cancelled"] == len(all_ids)

    wait_until(
        all_terminal,
        60,
        0.2,
        message=lambda: f"every job to end: {client.stats()}\n{procs.describe()}",
        ignore=(httpx.TransportError,),
    )
    counts = client.stats()["jobs_by_status"]
    assert counts["completed"] == N_MOCK + N_LONG, f"{counts}\n{procs.describe()}"

    # Every job completed exactly once. Only a SIGKILL may cost a retry: jobs whose claim was
    # committed but whose answer died with the server (at most one claim: 2 jobs) come back
    # when their lease expires. Anything else is a lost report or a lost job.
    problems, retried = [], []
    for job_id in all_ids:
        job = client.get(job_id)
        history = [(a["attempt"], a["outcome"]) for a in job["attempts"]]
        line = f"{job_id}: {job['status']}, attempts {history}, {job['error']}"
        expected = [*(["lease_expired"] * (len(history) - 1)), "completed"]
        if job["status"] != "completed" or [o for _, o in history] != expected:
            problems.append(line)
        if history != [(1, "completed")]:
            retried.append(line)
    assert not problems, "\n".join(problems[:20]) + f"\n{procs.describe()}"
    allowed = 2 if stop_signal == signal.SIGKILL else 0
    assert len(retried) <= allowed, "\n".join(retried[:20]) + f"\n{procs.describe()}"
    results = sorted(client.get(j["id"])["result"]["i"] for j in mock_jobs)
    assert results == list(range(N_MOCK))

    # The process jobs ran through the outage on their first (and only) attempt.
    for job in long_jobs:
        got = client.get(job["id"])
        assert got["claimed_by"] == process_worker.worker_id, got
        assert got["result"]["stdout"] == "long\n", got
        started = _epoch(got["started_at"])
        finished = _epoch(got["finished_at"])
        assert started < crashed_at < finished, (got["started_at"], crashed_at, got)

    # Same worker processes, same registrations, still online after the restart.
    workers = {w["id"]: w for w in client.workers()}
    for worker in (mock_worker, process_worker):
        assert worker.running, worker.describe()
        record = workers[worker.worker_id]
        assert record["pid"] == worker.pid, record
        assert record["status"] == "online", record
    assert len(workers) == 2, workers
    assert restarted.running, restarted.describe()
    client.close()


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_sigterm_stops_the_server_cleanly(procs: ProcessGroup, tmp_path: Path) -> None:
    """A graceful stop runs the shutdown path: the store is closed, which for SQLite in WAL
    mode checkpoints and removes the ``-wal`` file (a killed process leaves it behind)."""
    db_path = tmp_path / "blixard.db"
    server = procs.start_server(db_path)
    with Client(server.url) as client:
        client.submit({"duration": 0}, worker_types=["mock"])
    wal = Path(f"{db_path}-wal")
    assert wal.exists(), "expected a WAL file while the server runs"
    code = server.terminate_and_wait(15)
    assert code in (0, -signal.SIGTERM), f"exit code {code}\n{server.describe()}"
    assert not wal.exists(), (
        f"the server exited ({code}) without closing its store: {wal} is still there\n"
        f"{server.describe()}"
    )
