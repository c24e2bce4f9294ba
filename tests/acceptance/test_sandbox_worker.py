"""A command in a bubblewrap sandbox end to end: ``blixard submit`` to a real server, run by
a real ``blixard worker --type sandbox``."""

from __future__ import annotations

import json
import shutil

import pytest

from support.processes import ProcessGroup, describe_run, run_cli

pytestmark = [
    pytest.mark.acceptance,
    pytest.mark.skipif(
        shutil.which("bwrap") is None, reason="bwrap is not installed (apt-get install bubblewrap)"
    ),
]


@pytest.fixture
def server_url(procs: ProcessGroup) -> str:
    server = procs.start_server()
    worker = procs.start_worker(server.url, "sandbox", concurrency=2)
    record = worker.record()
    assert record is not None
    return server.url


def submit(url: str, payload: dict[str, object], *flags: str) -> dict[str, object]:
    result = run_cli(
        "submit",
        "--wait",
        "--json",
        "--type",
        "sandbox",
        *flags,
        json.dumps(payload),
        env={"BLIXARD_SERVER": url},
        timeout=60,
    )
    job: dict[str, object] = json.loads(result.stdout)
    assert isinstance(job, dict), describe_run(result)
    return job


def test_a_command_runs_on_a_sandbox_worker(procs: ProcessGroup, server_url: str) -> None:
    job = submit(server_url, {"command": "echo hello from $(hostname); cat /proc/net/dev | wc -l"})
    assert job["status"] == "completed", (job, procs.describe())
    result = job["result"]
    assert isinstance(result, dict)
    assert result["exit_code"] == 0
    assert result["stdout"] == "hello from sandbox\n3\n"  # two header lines and lo


def test_a_memory_hog_fails_with_that_reason(procs: ProcessGroup, server_url: str) -> None:
    payload = {"command": ["python3", "-c", "b = bytearray(400 << 20)"], "memory_mb": 128}
    job = submit(server_url, payload, "--max-attempts", "1")
    assert job["status"] == "failed", (job, procs.describe())
    assert isinstance(job["error"], dict), job
    assert job["error"]["kind"] == "memory_limit", job


def test_a_sandbox_worker_without_bwrap_fails_at_start_up() -> None:
    result = run_cli(
        "worker",
        "--type",
        "sandbox",
        "--server",
        "http://127.0.0.1:9",
        "--backend-option",
        "bwrap=/nonexistent/bwrap",
        timeout=30,
    )
    assert result.returncode != 0, describe_run(result)
    assert "apt-get install bubblewrap" in result.stderr, describe_run(result)
