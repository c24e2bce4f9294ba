"""The ``sandbox`` backend with a real bubblewrap (``apt-get install bubblewrap``)."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from blixard.backends.base import Assignment, ExecutionContext, Outcome
from blixard.backends.cgroups import CgroupTree
from blixard.backends.sandbox import SandboxBackend

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="bwrap is not installed (apt-get install bubblewrap)"
)

WAIT_S = 10.0


class Recorder:
    """An OutputSink that keeps every chunk, in order."""

    def __init__(self) -> None:
        self.chunks: list[tuple[str, bytes]] = []

    def __call__(self, stream: str, chunk: bytes) -> None:
        self.chunks.append((stream, chunk))

    def text(self, stream: str) -> str:
        return b"".join(c for s, c in self.chunks if s == stream).decode()


async def eventually(predicate: Callable[[], object], within: float = WAIT_S) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate}")
        await asyncio.sleep(0.01)


def ctx(
    work_dir: Path,
    payload: dict[str, Any],
    *,
    sink: Recorder | None = None,
    timeout_s: float | None = None,
    requirements: dict[str, Any] | None = None,
    parent_results: dict[str, Any] | None = None,
) -> ExecutionContext:
    job = Assignment(
        job_id="job-1",
        attempt=1,
        queue="default",
        tenant="default",
        payload=payload,
        timeout_s=timeout_s,
        requirements=requirements or {},
        parent_results=parent_results,
    )
    return ExecutionContext(job=job, work_dir=work_dir, on_output=sink or Recorder())


async def run(
    backend: SandboxBackend, work_dir: Path, payload: dict[str, Any], **kw: Any
) -> Outcome:
    execution = await backend.start(ctx(work_dir, payload, **kw))
    return await asyncio.wait_for(execution.wait(), WAIT_S)


def kind(outcome: Outcome) -> str:
    assert outcome.error is not None, outcome
    return str(outcome.error["kind"])


def host_processes_with(marker: str) -> list[int]:
    """Host pids whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if marker.encode() in cmdline and state not in ("Z", "X"):
                found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def health_capabilities() -> dict[str, Any]:
    health = asyncio.run(SandboxBackend().health())
    assert health.ok, health.detail
    return dict(health.capabilities)


@pytest.fixture
def backend(health_capabilities: dict[str, Any]) -> SandboxBackend:
    return SandboxBackend()


async def test_echo_and_a_clean_environment(
    backend: SandboxBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKER_SECRET", "s3cret")
    sink = Recorder()
    payload = {"command": ["sh", "-c", "echo hello; env"], "env": {"GREETING": "hi"}}
    outcome = await run(backend, tmp_path, payload, sink=sink)
    assert outcome.ok, outcome
    assert outcome.result["stdout"].startswith("hello\n")
    assert sink.text("stdout") == outcome.result["stdout"]
    env = dict(line.split("=", 1) for line in outcome.result["stdout"].splitlines()[1:])
    env.pop("PWD", None)  # set by sh
    assert env == {
        "GREETING": "hi",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/job",
        "BLIXARD_JOB_ID": "job-1",
        "BLIXARD_JOB_ATTEMPT": "1",
        "BLIXARD_WORK_DIR": "/job",
    }


async def test_stdin_and_exit_code(backend: SandboxBackend, tmp_path: Path) -> None:
    outcome = await run(backend, tmp_path, {"command": "cat; exit 3", "stdin": "in"})
    assert kind(outcome) == "exit_code"
    assert outcome.error is not None
    assert outcome.error["exit_code"] == 3
    assert outcome.error["stdout"] == "in"
    outcome = await run(backend, tmp_path, {"command": "kill -TERM $$"})
    assert kind(outcome) == "signal"
    outcome = await run(backend, tmp_path, {"command": ["no-such-command"]})
    assert kind(outcome) == "spawn"
    assert not outcome.retryable


async def test_no_network_by_default(backend: SandboxBackend, tmp_path: Path) -> None:
    script = (
        "import socket\n"
        "print(sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]))\n"
        "s = socket.socket()\n"
        "s.settimeout(2)\n"
        "print(s.connect_ex(('127.0.0.1', 5432)) != 0)\n"
    )
    outcome = await run(backend, tmp_path, {"command": ["python3", "-c", script]})
    assert outcome.ok, outcome
    assert outcome.result["stdout"] == "['lo']\nTrue\n"


async def test_network_needs_the_worker_to_allow_it(tmp_path: Path) -> None:
    outcome = await run(SandboxBackend(), tmp_path, {"command": ["true"], "network": True})
    assert kind(outcome) == "invalid_payload"
    assert not outcome.retryable
    allowed = SandboxBackend({"allow_network": "true"})
    outcome = await run(allowed, tmp_path, {"command": "cat /proc/net/dev", "network": True})
    assert outcome.ok, outcome
    assert outcome.result["stdout"].count(":") >= 1


async def test_read_only_root_writable_job_dir_and_tmp(
    backend: SandboxBackend, tmp_path: Path
) -> None:
    command = (
        "touch /usr/x 2>/dev/null && echo usr-writable; "
        "touch /etc/x 2>/dev/null && echo etc-writable; "
        "echo job > /job/out.txt && echo tmp > /tmp/t && cat /tmp/t"
    )
    outcome = await run(backend, tmp_path, {"command": command})
    assert outcome.ok, outcome
    assert outcome.result["stdout"] == "tmp\n"
    assert (tmp_path / "out.txt").read_text() == "job\n"


async def test_cwd_and_parent_results(backend: SandboxBackend, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    payload = {"command": 'pwd; cat "$BLIXARD_PARENT_RESULTS"', "cwd": "sub"}
    outcome = await run(backend, tmp_path, payload, parent_results={"build": {"exit_code": 0}})
    assert outcome.ok, outcome
    assert outcome.result["stdout"] == '/job/sub\n{"build":{"exit_code":0}}'


async def test_host_processes_are_invisible(backend: SandboxBackend, tmp_path: Path) -> None:
    outcome = await run(backend, tmp_path, {"command": "ls /proc | grep -c '^[0-9]'; hostname"})
    assert outcome.ok, outcome
    count, hostname = outcome.result["stdout"].split()
    assert int(count) <= 5  # bwrap's init, sh, ls, grep
    assert hostname == "sandbox"


async def test_memory_hog_fails_with_memory_limit(backend: SandboxBackend, tmp_path: Path) -> None:
    payload = {"command": ["python3", "-c", "b = bytearray(400 << 20)"], "memory_mb": 128}
    outcome = await run(backend, tmp_path, payload)
    assert kind(outcome) == "memory_limit"
    assert not outcome.retryable
    # The job's requirements set the limit when the payload does not.
    outcome = await run(
        backend,
        tmp_path,
        {"command": ["python3", "-c", "b = bytearray(400 << 20)"]},
        requirements={"memory_mb": 128},
    )
    assert kind(outcome) == "memory_limit"


async def test_cpu_spinner_fails_with_cpu_limit(backend: SandboxBackend, tmp_path: Path) -> None:
    payload = {"command": ["sh", "-c", "while :; do :; done"], "cpu_time_s": 1}
    outcome = await run(backend, tmp_path, payload)
    assert kind(outcome) == "cpu_limit"


async def test_fork_bomb_is_stopped_by_the_process_limit(
    backend: SandboxBackend, tmp_path: Path, health_capabilities: dict[str, Any]
) -> None:
    if "pids" not in health_capabilities["cgroup_limits"] and os.geteuid() == 0:
        pytest.skip("no pids cgroup and RLIMIT_NPROC does not bind root")
    marker = f"77{uuid.uuid4().int % 10**6}"
    command = f"i=0; while [ $i -lt 200 ]; do sleep {marker} & i=$((i+1)); done; wait"
    started = time.monotonic()
    outcome = await run(backend, tmp_path, {"command": command, "max_processes": 20})
    assert kind(outcome) in ("process_limit", "exit_code")
    assert time.monotonic() - started < 5
    # The job's cgroups are gone once its outcome is known.
    assert not [p for p in backend.cgroups.root.glob("*/blixard-sandbox/job-1-*") if p.is_dir()]
    await eventually(lambda: not host_processes_with(f"sleep\0{marker}"), within=3)


async def test_timeout_kills_everything(tmp_path: Path) -> None:
    backend = SandboxBackend({"kill_grace_s": "0.5"})
    marker = f"88{uuid.uuid4().int % 10**6}"
    command = f"trap '' TERM; sleep {marker} & sleep {marker}"
    started = time.monotonic()
    outcome = await run(backend, tmp_path, {"command": command}, timeout_s=0.5)
    assert kind(outcome) == "timeout"
    assert time.monotonic() - started < 3
    await eventually(lambda: not host_processes_with(f"sleep\0{marker}"), within=3)


async def test_cancel_kills_everything(backend: SandboxBackend, tmp_path: Path) -> None:
    sink = Recorder()
    marker = f"99{uuid.uuid4().int % 10**6}"
    payload = {"command": f"sleep {marker} & echo started; sleep {marker}"}
    execution = await backend.start(ctx(tmp_path, payload, sink=sink))
    await eventually(lambda: sink.text("stdout") == "started\n")
    assert host_processes_with(f"sleep\0{marker}")
    await asyncio.gather(execution.cancel(), execution.cancel())
    outcome = await asyncio.wait_for(execution.wait(), WAIT_S)
    assert kind(outcome) == "cancelled"
    await eventually(lambda: not host_processes_with(f"sleep\0{marker}"), within=3)


async def test_close_cancels_running_jobs(backend: SandboxBackend, tmp_path: Path) -> None:
    execution = await backend.start(ctx(tmp_path, {"command": ["sleep", "100"]}))
    await backend.close()
    outcome = await asyncio.wait_for(execution.wait(), WAIT_S)
    assert kind(outcome) == "cancelled"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "command"),
        ({"command": []}, "command"),
        ({"command": ["echo", 1]}, "command[1]"),
        ({"command": "true", "env": {"A": 1}}, "env.A"),
        ({"command": "true", "network": "yes"}, "network"),
        ({"command": "true", "cwd": "/etc"}, "cwd"),
        ({"command": "true", "cwd": "../x"}, "cwd"),
        ({"command": "true", "memory_mb": "a lot"}, "memory_mb"),
        ({"command": "true", "cpu_time_s": -1}, "cpu_time_s"),
    ],
)
async def test_invalid_payload(
    backend: SandboxBackend, tmp_path: Path, payload: dict[str, Any], field: str
) -> None:
    outcome = await run(backend, tmp_path, payload)
    assert kind(outcome) == "invalid_payload"
    assert outcome.error is not None
    assert outcome.error["field"] == field
    assert not outcome.retryable


async def test_health_reports_limits_and_missing_bwrap(
    health_capabilities: dict[str, Any],
) -> None:
    assert health_capabilities["sandbox"] == "bwrap"
    assert {"memory", "cpu_time", "file_size"} <= set(health_capabilities["rlimits"])
    health = await SandboxBackend({"bwrap": "/nonexistent/bwrap"}).health()
    assert not health.ok
    assert "apt-get install bubblewrap" in health.detail


def test_cgroup_settings_v1_and_v2(tmp_path: Path) -> None:
    tree = CgroupTree(tmp_path, "blixard-sandbox")
    tree.version = "v2"
    assert tree.settings(64, 10, 0.5) == {
        "memory": {"memory.max": str(64 << 20), "memory.swap.max": "0"},
        "pids": {"pids.max": "12"},
        "cpu": {"cpu.max": "50000 100000"},
    }
    tree.version = "v1"
    settings = tree.settings(64, 10, None)
    assert settings["memory"]["memory.limit_in_bytes"] == str(64 << 20)
    assert settings["cpu"] == {}
    # A fake v1 tree: one directory per controller, removed again.
    for controller in ("memory", "pids"):
        (tmp_path / controller).mkdir()
        (tmp_path / controller / "cgroup.procs").touch()
    assert tree.detect() == ""
    assert tree.controllers == ("memory", "pids")
    cgroup = tree.create("job", {"pids": {"pids.max": "5"}})
    assert cgroup.procs_files == [
        str(tmp_path / "memory/blixard-sandbox/job/cgroup.procs"),
        str(tmp_path / "pids/blixard-sandbox/job/cgroup.procs"),
    ]
    assert not cgroup.oom_killed()
    assert cgroup.remove()
