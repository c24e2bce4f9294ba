"""A job in a container end to end: ``blixard submit`` to a real server, run by a real
``blixard worker --type container`` against a private dockerd (``support.dockerd``)."""

from __future__ import annotations

import json

import pytest

from support.dockerd import IMAGE, Dockerd
from support.processes import ProcessGroup, describe_run, run_cli

pytestmark = pytest.mark.acceptance


def test_a_job_runs_on_a_container_worker(procs: ProcessGroup, dockerd: Dockerd) -> None:
    server = procs.start_server()
    procs.start_worker(
        server.url, "container", concurrency=2, backend_option=[f"docker_host={dockerd.host}"]
    )
    payload = {"image": IMAGE, "command": "echo hello from $BLIXARD_WORK_DIR; ls /sys/class/net"}
    result = run_cli(
        "submit",
        "--wait",
        "--json",
        "--type",
        "container",
        json.dumps(payload),
        env={"BLIXARD_SERVER": server.url},
        timeout=60,
    )
    job = json.loads(result.stdout)
    assert isinstance(job, dict), describe_run(result)
    assert job["status"] == "completed", (job, procs.describe())
    assert job["result"]["exit_code"] == 0
    assert job["result"]["stdout"] == "hello from /job\nlo\n"


def test_a_container_worker_without_an_engine_fails_at_start_up(tmp_path: object) -> None:
    result = run_cli(
        "worker",
        "--type",
        "container",
        "--server",
        "http://127.0.0.1:9",
        "--backend-option",
        f"docker_host=unix://{tmp_path}/no-docker.sock",
        timeout=30,
    )
    assert result.returncode != 0, describe_run(result)
    assert "start dockerd" in result.stderr, describe_run(result)
    assert "docker_host" in result.stderr, describe_run(result)
