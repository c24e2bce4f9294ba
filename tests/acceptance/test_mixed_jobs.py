"""200 mixed process jobs on one server and two workers, submitted in one bulk request.

Every job must end in the state its kind calls for, with the attempt history to match;
no completed job may have been completed twice; both workers must have done work; and no
job process may outlive its job (timed out and cancelled ones are killed).
"""

from __future__ import annotations

import random
import shlex
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from blixard.client import Client
from support.processes import ProcessGroup, descendants, pid_alive, wait_until

pytestmark = pytest.mark.acceptance

N_CANCEL = 6  # fewer than the 8 slots: they all run at once, then are cancelled
N_TIMEOUT = 10
N_ALWAYS_FAIL = 20
N_FLAKY = 40
N_OK = 200 - N_CANCEL - N_TIMEOUT - N_ALWAYS_FAIL - N_FLAKY
FAST_BACKOFF = {"base_s": 0.1, "factor": 1.0, "max_s": 0.2}


def _build_jobs(tmp_path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(kind, JobIn body) for every job, cancellable ones first (and highest priority)."""
    (tmp_path / "markers").mkdir()
    (tmp_path / "pids").mkdir()
    jobs: list[tuple[str, dict[str, Any]]] = []
    for i in range(N_CANCEL):
        pid_file = shlex.quote(str(tmp_path / "pids" / f"p{i}"))
        command = f"echo $$ > {pid_file}.tmp && mv {pid_file}.tmp {pid_file} && exec sleep 30"
        jobs.append(("cancel", {"payload": {"command": command}, "priority": 10}))
    others: list[tuple[str, dict[str, Any]]] = []
    for _ in range(N_TIMEOUT):
        others.append(("timeout", {"payload": {"command": ["sleep", "30"]}, "timeout_s": 0.5}))
    for _ in range(N_ALWAYS_FAIL):
        others.append(("always_fail", {"payload": {"command": ["false"]}, "max_attempts": 2}))
    for i in range(N_FLAKY):
        marker = shlex.quote(str(tmp_path / "markers" / f"M_{i}"))
        command = f"test -f {marker} || {{ touch {marker}; exit 1; }}"
        others.append(("flaky", {"payload": {"command": command}, "max_attempts": 3}))
    for i in range(N_OK):
        command = ["true"] if i % 2 else ["echo", f"job-{i}"]
        others.append(("ok", {"payload": {"command": command}}))
    random.Random(42).shuffle(others)
    jobs += others
    for _, body in jobs:
        body["worker_types"] = ["process"]
        body["backoff"] = FAST_BACKOFF
        body.setdefault("max_attempts", 1)
    return jobs


def _pid_of(tmp_path: Path, i: int) -> int | None:
    path = tmp_path / "pids" / f"p{i}"
    return int(path.read_text()) if path.exists() else None


def test_mixed_jobs_reach_their_expected_end(procs: ProcessGroup, tmp_path: Path) -> None:
    server = procs.start_server(lease_ttl=2)
    worker_a = procs.start_worker(server.url, "process", concurrency=4, name="worker-a")
    worker_b = procs.start_worker(server.url, "process", concurrency=4, name="worker-b")
    client = Client(server.url)
    specs = _build_jobs(tmp_path)

    submitted = client.submit_many([body for _, body in specs])
    assert len(submitted) == 200, procs.describe()
    kinds = {job["id"]: kind for job, (kind, _) in zip(submitted, specs, strict=True)}
    bodies = {job["id"]: body for job, (_, body) in zip(submitted, specs, strict=True)}
    cancel_ids = [job["id"] for job in submitted[:N_CANCEL]]
    assert all(kinds[j] == "cancel" for j in cancel_ids)

    # The long jobs to cancel start first (priority 10); cancel each once it really runs.
    def all_running() -> list[int] | None:
        statuses = [client.get(j)["status"] for j in cancel_ids]
        pids = [_pid_of(tmp_path, i) for i in range(N_CANCEL)]
        if all(s == "in_progress" for s in statuses) and all(pids):
            return [p for p in pids if p]
        return None

    pids = wait_until(
        all_running,
        30,
        0.1,
        message=lambda: f"the {N_CANCEL} long jobs to run\n{procs.describe()}",
    )
    assert all(pid_alive(p) for p in pids), f"a job process died early: {pids}"
    for job_id in cancel_ids:
        assert client.cancel(job_id, "enough")["status"] == "cancelled"
    wait_until(
        lambda: not any(pid_alive(p) for p in pids),
        10,
        0.1,
        message=lambda: (
            f"cancelled jobs' processes to be killed: still alive "
            f"{[p for p in pids if pid_alive(p)]}\n{procs.describe()}"
        ),
    )

    def all_terminal() -> bool:
        counts = client.stats()["jobs_by_status"]
        return counts["completed"] + counts["failed"] + counts["cancelled"] == 200

    wait_until(
        all_terminal,
        90,
        0.2,
        message=lambda: f"all 200 jobs to end: {client.stats()}\n{procs.describe()}",
        ignore=(httpx.TransportError,),
    )

    jobs = {job_id: client.get(job_id) for job_id in kinds}
    problems: list[str] = []
    worker_of_completion: Counter[str] = Counter()
    for job_id, job in jobs.items():
        kind = kinds[job_id]
        outcomes = [a["outcome"] for a in job["attempts"]]
        errors = [(a["error"] or {}).get("kind") for a in job["attempts"]]
        got = (job["status"], job["attempt"], outcomes)

        def bad(what: str, job: dict[str, Any] = job, kind: str = kind, got: Any = got) -> None:
            problems.append(f"{kind} job {job['id']}: {what}; got {got}, error {job['error']}")

        if outcomes.count("completed") > 1:
            bad("completed more than once")
        if [a["attempt"] for a in job["attempts"]] != list(range(1, len(outcomes) + 1)):
            bad("attempt history is not 1..n")
        if job["status"] == "completed":
            worker_of_completion[job["attempts"][-1]["worker_id"]] += 1
        if kind == "ok":
            if got != ("completed", 1, ["completed"]):
                bad("expected completed on the first attempt")
            elif job["result"]["exit_code"] != 0:
                bad("completed without exit code 0")
            else:
                command = bodies[job_id]["payload"]["command"]
                stdout = job["result"]["stdout"]
                if command[0] == "echo" and stdout != f"{command[1]}\n":
                    bad(f"stdout {stdout!r}, expected {command[1]!r}")
        elif kind == "flaky":
            if got != ("completed", 2, ["failed", "completed"]):
                bad("expected one failure, then completed")
            elif errors[0] != "exit_code" or job["attempts"][0]["error"]["exit_code"] != 1:
                bad("the first attempt should have failed with exit code 1")
        elif kind == "always_fail":
            if got != ("failed", 2, ["failed", "failed"]):
                bad("expected failed after 2 failed attempts")
            elif job["error"]["kind"] != "exit_code" or errors != ["exit_code", "exit_code"]:
                bad("expected error kind exit_code")
        elif kind == "timeout":
            if job["status"] != "failed" or job["attempt"] != 1 or len(outcomes) != 1:
                bad("expected failed after a single attempt")
            elif job["error"]["kind"] != "timeout" or errors != ["timeout"]:
                bad("expected error kind timeout")
        elif kind == "cancel":
            if got != ("cancelled", 1, ["cancelled"]):
                bad("expected cancelled while running its first attempt")
            elif job["error"]["kind"] != "cancelled" or job["error"]["message"] != "enough":
                bad("expected error kind cancelled with the given reason")
    assert not problems, "\n".join(problems[:30]) + f"\n({len(problems)} problems)"

    counts = client.stats()["jobs_by_status"]
    expected = {
        "completed": N_OK + N_FLAKY,
        "failed": N_ALWAYS_FAIL + N_TIMEOUT,
        "cancelled": N_CANCEL,
    }
    assert {k: counts[k] for k in expected} == expected, counts
    assert len(list((tmp_path / "markers").iterdir())) == N_FLAKY

    ids = {worker_a.worker_id, worker_b.worker_id}
    assert set(worker_of_completion) == ids, (
        f"completions by worker {dict(worker_of_completion)}, workers {ids}"
    )
    assert all(worker_of_completion[w] >= 10 for w in ids), dict(worker_of_completion)

    # No job process outlives its job: timed out and cancelled ones were killed.
    for worker in (worker_a, worker_b):
        assert worker.running, worker.describe()
        wait_until(
            lambda w=worker: not descendants(w.pid),
            10,
            0.1,
            message=lambda w=worker: f"{w.name}'s job processes to end: {descendants(w.pid)}",
        )
    client.close()
