"""A worker killed with SIGKILL mid-job: its job comes back after the lease TTL and another
worker completes it; the dead worker ends up offline."""

from __future__ import annotations

import json
import signal

import pytest

from blixard.client import Client
from support.processes import ProcessGroup, describe_run, run_cli, wait_until

pytestmark = pytest.mark.acceptance


def test_killed_workers_job_is_completed_by_another_worker(procs: ProcessGroup) -> None:
    server = procs.start_server(lease_ttl=1, reaper_interval=0.1)
    client = Client(server.url)
    worker_a = procs.start_worker(server.url, "process", concurrency=1, name="worker-a")
    job = client.submit(
        {"command": ["sh", "-c", "sleep 3; echo finished"]},
        worker_types=["process"],
        max_attempts=3,
        backoff={"base_s": 0.1},
    )

    # Only A is up: A claims and starts the job. Then B joins, and A dies mid-job.
    wait_until(
        lambda: client.get(job["id"])["status"] == "in_progress",
        15,
        message=lambda: f"worker A to start the job: {client.get(job['id'])}\n{procs.describe()}",
    )
    running = client.get(job["id"])
    assert running["claimed_by"] == worker_a.worker_id, running
    assert running["attempt"] == 1, running
    worker_b = procs.start_worker(server.url, "process", concurrency=1, name="worker-b")
    worker_a.kill(signal.SIGKILL)
    assert worker_a.wait(10) == -signal.SIGKILL

    # The lease (1 s) runs out, the job goes back to pending, and B runs it to the end.
    final = client.wait(job["id"], 30)
    details = f"{json.dumps(client.get(job['id']), indent=2)}\n{procs.describe()}"
    assert final["status"] == "completed", details
    assert final["result"]["stdout"] == "finished\n", details
    assert final["attempt"] == 2, details
    attempts = client.get(job["id"])["attempts"]
    assert [(a["attempt"], a["worker_id"], a["outcome"]) for a in attempts] == [
        (1, worker_a.worker_id, "lease_expired"),
        (2, worker_b.worker_id, "completed"),
    ], details
    assert attempts[0]["error"]["kind"] == "lease_expired", details

    # The dead worker is marked offline (worker TTL: 2 x lease TTL), as the CLI shows.
    def a_is_offline() -> bool:
        result = run_cli("workers", "list", "--json", "--server", server.url, timeout=30)
        assert result.returncode == 0, describe_run(result)
        workers = {w["id"]: w for w in json.loads(result.stdout)}
        return workers[worker_a.worker_id]["status"] == "offline"

    wait_until(a_is_offline, 15, 0.5, message=lambda: f"worker A offline\n{procs.describe()}")
    b = next(w for w in client.workers() if w["id"] == worker_b.worker_id)
    assert b["status"] == "online", b
    assert worker_b.running, worker_b.describe()
    client.close()
