"""The real Agent, in-process, with real backends, against a real server over HTTP."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
from itest_support import (
    TEST_SETTINGS,
    Harness,
    RunningServer,
    eventually,
    get_job,
    register_worker,
    submit,
)

from blixard.client import AsyncClient
from blixard.service.settings import ServerSettings

HERE = Path(__file__).resolve().parent
FAST_BACKOFF = {"base_s": 0.05, "jitter": 0}
HEARTBEAT_S = TEST_SETTINGS.heartbeat_interval_s


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def finished(client: AsyncClient, job_id: str, timeout: float = 8.0) -> dict[str, Any]:
    job = await client.wait(job_id, timeout_s=timeout)
    assert job["status"] in {"completed", "failed", "cancelled"}, job
    return job


async def test_mock_job_fails_once_then_completes(
    harness: Harness, url: str, client: AsyncClient
) -> None:
    agent = await harness.start_agent(url, worker_type="mock")
    job = await client.submit(
        {"fail_attempts": 1, "result": {"answer": 42}}, max_attempts=3, backoff=FAST_BACKOFF
    )
    done = await finished(client, job["id"])
    assert done["status"] == "completed"
    assert done["result"] == {"answer": 42}
    assert done["attempt"] == 2
    got = await client.get(job["id"])
    assert [(a["attempt"], a["outcome"], a["worker_id"]) for a in got["attempts"]] == [
        (1, "failed", agent.worker_id),
        (2, "completed", agent.worker_id),
    ]
    assert got["attempts"][0]["error"]["kind"] == "mock_failure"
    assert got["attempts"][0]["error"]["attempt"] == 1
    assert (agent.agent.completed, agent.agent.failed) == (1, 1)


async def test_mock_job_out_of_attempts_fails(
    harness: Harness, url: str, client: AsyncClient
) -> None:
    await harness.start_agent(url, worker_type="mock")
    job = await client.submit({"fail": True}, max_attempts=2, backoff=FAST_BACKOFF)
    done = await finished(client, job["id"])
    assert done["status"] == "failed"
    assert done["error"]["kind"] == "mock_failure"
    assert [a["outcome"] for a in done["attempts"]] == ["failed", "failed"]


async def test_process_echo(harness: Harness, url: str, client: AsyncClient) -> None:
    await harness.start_agent(url, worker_type="process")
    job = await client.submit({"command": ["sh", "-c", "echo hi"]}, worker_types=["process"])
    done = await finished(client, job["id"])
    assert done["status"] == "completed", done
    assert done["result"]["exit_code"] == 0
    assert done["result"]["stdout"] == "hi\n"
    assert done["started_at"] is not None
    assert done["started_at"] <= done["finished_at"]


async def test_process_exit_code_failure(harness: Harness, url: str, client: AsyncClient) -> None:
    await harness.start_agent(url, worker_type="process")
    job = await client.submit({"command": "echo oops >&2; exit 3"}, max_attempts=1)
    done = await finished(client, job["id"])
    assert done["status"] == "failed"
    assert done["error"]["kind"] == "exit_code"
    assert done["error"]["exit_code"] == 3
    assert "oops" in done["error"]["stderr"]


async def test_process_timeout_is_killed(
    harness: Harness, url: str, client: AsyncClient, tmp_path: Path
) -> None:
    await harness.start_agent(url, worker_type="process")
    pids = tmp_path / "pids"
    job = await client.submit(
        {"command": ["sh", "-c", f"echo $$ >> {pids}; exec sleep 30"]},
        timeout_s=0.5,
        max_attempts=2,
        backoff=FAST_BACKOFF,
    )
    started = time.monotonic()
    done = await finished(client, job["id"])
    elapsed = time.monotonic() - started
    assert done["status"] == "failed"
    assert done["error"]["kind"] == "timeout"
    assert [(a["attempt"], a["outcome"]) for a in done["attempts"]] == [
        (1, "failed"),
        (2, "failed"),
    ]
    assert all(a["error"]["kind"] == "timeout" for a in done["attempts"])
    assert 1.0 <= elapsed < 5.0  # two 0.5s attempts, far from sleep's 30s
    recorded = [int(p) for p in pids.read_text().split()]
    assert len(recorded) == 2
    await eventually(lambda: not any(alive(p) for p in recorded), 3, what="sleeps killed")


async def test_cancel_running_process_kills_it(
    harness: Harness, url: str, client: AsyncClient, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    agent = await harness.start_agent(url, worker_type="process")
    pid_file = tmp_path / "pid"
    job = await client.submit({"command": ["sh", "-c", f"echo $$ > {pid_file}; exec sleep 30"]})

    async def running() -> bool:
        return pid_file.exists() and pid_file.read_text().strip() != ""

    await eventually(running, 5, what="the process started")
    pid = int(pid_file.read_text())
    await eventually(
        lambda: get_job_status(client, job["id"], "in_progress"), 5, what="in_progress"
    )
    assert alive(pid)
    cancelled_at = time.monotonic()
    await client.cancel(job["id"], reason="changed my mind")
    await eventually(lambda: not alive(pid), 5, 0.01, what="the process is killed")
    kill_s = time.monotonic() - cancelled_at
    assert kill_s < 2 * HEARTBEAT_S + 0.4, f"killed after {kill_s:.2f}s"
    await eventually(lambda: not agent.agent.running, 3, what="the agent freed the slot")
    # The job stays cancelled: a late report from the agent is refused.
    r = await http.post(
        f"/api/v1/jobs/{job['id']}/report",
        json={"worker_id": agent.worker_id, "attempt": 1, "kind": "completed", "result": 1},
    )
    assert r.status_code == 409
    assert r.json()["code"] == "stale_report"
    await asyncio.sleep(2 * HEARTBEAT_S)  # let any report the agent still had go out
    got = await client.get(job["id"])
    assert got["status"] == "cancelled"
    assert got["error"] == {"kind": "cancelled", "message": "changed my mind"}
    assert [(a["attempt"], a["outcome"]) for a in got["attempts"]] == [(1, "cancelled")]
    assert agent.agent.completed == 0


async def get_job_status(client: AsyncClient, job_id: str, status: str) -> bool:
    return bool((await client.get(job_id))["status"] == status)


async def test_python_backend_returns_a_value(
    harness: Harness, url: str, client: AsyncClient
) -> None:
    await harness.start_agent(url, worker_type="python", backend_options={"path": str(HERE)})
    job = await client.submit(
        {"function": "itest_funcs:multiply", "args": [6, 7], "kwargs": {"label": "x"}}
    )
    done = await finished(client, job["id"], timeout=15)
    assert done["status"] == "completed", done
    assert done["result"] == {"product": 42, "label": "x"}


async def test_python_backend_exception_fails(
    harness: Harness, url: str, client: AsyncClient
) -> None:
    await harness.start_agent(url, worker_type="python", backend_options={"path": str(HERE)})
    job = await client.submit(
        {"function": "itest_funcs:explode", "args": ["kaboom"]}, max_attempts=1
    )
    done = await finished(client, job["id"], timeout=15)
    assert done["status"] == "failed"
    assert done["error"]["kind"] == "exception"
    assert "kaboom" in done["error"]["message"]


async def test_agent_concurrency_is_respected(
    harness: Harness, url: str, client: AsyncClient
) -> None:
    agent = await harness.start_agent(url, worker_type="mock", concurrency=2)
    jobs = await client.submit_many([{"payload": {"duration": 0.3}} for _ in range(6)])
    ids = [j["id"] for j in jobs]
    most_server = most_agent = 0
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        (worker,) = await client.workers()
        most_server = max(most_server, worker["running"])
        most_agent = max(most_agent, len(agent.agent.running))
        statuses = [(await client.get(i))["status"] for i in ids]
        if all(s == "completed" for s in statuses):
            break
        await asyncio.sleep(0.02)
    assert all(s == "completed" for s in statuses), statuses
    assert most_agent <= 2
    assert most_server <= 2
    assert most_agent == 2  # it did run two at once
    assert most_server == 2


async def test_drain_finishes_running_jobs_and_goes_offline(
    harness: Harness, url: str, client: AsyncClient
) -> None:
    agent = await harness.start_agent(url, worker_type="mock", concurrency=2)
    jobs = await client.submit_many([{"payload": {"duration": 0.6, "result": i}} for i in range(2)])

    async def both_running() -> bool:
        return all([(await client.get(j["id"]))["status"] == "in_progress" for j in jobs])

    await eventually(both_running, 5, what="both jobs in progress")
    agent.agent.drain()
    late = await client.submit({})
    code = await asyncio.wait_for(agent.task, 10)
    assert code == 0
    for i, j in enumerate(jobs):
        got = await client.get(j["id"])  # reported before the agent exited
        assert got["status"] == "completed"
        assert got["result"] == i
    got_late = await client.get(late["id"])
    assert got_late["status"] == "pending"
    assert got_late["attempt"] == 0
    (worker,) = await client.workers()
    assert worker["id"] == agent.worker_id
    assert worker["status"] == "offline"
    assert worker["running"] == 0


async def test_server_drain_request_stops_the_agent(
    harness: Harness, url: str, client: AsyncClient
) -> None:
    agent = await harness.start_agent(url, worker_type="mock")
    job = await client.submit({"duration": 0.5})
    await eventually(lambda: get_job_status(client, job["id"], "in_progress"), 5)
    await client.drain(agent.worker_id)
    code = await asyncio.wait_for(agent.task, 10)  # the heartbeat says drain
    assert code == 0
    assert (await client.get(job["id"]))["status"] == "completed"
    assert (await client.workers())[0]["status"] == "offline"


async def test_agent_survives_a_server_restart(harness: Harness, tmp_path: Path) -> None:
    settings = ServerSettings(lease_ttl_s=5.0, worker_ttl_s=10.0, reaper_interval_s=0.1)
    first = await harness.start_server(settings)
    port = first.port
    agent = await harness.start_agent(first.url, worker_type="mock")
    async with AsyncClient(first.url) as client:
        job = await client.submit({"duration": 1.5, "result": "survived"})
        await eventually(lambda: get_job_status(client, job["id"], "in_progress"), 5)
        await first.stop()
        # the job finishes while no server is up; its report waits in the agent
        await eventually(lambda: agent.agent.completed == 1, 5, what="the job ran to its end")
        assert not agent.task.done()
        second: RunningServer = await harness.start_server(settings, port=port)
        assert second.port == port
        done = await finished(client, job["id"], timeout=10)
    assert done["status"] == "completed"
    assert done["result"] == "survived"
    assert done["attempt"] == 1  # the same attempt: never re-run
    assert [(a["attempt"], a["outcome"], a["worker_id"]) for a in done["attempts"]] == [
        (1, "completed", agent.worker_id)
    ]
    assert not agent.task.done()


async def test_agent_registers_again_with_a_server_that_forgot_it(harness: Harness) -> None:
    """A server on a fresh database answers the agent's heartbeat and claim with 404: the
    agent must register again (agent.py catches WorkerNotFound for that)."""
    first = await harness.start_server()
    port = first.port
    agent = await harness.start_agent(first.url, worker_type="mock")
    await first.stop()
    second = await harness.start_server(port=port, db="fresh.db")
    async with httpx.AsyncClient(base_url=second.url) as http:

        async def known() -> bool:
            r = await http.get(f"/api/v1/workers/{agent.worker_id}")
            return r.status_code == 200

        await eventually(known, 5, 0.1, what="the agent registered with the new server")
        job = await submit(http, {})
        got = await eventually(
            lambda: _completed(http, job["id"]), 5, what="the job ran on the re-registered agent"
        )
    assert got["claimed_by"] == agent.worker_id


async def _completed(http: httpx.AsyncClient, job_id: str) -> dict[str, Any] | None:
    got = await get_job(http, job_id)
    return got if got["status"] == "completed" else None


async def test_agent_stop_now_reports_jobs_for_retry(
    harness: Harness, url: str, client: AsyncClient
) -> None:
    agent = await harness.start_agent(url, worker_type="mock")
    job = await client.submit({"duration": 30}, backoff=FAST_BACKOFF)
    await eventually(lambda: get_job_status(client, job["id"], "in_progress"), 5)
    agent.agent.stop_now()
    assert await asyncio.wait_for(agent.task, 10) == 0
    got = await client.get(job["id"])
    assert got["status"] == "pending"  # retried elsewhere at once, not after a lease expiry
    assert got["attempts"][0]["error"]["kind"] == "worker_shutdown"


async def test_two_agents_share_the_work(
    harness: Harness, url: str, client: AsyncClient, http: httpx.AsyncClient
) -> None:
    worker_type = "mock"
    a = await harness.start_agent(url, worker_type=worker_type, concurrency=2)
    b = await harness.start_agent(url, worker_type=worker_type, concurrency=2)
    await register_worker(http, "idle-other-type", worker_type="wasm")
    jobs = await client.submit_many(
        [{"payload": {"duration": 0.2}, "worker_types": [worker_type]} for _ in range(8)]
    )
    done = [await finished(client, j["id"]) for j in jobs]
    assert all(d["status"] == "completed" for d in done)
    by = {d["claimed_by"] for d in done}
    assert by <= {a.worker_id, b.worker_id}
    assert len(by) == 2
    assert all(d["attempt"] == 1 for d in done)
