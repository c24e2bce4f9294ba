"""Workflows over HTTP, run by real agents: dependency order, failures, parents' results."""

from __future__ import annotations

import json
import random
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from itest_support import Harness, eventually, get_job, submit

from blixard.client import AsyncClient

TERMINAL = {"completed", "failed", "cancelled"}


def random_dag(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` mock steps, each depending on up to 3 earlier ones, listed shuffled (so the
    server has to order them)."""
    rng = random.Random(seed)
    steps = []
    for i in range(n):
        parents = rng.sample(range(i), min(i, rng.randint(0, 3)))
        steps.append(
            {
                "name": f"s{i:02d}",
                "depends_on": [f"s{p:02d}" for p in parents],
                "payload": {"duration": rng.choice([0, 0.005, 0.02]), "result": {"i": i}},
            }
        )
    rng.shuffle(steps)
    return steps


async def post_workflow(http: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    r = await http.post("/api/v1/workflows", json=body)
    assert r.status_code == 201, r.text
    submitted: dict[str, Any] = r.json()
    return submitted


async def refused(http: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    r = await http.post("/api/v1/workflows", json=body)
    assert r.status_code == 422, r.text
    problem: dict[str, Any] = r.json()
    return problem


async def group_done(http: httpx.AsyncClient, group_id: str, timeout: float = 20.0) -> str:
    async def ended() -> str | None:
        r = await http.get(f"/api/v1/groups/{group_id}", params={"limit": 1})
        assert r.status_code == 200, r.text
        status = str(r.json()["group"]["status"])
        return status if status in TERMINAL else None

    status: str = await eventually(ended, timeout, 0.05, f"group {group_id} ended")
    return status


async def jobs_by_step(http: httpx.AsyncClient, submitted: dict[str, Any]) -> dict[str, Any]:
    return {job["step"]: await get_job(http, job["id"]) for job in submitted["jobs"]}


def t(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def assert_ran_in_dependency_order(jobs: dict[str, dict[str, Any]]) -> None:
    """Every job completed once, and was claimed and started after each parent finished."""
    by_id = {job["id"]: job for job in jobs.values()}
    for job in jobs.values():
        assert job["status"] == "completed", job
        (attempt,) = job["attempts"]
        for parent_id in job["depends_on"]:
            parent_end = t(by_id[parent_id]["attempts"][0]["finished_at"])
            assert t(attempt["claimed_at"]) >= parent_end, (job["step"], parent_id)
            assert t(attempt["started_at"]) >= parent_end, (job["step"], parent_id)


async def test_a_dag_of_50_steps_runs_in_dependency_order(
    harness: Harness, url: str, http: httpx.AsyncClient
) -> None:
    await harness.start_agent(url, worker_type="mock", concurrency=4)
    await harness.start_agent(url, worker_type="mock", concurrency=4)
    steps = random_dag(50, seed=7)
    submitted = await post_workflow(http, {"steps": steps, "queue": "dag"})
    jobs = submitted["jobs"]
    assert len(jobs) == 50
    assert submitted["created"] == 50
    # Topological order, ids sorting the same way, one group, the queue default applied.
    position = {job["id"]: i for i, job in enumerate(jobs)}
    assert all(position[p] < position[job["id"]] for job in jobs for p in job["depends_on"])
    assert [job["id"] for job in jobs] == sorted(job["id"] for job in jobs)
    assert {job["group_id"] for job in jobs} == {submitted["group_id"]}
    assert {job["queue"] for job in jobs} == {"dag"}
    assert {job["status"] for job in jobs if job["depends_on"]} == {"blocked"}
    assert {job["status"] for job in jobs if not job["depends_on"]} == {"pending"}

    assert await group_done(http, submitted["group_id"]) == "completed"
    done = await jobs_by_step(http, submitted)
    assert_ran_in_dependency_order(done)
    assert {step: job["result"]["i"] for step, job in done.items()} == {
        f"s{i:02d}": i for i in range(50)
    }


async def test_a_failing_step_cancels_its_dependants_recursively(
    harness: Harness, url: str, http: httpx.AsyncClient
) -> None:
    await harness.start_agent(url, worker_type="mock", concurrency=2)
    submitted = await post_workflow(
        http,
        {
            "steps": [
                {"name": "fetch", "payload": {}},
                {
                    "name": "build",
                    "depends_on": ["fetch"],
                    "payload": {"fail": True, "retryable": False, "error_message": "no"},
                },
                {"name": "test", "depends_on": ["build"], "payload": {}},
                {"name": "deploy", "depends_on": ["test", "fetch"], "payload": {}},
                {"name": "docs", "depends_on": ["fetch"], "payload": {}},
            ]
        },
    )
    assert await group_done(http, submitted["group_id"]) == "failed"
    jobs = await jobs_by_step(http, submitted)
    assert {s: j["status"] for s, j in jobs.items()} == {
        "fetch": "completed",
        "build": "failed",
        "test": "cancelled",
        "deploy": "cancelled",
        "docs": "completed",
    }
    assert jobs["build"]["error"]["kind"] == "mock_failure"
    for step, parent in (("test", "build"), ("deploy", "test")):
        error = jobs[step]["error"]
        assert error["kind"] == "dependency_failed", error
        assert error["parent_id"] == jobs[parent]["id"], error
        assert jobs[step]["attempts"] == [], jobs[step]  # never ran


async def test_on_parent_failure_run_runs_anyway(
    harness: Harness, url: str, http: httpx.AsyncClient
) -> None:
    await harness.start_agent(url, worker_type="mock", concurrency=2)
    submitted = await post_workflow(
        http,
        {
            "steps": [
                {"name": "work", "payload": {"fail": True}, "max_attempts": 1},
                {
                    "name": "cleanup",
                    "depends_on": ["work"],
                    "on_parent_failure": "run",
                    "payload": {"result": "cleaned"},
                },
                {"name": "report", "depends_on": ["cleanup"], "payload": {}},
                {"name": "celebrate", "depends_on": ["work"], "payload": {}},
            ]
        },
    )
    assert await group_done(http, submitted["group_id"]) == "failed"
    jobs = await jobs_by_step(http, submitted)
    assert {s: j["status"] for s, j in jobs.items()} == {
        "work": "failed",
        "cleanup": "completed",
        "report": "completed",
        "celebrate": "cancelled",
    }
    assert jobs["cleanup"]["on_parent_failure"] == "run"
    assert t(jobs["cleanup"]["attempts"][0]["started_at"]) >= t(jobs["work"]["finished_at"])


async def test_a_step_reads_its_parents_results(
    harness: Harness, url: str, http: httpx.AsyncClient
) -> None:
    await harness.start_agent(url, worker_type="process", concurrency=2)
    submitted = await post_workflow(
        http,
        {
            "steps": [
                {"name": "version", "payload": {"command": ["echo", "v1.2"]}},
                {"name": "count", "payload": {"command": "printf 3"}},
                {
                    "name": "summary",
                    "depends_on": ["version", "count"],
                    "payload": {"command": 'cat "$BLIXARD_PARENT_RESULTS"'},
                },
                {"name": "alone", "payload": {"command": 'echo "${BLIXARD_PARENT_RESULTS-none}"'}},
            ]
        },
    )
    assert await group_done(http, submitted["group_id"]) == "completed"
    jobs = await jobs_by_step(http, submitted)
    parents = json.loads(jobs["summary"]["result"]["stdout"])
    assert sorted(parents) == ["count", "version"]
    assert parents["version"]["stdout"] == "v1.2\n"
    assert parents["count"]["stdout"] == "3"
    assert parents["version"] == jobs["version"]["result"]
    assert jobs["alone"]["result"]["stdout"] == "none\n"


async def test_steps_after_existing_jobs_and_results_by_job_id(
    harness: Harness, url: str, http: httpx.AsyncClient, client: AsyncClient
) -> None:
    """``after``: an existing job is a parent too; its result is under its id."""
    await harness.start_agent(url, worker_type="process")
    existing = await submit(http, {"command": "printf outside"})
    submitted = await post_workflow(
        http,
        {
            "steps": [
                {
                    "name": "reader",
                    "after": [existing["id"]],
                    "payload": {"command": 'cat "$BLIXARD_PARENT_RESULTS"'},
                }
            ]
        },
    )
    (job,) = submitted["jobs"]
    assert job["depends_on"] == [existing["id"]]
    done = await client.wait(job["id"], 10)
    assert done["status"] == "completed", done
    results = json.loads(done["result"]["stdout"])
    assert results[existing["id"]]["stdout"] == "outside"


async def test_refusals_name_the_step_and_insert_nothing(
    http: httpx.AsyncClient, client: AsyncClient
) -> None:
    def wf(*steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"steps": [{"payload": {}, **s} for s in steps], **extra}

    cycle = await refused(
        http,
        wf(
            {"name": "a"},
            {"name": "b", "depends_on": ["a", "d"]},
            {"name": "c", "depends_on": ["b"]},
            {"name": "d", "depends_on": ["c"]},
        ),
    )
    assert cycle["field"] == "steps"
    assert cycle["detail"] == "steps: cycle b -> d -> c -> b (each step depends on the next)"
    assert cycle["cycle"] == ["b", "d", "c", "b"]

    unknown = await refused(http, wf({"name": "a", "depends_on": ["nope"]}))
    assert unknown["field"] == "steps.a.depends_on[0]"
    duplicate = await refused(http, wf({"name": "a"}, {"name": "a"}))
    assert duplicate["field"] == "steps[1].name"
    bad_field = await refused(http, wf({"name": "a"}, {"name": "b", "priority": 10**9}))
    assert bad_field["field"] == "steps[1].priority"
    bad_payload = await refused(http, {"steps": [{"name": "a", "payload": [1]}]})
    assert bad_payload["field"] == "steps[0].payload"
    other_tenant = await refused(http, wf({"name": "a", "tenant": "acme"}))
    assert other_tenant["field"] == "steps[0].tenant"
    # The last step in topological order names an unknown job: nothing is inserted.
    missing = await refused(
        http, wf({"name": "z", "depends_on": ["a"], "after": ["no-such-job"]}, {"name": "a"})
    )
    assert missing["field"] == "steps.z.after[0]"
    assert (await client.list_jobs(limit=10))["jobs"] == []

    # A step whose idempotency key exists is that job; depending on it is refused.
    first = await client.submit({}, idempotency_key="once")
    reused = await refused(
        http,
        wf({"name": "a", "idempotency_key": "once"}, {"name": "b", "depends_on": ["a"]}),
    )
    assert reused["field"] == "steps.b.depends_on[0]"
    alone = await post_workflow(http, wf({"name": "other"}))
    r = await http.post("/api/v1/workflows", json=wf({"name": "a", "idempotency_key": "once"}))
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 0
    assert r.json()["jobs"][0]["id"] == first["id"]
    assert alone["created"] == 1


async def test_tenant_queue_and_group_of_a_workflow(
    http: httpx.AsyncClient, client: AsyncClient
) -> None:
    submitted = await post_workflow(
        http,
        {
            "tenant": "acme",
            "queue": "etl",
            "group_id": "nightly-etl",
            "steps": [
                {"name": "extract", "payload": {}},
                {"name": "load", "depends_on": ["extract"], "payload": {}, "queue": "db"},
            ],
        },
    )
    assert submitted["group_id"] == "nightly-etl"
    extract, load = submitted["jobs"]
    assert (extract["tenant"], extract["queue"], extract["step"]) == ("acme", "etl", "extract")
    assert (load["tenant"], load["queue"], load["step"]) == ("acme", "db", "load")
    assert load["depends_on"] == [extract["id"]]
    assert load["deps_pending"] == 1
    listed = await client.list_jobs(group_id="nightly-etl")
    assert sorted(j["id"] for j in listed["jobs"]) == sorted([extract["id"], load["id"]])
    via_client = await client.submit_workflow(
        [{"name": "one", "payload": {}}, {"name": "two", "payload": {}, "depends_on": ["one"]}],
        tenant="acme",
    )
    assert [j["step"] for j in via_client["jobs"]] == ["one", "two"]
    assert {j["tenant"] for j in via_client["jobs"]} == {"acme"}


async def test_a_python_step_gets_its_parents_as_an_argument(
    harness: Harness, url: str, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    (tmp_path / "wf_steps.py").write_text(
        "def version():\n"
        "    return {'version': 3}\n"
        "\n"
        "def check(minimum, parents):\n"
        "    return {'ok': parents['version']['version'] >= minimum, 'from': sorted(parents)}\n"
    )
    await harness.start_agent(url, worker_type="python", backend_options={"path": str(tmp_path)})
    submitted = await post_workflow(
        http,
        {
            "steps": [
                {"name": "version", "payload": {"function": "wf_steps:version"}},
                {
                    "name": "check",
                    "depends_on": ["version"],
                    "payload": {"function": "wf_steps:check", "args": [2]},
                },
            ]
        },
    )
    assert await group_done(http, submitted["group_id"]) == "completed"
    jobs = await jobs_by_step(http, submitted)
    assert jobs["check"]["result"] == {"ok": True, "from": ["version"]}
