"""Scheduling with real processes: ``blixard server`` and ``blixard worker`` subprocesses
over real HTTP, on SQLite (one server) and on PostgreSQL (two servers).

- A fleet-wide concurrency key with limit 2 and 4 workers: never more than 2 of its jobs
  run at once, sampled through the API every few milliseconds while 20 jobs of ~0.3 s run,
  and checked again afterwards from every job's claim and finish times.
- A job needing 2 GPUs is never claimed by a worker with 1 (``--gpus``), and no worker
  ever runs more GPUs' worth of jobs than it has.
- A tenant with a 10,000-job backlog does not delay another tenant's first job by more
  than a few claims.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import httpx
import pytest

from support.postgres import pg_schema_url, start_pg_server
from support.processes import ProcessGroup, ServerProcess, WorkerProcess, wait_until

pytestmark = pytest.mark.acceptance
__all__ = ["pg_schema_url"]  # the fixture, imported for pytest

TERMINAL = ("completed", "failed", "cancelled")
ACTIVE = ("claimed", "in_progress")


# -- helpers -----------------------------------------------------------------------------------
def ts(value: str | None) -> float:
    """An API timestamp (ISO 8601, Z) as epoch seconds."""
    assert value is not None, "expected a timestamp, got null"
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def submit_bulk(url: str, jobs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    response = httpx.post(f"{url}/api/v1/jobs/bulk", json={"jobs": list(jobs)}, timeout=120)
    assert response.status_code == 201, response.text
    out: list[dict[str, Any]] = response.json()["jobs"]
    return out


def list_jobs(
    url: str, *statuses: str, http: httpx.Client | None = None, **params: str
) -> list[dict[str, Any]]:
    """Every job in ``statuses`` (all pages). Pass ``http`` to reuse its connections (a
    fresh client costs tens of milliseconds: too slow for sampling)."""
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query: dict[str, Any] = {"status": list(statuses), "limit": 1000, **params}
        if cursor:
            query["cursor"] = cursor
        getter = http.get if http is not None else httpx.get
        response = getter(f"{url}/api/v1/jobs", params=query, timeout=30)
        response.raise_for_status()
        page = response.json()
        out += page["jobs"]
        cursor = page["next_cursor"]
        if not cursor:
            return out


def get_job(url: str, job_id: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/api/v1/jobs/{job_id}", timeout=10)
    response.raise_for_status()
    job: dict[str, Any] = response.json()
    return job


SLACK_S = 0.05
"""A job's ``claimed_at`` is the time its claim request reached the service, taken before
the claim's transaction waits for the writer (SQLite) or for locks (PostgreSQL): it can
precede the commit of the completion that made room for it by a few milliseconds. The
checks from job times therefore count an overlap only when it lasts longer than this."""


def max_overlap(intervals: Sequence[tuple[float, float, float]]) -> float:
    """The largest total weight of the [start + SLACK_S, end) intervals that overlap at one
    time."""
    events = sorted(
        [(start + SLACK_S, 1, weight) for start, _, weight in intervals]
        + [(end, 0, -weight) for _, end, weight in intervals]
    )  # at equal times an end (0) sorts before a start (1)
    current = peak = 0.0
    for _, _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak


def wait_all_terminal(url: str, ids: Sequence[str], procs: ProcessGroup, timeout: float) -> None:
    wanted = set(ids)

    def done() -> bool:
        ended = {j["id"] for j in list_jobs(url, *TERMINAL)}
        return wanted <= ended

    wait_until(
        done,
        timeout,
        0.1,
        message=lambda: f"all {len(wanted)} jobs to end\n{procs.describe(20)}",
    )


# -- 1. a fleet-wide concurrency key -----------------------------------------------------------
KEY_JOBS = 20
KEY_LIMIT = 2
JOB_S = 0.3


def run_key_limit(servers: Sequence[ServerProcess], workers: Sequence[WorkerProcess]) -> None:
    started = time.monotonic()
    urls = [s.url for s in servers]
    body = [
        {
            "payload": {"duration": JOB_S, "result": {"i": i}},
            "worker_types": ["mock"],
            "concurrency_key": "deploy",
            "concurrency_limit": KEY_LIMIT,
        }
        for i in range(KEY_JOBS)
    ]
    ids = [j["id"] for j in submit_bulk(urls[0], body)]
    # Sample the running jobs of the key through the API, round-robin over the servers.
    samples: list[int] = []
    n = 0
    deadline = time.monotonic() + 30
    with httpx.Client() as http:
        while time.monotonic() < deadline:
            active = list_jobs(urls[n % len(urls)], *ACTIVE, http=http)
            n += 1
            samples.append(sum(1 for j in active if j["concurrency_key"] == "deploy"))
            if n % 50 == 0 and len(list_jobs(urls[0], "completed", http=http)) == KEY_JOBS:
                break
            time.sleep(0.002)
    jobs = [get_job(urls[0], job_id) for job_id in ids]
    assert all(j["status"] == "completed" for j in jobs), [(j["id"], j["status"]) for j in jobs]
    # Afterwards, from the server's own times: each attempt holds the key from its claim
    # until its end was recorded.
    intervals = [
        (ts(a["claimed_at"]), ts(a["finished_at"]), 1.0) for j in jobs for a in j["attempts"]
    ]
    ran_on = {a["worker_id"] for j in jobs for a in j["attempts"]}
    elapsed = time.monotonic() - started
    print(
        f"\n{len(samples)} samples, peak {max(samples)} running; overlap from job times "
        f"{max_overlap(intervals):g}; ran on {len(ran_on)} workers; {elapsed:.1f}s"
    )
    assert max(samples) <= KEY_LIMIT, f"sampled {max(samples)} running: {samples}"
    assert max_overlap(intervals) <= KEY_LIMIT
    assert max(samples) == KEY_LIMIT, "the limit was never reached: a vacuous run"
    assert len(ran_on) >= 2, f"every job ran on one worker ({ran_on}): not a fleet-wide test"
    assert {w.worker_id for w in workers} >= ran_on


@pytest.mark.timeout(60)
def test_concurrency_key_limit_holds_across_four_workers_sqlite(procs: ProcessGroup) -> None:
    server = procs.start_server()
    workers = [
        procs.start_worker(server.url, "mock", concurrency=4, name=f"worker-{i}") for i in range(4)
    ]
    run_key_limit([server], workers)


@pytest.mark.timeout(90)
def test_concurrency_key_limit_holds_across_two_servers_postgres(
    pg_schema_url: str, procs: ProcessGroup
) -> None:
    servers = [start_pg_server(procs, pg_schema_url, name=f"server-{i}") for i in range(2)]
    workers = [
        procs.start_worker(servers[i % 2].url, "mock", concurrency=4, name=f"worker-{i}")
        for i in range(4)
    ]
    run_key_limit(servers, workers)


# -- 2. GPUs -----------------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_a_job_needing_two_gpus_never_runs_on_a_worker_with_one(procs: ProcessGroup) -> None:
    server = procs.start_server()
    one = procs.start_worker(server.url, "mock", concurrency=4, name="one-gpu", gpus=1)
    two = procs.start_worker(server.url, "mock", concurrency=4, name="two-gpu", gpus=2)
    assert one.record() is not None
    assert two.record() is not None
    gpus_of = {one.worker_id: 1, two.worker_id: 2}
    records = {w["id"]: w for w in httpx.get(f"{server.url}/api/v1/workers").json()}
    assert records[one.worker_id]["resources"]["gpu"] == 1, records[one.worker_id]
    assert records[two.worker_id]["resources"]["gpu"] == 2, records[two.worker_id]

    def job(gpu: int, i: int) -> dict[str, Any]:
        return {
            "payload": {"duration": 0.2, "result": {"gpu": gpu, "i": i}},
            "worker_types": ["mock"],
            "requirements": {"gpu": gpu},
        }

    ids = [j["id"] for j in submit_bulk(server.url, [job(2, i) for i in range(6)])]
    ids += [j["id"] for j in submit_bulk(server.url, [job(1, i) for i in range(8)])]
    wait_all_terminal(server.url, ids, procs, 40)
    jobs = [get_job(server.url, job_id) for job_id in ids]
    assert all(j["status"] == "completed" for j in jobs), [(j["id"], j["status"]) for j in jobs]
    attempts = [(j["requirements"]["gpu"], a) for j in jobs for a in j["attempts"]]
    on_one = [(gpu, a["worker_id"]) for gpu, a in attempts if a["worker_id"] == one.worker_id]
    assert all(gpu <= 1 for gpu, _ in on_one), f"the 1-GPU worker ran {on_one}"
    assert on_one, "the 1-GPU worker ran nothing: it never competed"
    # No worker ever held more GPUs' worth of jobs than it has.
    for worker_id, gpus in gpus_of.items():
        held = [
            (ts(a["claimed_at"]), ts(a["finished_at"]), float(gpu))
            for gpu, a in attempts
            if a["worker_id"] == worker_id
        ]
        assert max_overlap(held) <= gpus, (worker_id, held)
    print(f"\n1-GPU worker ran {len(on_one)} jobs, 2-GPU worker {len(attempts) - len(on_one)}")


# -- 3. a 10,000-job backlog and a newcomer -------------------------------------------------------
BACKLOG = 10_000
CLAIM_BATCH = 4  # the worker's concurrency: no claim asks for more


def run_backlog(procs: ProcessGroup, url: str) -> None:
    body = [
        {"payload": {"duration": 0.05}, "worker_types": ["mock"], "tenant": "backlog"}
        for _ in range(BACKLOG)
    ]
    started = time.monotonic()
    submit_bulk(url, body)
    submitted = time.monotonic()
    (newcomer,) = submit_bulk(
        url, [{"payload": {"result": "mine"}, "worker_types": ["mock"], "tenant": "newcomer"}]
    )
    worker = procs.start_worker(url, "mock", concurrency=CLAIM_BATCH, name="worker")
    wait_until(
        lambda: get_job(url, newcomer["id"])["status"] == "completed",
        20,
        0.02,
        message=lambda: f"the newcomer's job to complete\n{procs.describe(20)}",
    )
    worker.terminate_and_wait()
    ran = list_jobs(url, "claimed", "in_progress", "completed", "pending", tenant="backlog")
    started_jobs = [j for j in ran if j["claimed_at"] is not None]
    newcomer_claimed = ts(get_job(url, newcomer["id"])["claimed_at"])
    before = sum(1 for j in started_jobs if ts(j["claimed_at"]) < newcomer_claimed)
    position = before + 1
    print(
        f"\nsubmitted {BACKLOG} backlog jobs in {submitted - started:.1f}s; the newcomer's "
        f"job started #{position} of {len(started_jobs) + 1} started jobs "
        f"(claim batch {CLAIM_BATCH})"
    )
    assert len(ran) == BACKLOG
    assert position <= 3 * CLAIM_BATCH, f"the newcomer's job started #{position}"


@pytest.mark.timeout(90)
def test_a_backlog_does_not_delay_another_tenants_first_job_sqlite(procs: ProcessGroup) -> None:
    server = procs.start_server()
    run_backlog(procs, server.url)


@pytest.mark.timeout(90)
def test_a_backlog_does_not_delay_another_tenants_first_job_postgres(
    pg_schema_url: str, procs: ProcessGroup
) -> None:
    server = start_pg_server(procs, pg_schema_url, name="server")
    run_backlog(procs, server.url)
