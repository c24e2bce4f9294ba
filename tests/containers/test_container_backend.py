"""The ``container`` backend against a real, private dockerd (``support.dockerd``)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import docker
import pytest

from blixard.backends.base import Assignment, ExecutionContext, Outcome
from blixard.backends.container import LABEL, ContainerBackend
from support.dockerd import IMAGE, Dockerd

WAIT_S = 30.0


class Recorder:
    """An OutputSink that keeps every chunk, in order."""

    def __init__(self) -> None:
        self.chunks: list[tuple[str, bytes]] = []

    def __call__(self, stream: str, chunk: bytes) -> None:
        self.chunks.append((stream, chunk))

    def text(self, stream: str) -> str:
        return b"".join(c for s, c in self.chunks if s == stream).decode()


def ctx(
    work_dir: Path,
    payload: dict[str, Any],
    *,
    sink: Recorder | None = None,
    timeout_s: float | None = None,
    requirements: dict[str, Any] | None = None,
    parent_results: dict[str, Any] | None = None,
    job_id: str = "job-1",
) -> ExecutionContext:
    job = Assignment(
        job_id=job_id,
        attempt=1,
        queue="default",
        tenant="default",
        payload={"image": IMAGE, **payload},
        timeout_s=timeout_s,
        requirements=requirements or {},
        parent_results=parent_results,
    )
    return ExecutionContext(job=job, work_dir=work_dir, on_output=sink or Recorder())


async def run(
    backend: ContainerBackend, work_dir: Path, payload: dict[str, Any], **kw: Any
) -> Outcome:
    execution = await backend.start(ctx(work_dir, payload, **kw))
    return await asyncio.wait_for(execution.wait(), WAIT_S)


def kind(outcome: Outcome) -> str:
    assert outcome.error is not None, outcome
    return str(outcome.error["kind"])


def containers_of(dockerd: Dockerd, job_id: str) -> list[dict[str, Any]]:
    client = docker.APIClient(base_url=dockerd.host, version="auto")
    try:
        found: list[dict[str, Any]] = client.containers(
            all=True, filters={"label": f"{LABEL}={job_id}"}
        )
        return found
    finally:
        client.close()


@pytest.fixture
async def backend(dockerd: Dockerd) -> Any:
    backend = ContainerBackend({"docker_host": dockerd.host})
    health = await backend.health()
    assert health.ok, (health.detail, dockerd.log_tail())
    assert health.capabilities["engine_version"]
    yield backend
    await backend.close()


async def test_echo_streams_logs_env_and_parent_results(
    backend: ContainerBackend, tmp_path: Path, dockerd: Dockerd
) -> None:
    sink = Recorder()
    payload = {
        "command": 'echo hello; echo oops >&2; echo "$GREETING $BLIXARD_WORK_DIR"; pwd; '
        'cat "$BLIXARD_PARENT_RESULTS"; echo out > /job/out.txt',
        "env": {"GREETING": "hi"},
    }
    outcome = await run(
        backend, tmp_path, payload, sink=sink, parent_results={"build": {"exit_code": 0}}
    )
    assert outcome.ok, outcome
    assert outcome.result["exit_code"] == 0
    assert outcome.result["stdout"] == 'hello\nhi /job\n/job\n{"build":{"exit_code":0}}'
    assert outcome.result["stderr"] == "oops\n"
    assert sink.text("stdout") == outcome.result["stdout"]
    assert sink.text("stderr") == "oops\n"
    assert (tmp_path / "out.txt").read_text() == "out\n"
    assert containers_of(dockerd, "job-1") == []


async def test_argv_command_and_exit_code(backend: ContainerBackend, tmp_path: Path) -> None:
    outcome = await run(backend, tmp_path, {"command": ["sh", "-c", "echo bye; exit 3"]})
    assert kind(outcome) == "exit_code"
    assert outcome.error is not None
    assert outcome.error["exit_code"] == 3
    assert outcome.error["stdout"] == "bye\n"


async def test_no_network_read_only_root_and_no_capabilities(
    backend: ContainerBackend, tmp_path: Path
) -> None:
    command = (
        "ls /sys/class/net; touch /etc/x 2>/dev/null && echo root-writable; "
        "echo tmp > /tmp/t && cat /tmp/t; grep CapEff /proc/self/status"
    )
    outcome = await run(backend, tmp_path, {"command": command})
    assert outcome.ok, outcome
    assert outcome.result["stdout"] == "lo\ntmp\nCapEff:\t0000000000000000\n"
    writable = await run(
        backend, tmp_path, {"command": "touch /etc/x && echo ok", "read_only": False}
    )
    assert writable.ok, writable
    assert writable.result["stdout"] == "ok\n"


async def test_network_needs_the_worker_to_allow_it(
    backend: ContainerBackend, tmp_path: Path
) -> None:
    outcome = await run(backend, tmp_path, {"command": "true", "network": True})
    assert kind(outcome) == "invalid_payload"
    assert not outcome.retryable


async def test_invalid_payloads(backend: ContainerBackend, tmp_path: Path) -> None:
    for payload in ({"image": None}, {"command": 3}, {"env": {"A": 1}}, {"memory_mb": -1}):
        execution = await backend.start(ctx(tmp_path, payload))
        outcome = await execution.wait()
        assert kind(outcome) == "invalid_payload", payload


async def test_memory_hog_fails_with_memory_limit(
    backend: ContainerBackend, tmp_path: Path
) -> None:
    hog = "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"
    outcome = await run(backend, tmp_path, {"command": hog}, requirements={"memory_mb": 32})
    assert kind(outcome) == "memory_limit", outcome
    assert not outcome.retryable
    assert outcome.error is not None
    assert outcome.error["memory_mb"] == 32


async def test_limits_reach_the_cgroup(backend: ContainerBackend, tmp_path: Path) -> None:
    payload = {"command": "cat /sys/fs/cgroup/pids/pids.max", "max_processes": 50}
    outcome = await run(backend, tmp_path, payload, requirements={"cpu": 0.5})
    assert outcome.ok, outcome
    assert outcome.result["stdout"] == "50\n"


async def test_timeout_and_cancel_remove_the_container(
    backend: ContainerBackend, tmp_path: Path, dockerd: Dockerd
) -> None:
    started = time.monotonic()
    outcome = await run(backend, tmp_path, {"command": "echo start; sleep 60"}, timeout_s=1)
    assert kind(outcome) == "timeout"
    assert outcome.error is not None
    assert outcome.error["stdout"] == "start\n"
    assert time.monotonic() - started < 15
    assert containers_of(dockerd, "job-1") == []

    sink = Recorder()
    execution = await backend.start(
        ctx(tmp_path, {"command": "echo up; sleep 60"}, sink=sink, job_id="job-2")
    )
    deadline = time.monotonic() + WAIT_S
    while "up" not in sink.text("stdout"):
        assert time.monotonic() < deadline, "no output"
        await asyncio.sleep(0.02)
    assert len(containers_of(dockerd, "job-2")) == 1
    await execution.cancel()
    outcome = await asyncio.wait_for(execution.wait(), WAIT_S)
    assert kind(outcome) == "cancelled"
    assert containers_of(dockerd, "job-2") == []
    await execution.cancel()  # idempotent


async def test_image_not_found(backend: ContainerBackend, tmp_path: Path) -> None:
    outcome = await run(backend, tmp_path, {"image": "blixard-no-such-image:1", "command": "true"})
    assert kind(outcome) == "image_not_found"
    assert not outcome.retryable


async def test_unreachable_engine_is_unhealthy(tmp_path: Path) -> None:
    backend = ContainerBackend({"docker_host": f"unix://{tmp_path}/nothing.sock"})
    health = await backend.health()
    await backend.close()
    assert not health.ok
    assert "start dockerd" in health.detail
    assert "docker_host" in health.detail
