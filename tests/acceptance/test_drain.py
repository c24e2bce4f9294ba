"""Stopping workers: SIGTERM drains (running jobs finish, no new claims, exit 0); a second
SIGTERM stops at once and hands the job back; ``blixard workers drain`` drains remotely."""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import pytest

from blixard.client import Client
from support.processes import (
    ProcessGroup,
    WorkerProcess,
    descendants,
    describe_run,
    pid_alive,
    run_cli,
    wait_until,
)

pytestmark = pytest.mark.acceptance

FAST_RETRY: dict[str, Any] = {"max_attempts": 3, "backoff": {"base_s": 0.1}}


def _worker_status(client: Client, worker: WorkerProcess) -> str:
    return str(next(w for w in client.workers() if w["id"] == worker.worker_id)["status"])


def _wait_running(client: Client, procs: ProcessGroup, job_id: str) -> dict[str, Any]:
    wait_until(
        lambda: client.get(job_id)["status"] == "in_progress",
        15,
        message=lambda: f"job {job_id} to run: {client.get(job_id)}\n{procs.describe()}",
    )
    return client.get(job_id)


def test_sigterm_drains_the_worker(procs: ProcessGroup) -> None:
    server = procs.start_server(lease_ttl=2)
    client = Client(server.url)
    worker = procs.start_worker(server.url, "process", concurrency=2)
    job = client.submit(
        {"command": ["sh", "-c", "sleep 2; echo drained"]}, worker_types=["process"]
    )
    assert _wait_running(client, procs, job["id"])["claimed_by"] == worker.worker_id

    worker.kill(signal.SIGTERM)
    wait_until(
        lambda: _worker_status(client, worker) == "draining",
        10,
        message=lambda: f"the worker to be draining\n{procs.describe()}",
    )
    # A free slot, a new job: a draining worker does not take it.
    later = client.submit({"command": ["echo", "later"]}, worker_types=["process"])

    assert worker.wait(20) == 0, worker.describe()
    done = client.get(job["id"])
    assert done["status"] == "completed", f"{done}\n{procs.describe()}"
    assert done["result"]["stdout"] == "drained\n", done
    assert [(a["worker_id"], a["outcome"]) for a in done["attempts"]] == [
        (worker.worker_id, "completed")
    ], done
    assert _worker_status(client, worker) == "offline"
    still = client.get(later["id"])
    assert (still["status"], still["attempt"]) == ("pending", 0), still

    # The job nobody took runs on the next worker.
    procs.start_worker(server.url, "process", concurrency=1, name="worker-next")
    assert client.wait(later["id"], 20)["status"] == "completed", procs.describe()
    client.close()


def test_second_sigterm_stops_at_once_and_hands_the_job_back(procs: ProcessGroup) -> None:
    server = procs.start_server(lease_ttl=2)
    client = Client(server.url)
    worker_a = procs.start_worker(server.url, "process", concurrency=1, name="worker-a")
    # Long on its first attempt, instant on the next ones.
    command = 'if [ "$BLIXARD_JOB_ATTEMPT" = 1 ]; then exec sleep 30; fi; echo second'
    job = client.submit({"command": command}, worker_types=["process"], **FAST_RETRY)
    _wait_running(client, procs, job["id"])
    children = descendants(worker_a.pid)
    assert children, f"the job's process is not running\n{procs.describe()}"

    worker_a.kill(signal.SIGTERM)
    wait_until(
        lambda: _worker_status(client, worker_a) == "draining",
        10,
        message=lambda: f"worker A to be draining\n{procs.describe()}",
    )
    assert worker_a.running, "one SIGTERM must not stop a worker with a running job"
    stopped_at = time.monotonic()
    worker_a.kill(signal.SIGTERM)
    code = worker_a.wait(10)
    took = time.monotonic() - stopped_at
    assert took < 5, f"the worker took {took:.1f}s to stop\n{worker_a.describe()}"
    assert code == 0, worker_a.describe()
    assert not any(pid_alive(p) for p in children), "the job's process outlived the worker"

    # Back to pending at once (not after a lease expiry), marked worker_shutdown.
    back = client.get(job["id"])
    assert back["status"] == "pending", f"{back}\n{procs.describe()}"
    assert back["error"]["kind"] == "worker_shutdown", back
    assert [(a["worker_id"], a["outcome"]) for a in back["attempts"]] == [
        (worker_a.worker_id, "failed")
    ], back
    assert back["attempts"][0]["error"]["kind"] == "worker_shutdown", back
    assert _worker_status(client, worker_a) == "offline"

    worker_b = procs.start_worker(server.url, "process", concurrency=1, name="worker-b")
    final = client.wait(job["id"], 20)
    assert final["status"] == "completed", f"{final}\n{procs.describe()}"
    assert final["result"]["stdout"] == "second\n", final
    assert [(a["attempt"], a["worker_id"], a["outcome"]) for a in final["attempts"]] == [
        (1, worker_a.worker_id, "failed"),
        (2, worker_b.worker_id, "completed"),
    ], final
    client.close()


def test_workers_drain_command_drains_remotely(procs: ProcessGroup) -> None:
    server = procs.start_server(lease_ttl=1.5)
    client = Client(server.url)
    worker = procs.start_worker(server.url, "process", concurrency=2)
    job = client.submit({"command": ["sh", "-c", "sleep 2; echo ok"]}, worker_types=["process"])
    _wait_running(client, procs, job["id"])

    result = run_cli("workers", "drain", str(worker.worker_id), "--json", "--server", server.url)
    assert result.returncode == 0, describe_run(result)
    answer = json.loads(result.stdout)
    assert (answer["id"], answer["status"]) == (worker.worker_id, "draining"), answer
    later = client.submit({"command": ["echo", "later"]}, worker_types=["process"])

    assert worker.wait(20) == 0, worker.describe()
    done = client.get(job["id"])
    assert done["status"] == "completed", f"{done}\n{procs.describe()}"
    assert [(a["worker_id"], a["outcome"]) for a in done["attempts"]] == [
        (worker.worker_id, "completed")
    ], done
    assert _worker_status(client, worker) == "offline"
    still = client.get(later["id"])
    assert (still["status"], still["attempt"]) == ("pending", 0), still

    unknown = run_cli("workers", "drain", "no-such-worker", "--server", server.url)
    assert unknown.returncode == 2, describe_run(unknown)
    assert "not found" in unknown.stderr, describe_run(unknown)
    client.close()
