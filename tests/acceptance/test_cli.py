"""The ``blixard`` CLI end to end, against a real server and a real process worker."""

from __future__ import annotations

import json
import re
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from blixard.client import Client
from support.processes import (
    ProcessGroup,
    ServerProcess,
    WorkerProcess,
    descendants,
    describe_run,
    free_port,
    run_cli,
    wait_until,
)

pytestmark = pytest.mark.acceptance


@dataclass
class Cluster:
    procs: ProcessGroup
    server: ServerProcess
    worker: WorkerProcess
    client: Client

    def cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """``blixard ARGS`` for this cluster's server (BLIXARD_SERVER: ARGS may end with a
        command after ``--``)."""
        return run_cli(*args, env={"BLIXARD_SERVER": self.server.url}, timeout=timeout)

    def describe(self, result: subprocess.CompletedProcess[str]) -> str:
        return f"{describe_run(result)}\n{self.procs.describe(20)}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    procs = ProcessGroup(tmp_path_factory.mktemp("cli"))
    try:
        server = procs.start_server(lease_ttl=2)
        worker = procs.start_worker(server.url, "process", concurrency=4)
        with Client(server.url) as client:
            yield Cluster(procs, server, worker, client)
    finally:
        procs.stop_all()


def _submitted_id(stderr: str) -> str:
    found = re.search(r"job (\S+) submitted", stderr)
    assert found, f"no 'job ID submitted' line in stderr:\n{stderr}"
    return found.group(1)


def _json(result: subprocess.CompletedProcess[str], cluster: Cluster) -> Any:
    assert result.returncode == 0, cluster.describe(result)
    try:
        return json.loads(result.stdout)
    except ValueError as exc:
        raise AssertionError(f"not JSON: {exc}\n{cluster.describe(result)}") from None


def _no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, describe_run(result)
    assert "Traceback" not in result.stdout, describe_run(result)


def test_submit_wait_prints_the_output_and_exits_0(cluster: Cluster) -> None:
    result = cluster.cli("submit", "--wait", "--", "echo", "hello")
    assert result.returncode == 0, cluster.describe(result)
    assert result.stdout == "hello\n", cluster.describe(result)
    job = cluster.client.get(_submitted_id(result.stderr))
    assert job["status"] == "completed", job
    assert job["payload"] == {"command": ["echo", "hello"]}, job
    assert job["worker_types"] == ["process"], job
    _no_traceback(result)


def test_submit_wait_of_a_failing_command_exits_non_zero_after_every_attempt(
    cluster: Cluster,
) -> None:
    result = cluster.cli("submit", "--wait", "--max-attempts", "2", "--", "false")
    assert result.returncode != 0, cluster.describe(result)
    assert "failed after 2 attempt(s)" in result.stderr, cluster.describe(result)
    job_id = _submitted_id(result.stderr)

    job = _json(cluster.cli("jobs", "get", job_id, "--json"), cluster)
    assert job["id"] == job_id
    assert job["status"] == "failed", job
    assert job["attempt"] == 2, job
    assert job["error"]["kind"] == "exit_code", job
    assert [(a["attempt"], a["outcome"]) for a in job["attempts"]] == [
        (1, "failed"),
        (2, "failed"),
    ], job
    assert all(a["worker_id"] == cluster.worker.worker_id for a in job["attempts"]), job

    human = cluster.cli("jobs", "get", job_id)
    assert human.returncode == 0, cluster.describe(human)
    assert job_id in human.stdout, cluster.describe(human)
    assert "failed" in human.stdout, cluster.describe(human)


def test_list_commands_parse_and_agree_with_the_api(cluster: Cluster) -> None:
    done = cluster.cli("submit", "--wait", "--json", "--", "echo", "listed")
    job = _json(done, cluster)
    assert job["status"] == "completed", job
    # Nothing else runs now: the CLI and the API must see the same cluster.
    api_jobs = cluster.client.list_jobs(limit=1000)["jobs"]
    cli_jobs = _json(cluster.cli("jobs", "list", "--json", "--limit", "1000"), cluster)["jobs"]
    assert [(j["id"], j["status"]) for j in cli_jobs] == [(j["id"], j["status"]) for j in api_jobs]
    assert job["id"] in {j["id"] for j in cli_jobs}

    completed = _json(cluster.cli("jobs", "list", "--json", "--status", "completed"), cluster)
    assert completed["jobs"], completed
    assert {j["status"] for j in completed["jobs"]} == {"completed"}, completed

    def key(w: dict[str, Any]) -> tuple[Any, ...]:
        return (w["id"], w["status"], w["worker_type"], w["pid"], w["concurrency"])

    cli_workers = _json(cluster.cli("workers", "list", "--json"), cluster)
    assert sorted(map(key, cli_workers)) == sorted(map(key, cluster.client.workers()))
    assert [w["id"] for w in cli_workers] == [cluster.worker.worker_id], cli_workers

    stats = _json(cluster.cli("stats", "--json"), cluster)
    api_stats = cluster.client.stats()
    assert stats["jobs_by_status"] == api_stats["jobs_by_status"], (stats, api_stats)
    assert stats["workers_by_status"] == api_stats["workers_by_status"], (stats, api_stats)
    assert sum(stats["jobs_by_status"].values()) == len(api_jobs), stats
    assert stats["workers_by_status"]["online"] == 1, stats

    human = cluster.cli("workers", "list")
    assert human.returncode == 0, cluster.describe(human)
    assert cluster.worker.worker_id in human.stdout, cluster.describe(human)


def test_cancel_retry_and_wait(cluster: Cluster) -> None:
    submitted = cluster.cli("submit", "--delay", "60", "--", "echo", "later")
    assert submitted.returncode == 0, cluster.describe(submitted)
    job_id = submitted.stdout.strip()
    assert cluster.client.get(job_id)["status"] == "pending"

    waited = cluster.cli("jobs", "wait", job_id, "--timeout", "0.5")
    assert waited.returncode == 124, cluster.describe(waited)

    cancelled = _json(cluster.cli("jobs", "cancel", job_id, "--json"), cluster)
    assert cancelled["status"] == "cancelled", cancelled
    assert cluster.client.get(job_id)["status"] == "cancelled"
    waited = cluster.cli("jobs", "wait", job_id, "--timeout", "5")
    assert waited.returncode == 1, cluster.describe(waited)
    assert "cancelled" in waited.stderr, cluster.describe(waited)
    again = cluster.cli("jobs", "cancel", job_id)
    assert again.returncode == 2, cluster.describe(again)
    assert "cancel" in again.stderr, cluster.describe(again)
    _no_traceback(again)

    retried = _json(cluster.cli("jobs", "retry", job_id, "--json"), cluster)
    assert retried["status"] == "pending", retried
    waited = cluster.cli("jobs", "wait", job_id, "--timeout", "30")
    assert waited.returncode == 0, cluster.describe(waited)
    assert waited.stdout == "later\n", cluster.describe(waited)
    job = cluster.client.get(job_id)
    assert job["status"] == "completed", job
    assert [a["outcome"] for a in job["attempts"]] == ["completed"], job

    # A running job, cancelled through the CLI, is killed on its worker.
    running = cluster.cli("submit", "--json", "--", "sleep", "30")
    sleeper = _json(running, cluster)["id"]
    wait_until(
        lambda: cluster.client.get(sleeper)["status"] == "in_progress",
        15,
        message=lambda: f"the sleep job to run\n{cluster.procs.describe()}",
    )
    assert descendants(cluster.worker.pid), "the job's process is not running"
    waited = cluster.cli("jobs", "wait", sleeper, "--timeout", "0.2")
    assert waited.returncode == 124, cluster.describe(waited)
    cancelled = _json(cluster.cli("jobs", "cancel", sleeper, "--json"), cluster)
    assert cancelled["status"] == "cancelled", cancelled
    final = cluster.client.get(sleeper)
    assert [a["outcome"] for a in final["attempts"]] == ["cancelled"], final
    wait_until(
        lambda: not descendants(cluster.worker.pid),
        10,
        message=lambda: f"the cancelled job's process to be killed\n{cluster.procs.describe()}",
    )


def test_bad_input_exits_2_with_a_message(cluster: Cluster) -> None:
    cases = [
        (("submit", '{"command": ["true"'), "not valid JSON"),
        (("submit", "--queue", "bad queue!", "--", "true"), "queue"),
        (("jobs", "get", "no-such-job"), "not found"),
        (("jobs", "cancel", "no-such-job"), "not found"),
        (("submit", "--label", "zone", "--", "true"), "KEY=VALUE"),
        (("submit", "--max-attempts", "0", "--", "true"), "max-attempts"),
    ]
    before = cluster.client.stats()["jobs_by_status"]
    for args, message in cases:
        result = cluster.cli(*args)
        assert result.returncode == 2, cluster.describe(result)
        assert message in result.stderr, f"expected {message!r}\n{cluster.describe(result)}"
        assert result.stdout == "", cluster.describe(result)
        _no_traceback(result)
    assert cluster.client.stats()["jobs_by_status"] == before, "a bad submit created a job"


def test_unreachable_server_exits_1_with_a_message() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (
        ("jobs", "list", "--server", url),
        ("submit", "--server", url, "--", "true"),
        ("stats", "--json", "--server", url),
        ("workers", "drain", "some-worker", "--server", url),
    ):
        result = run_cli(*args, timeout=60)
        assert result.returncode == 1, describe_run(result)
        assert "cannot reach" in result.stderr, describe_run(result)
        assert url in result.stderr, describe_run(result)
        _no_traceback(result)


def test_server_on_a_busy_port_exits_with_a_message(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        database = f"sqlite:///{tmp_path / 'busy.db'}"
        args = ("server", "--database", database, "--host", "127.0.0.1", "--port", str(port))
        result = run_cli(*args, timeout=60)
    assert result.returncode != 0, describe_run(result)
    assert "in use" in result.stderr, describe_run(result)
    _no_traceback(result)
