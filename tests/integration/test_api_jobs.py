"""The jobs API over real HTTP: submit, get, list, cancel, retry, wait."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from itest_support import claim, eventually, get_job, heartbeat, register_worker, report, submit

from blixard.client import AsyncClient
from blixard.errors import (
    InvalidTransition,
    JobNotFound,
    NotFound,
    PayloadTooLarge,
    ValidationError,
)


async def test_submit_single(http: httpx.AsyncClient) -> None:
    r = await http.post(
        "/api/v1/jobs",
        json={
            "payload": {"command": ["echo", "hi"], "n": 1},
            "queue": "emails",
            "tenant": "acme",
            "worker_types": ["process", "process", "wasm"],
            "requirements": {"cpu": 0.5, "labels": {"zone": "eu"}},
            "priority": 5,
            "max_attempts": 4,
            "timeout_s": 30,
        },
    )
    assert r.status_code == 201
    job = r.json()
    assert job["status"] == "pending"
    assert job["attempt"] == 0
    assert job["payload"] == {"command": ["echo", "hi"], "n": 1}
    assert (job["queue"], job["tenant"], job["priority"]) == ("emails", "acme", 5)
    assert job["worker_types"] == ["process", "wasm"]
    assert job["requirements"] == {
        "cpu": 0.5,
        "memory_mb": 0,
        "gpu": 0,
        "labels": {"zone": "eu"},
        "constraints": [],
    }
    assert (job["max_attempts"], job["timeout_s"]) == (4, 30)
    assert job["finished_at"] is None
    assert job["claimed_by"] is None
    assert job["created_at"].endswith("Z")
    fetched = await get_job(http, job["id"])
    assert fetched["attempts"] == []
    # A read diagnoses a waiting job: no worker is online in this test.
    assert fetched["unschedulable"] == "no worker is online"
    assert {k: v for k, v in fetched.items() if k not in ("attempts", "unschedulable")} == {
        k: v for k, v in job.items() if k != "unschedulable"
    }


async def test_submit_through_the_client(client: AsyncClient) -> None:
    job = await client.submit({"x": 1}, queue="q1", priority=-3)
    again = await client.get(job["id"])
    assert again["id"] == job["id"]
    assert (again["queue"], again["priority"], again["payload"]) == ("q1", -3, {"x": 1})


async def test_bulk_submit(http: httpx.AsyncClient) -> None:
    bodies = [{"payload": {"i": i}, "queue": "bulk"} for i in range(5)]
    r = await http.post("/api/v1/jobs/bulk", json={"jobs": bodies})
    assert r.status_code == 201
    out = r.json()
    assert out["created"] == 5
    assert [j["payload"]["i"] for j in out["jobs"]] == [0, 1, 2, 3, 4]
    assert len({j["id"] for j in out["jobs"]}) == 5
    listed = (await http.get("/api/v1/jobs", params={"queue": "bulk"})).json()["jobs"]
    assert {j["id"] for j in listed} == {j["id"] for j in out["jobs"]}


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"queue": "not a name"}, "jobs[3].queue"),  # refused by the domain
        ({"max_attempts": 0}, "jobs[3].max_attempts"),
        ({"backoff": {"factor": 0.5}}, "jobs[3].backoff.factor"),
        ({"priority": "high"}, "jobs[3].priority"),  # refused by the request schema
        ({"colour": "red"}, "jobs[3].colour"),
    ],
)
async def test_bulk_is_all_or_nothing(
    http: httpx.AsyncClient, client: AsyncClient, bad: dict[str, Any], field: str
) -> None:
    bodies: list[dict[str, Any]] = [{"payload": {"i": i}} for i in range(5)]
    bodies[3].update(bad)
    r = await http.post("/api/v1/jobs/bulk", json={"jobs": bodies})
    assert r.status_code == 422
    problem = r.json()
    assert problem["status"] == 422
    assert problem["code"] == "invalid"
    assert problem["field"] == field
    assert problem["detail"].startswith(field)
    assert (await http.get("/api/v1/jobs")).json()["jobs"] == []
    with pytest.raises(ValidationError) as info:
        await client.submit_many(bodies)
    assert info.value.field == field
    assert (await client.list_jobs())["jobs"] == []


async def test_bulk_payload_too_large_names_the_item(http: httpx.AsyncClient) -> None:
    bodies: list[dict[str, Any]] = [{"payload": {"i": i}} for i in range(3)]
    bodies[1]["payload"] = {"blob": "x" * (1024 * 1024)}
    r = await http.post("/api/v1/jobs/bulk", json={"jobs": bodies})
    assert r.status_code == 413
    assert r.json()["code"] == "too_large"
    assert r.json()["field"] == "jobs[1].payload"
    assert (await http.get("/api/v1/jobs")).json()["jobs"] == []


async def test_bulk_payload_too_large_keeps_the_details(http: httpx.AsyncClient) -> None:
    """A single submit's 413 carries ``limit``; the bulk one must not lose it when the
    field gets its ``jobs[i].`` prefix (api/convert.py re-raises without the details)."""
    single = await http.post("/api/v1/jobs", json={"payload": {"blob": "x" * (1024 * 1024)}})
    assert single.json()["limit"] == 1024 * 1024
    r = await http.post(
        "/api/v1/jobs/bulk", json={"jobs": [{"payload": {"blob": "x" * (1024 * 1024)}}]}
    )
    assert r.status_code == 413
    assert r.json()["limit"] == 1024 * 1024


async def test_payload_too_large_through_the_client(client: AsyncClient) -> None:
    with pytest.raises(PayloadTooLarge) as info:
        await client.submit({"blob": "x" * (1024 * 1024)})
    assert info.value.status_code == 413
    assert info.value.field == "payload"


async def test_idempotency_key_returns_the_same_job(http: httpx.AsyncClient) -> None:
    first = await http.post("/api/v1/jobs", json={"payload": {"v": 1}, "idempotency_key": "k-1"})
    assert first.status_code == 201
    second = await http.post("/api/v1/jobs", json={"payload": {"v": 2}, "idempotency_key": "k-1"})
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["payload"] == {"v": 1}
    other_tenant = await http.post(
        "/api/v1/jobs", json={"payload": {"v": 3}, "idempotency_key": "k-1", "tenant": "t2"}
    )
    assert other_tenant.status_code == 201
    assert other_tenant.json()["id"] != first.json()["id"]
    assert len((await http.get("/api/v1/jobs")).json()["jobs"]) == 2


async def test_bulk_idempotency(http: httpx.AsyncClient) -> None:
    existing = await submit(http, {"v": 0}, idempotency_key="a")
    bodies = [
        {"payload": {"v": 1}, "idempotency_key": "a"},
        {"payload": {"v": 2}, "idempotency_key": "b"},
        {"payload": {"v": 3}, "idempotency_key": "b"},
    ]
    r = await http.post("/api/v1/jobs/bulk", json={"jobs": bodies})
    assert r.status_code == 201
    out = r.json()
    assert out["created"] == 1
    ids = [j["id"] for j in out["jobs"]]
    assert ids[0] == existing["id"]
    assert ids[1] == ids[2] != ids[0]
    again = await http.post("/api/v1/jobs/bulk", json={"jobs": bodies})
    assert again.status_code == 200
    assert again.json()["created"] == 0
    assert [j["id"] for j in again.json()["jobs"]] == ids


async def test_get_with_attempts(http: httpx.AsyncClient) -> None:
    await register_worker(http, "w1")
    job = await submit(http, {}, max_attempts=3, backoff={"base_s": 0, "jitter": 0})
    (a1,) = await claim(http, "w1")
    assert a1["id"] == job["id"]
    assert a1["attempt"] == 1
    results = await report(
        http,
        "w1",
        {"job_id": job["id"], "attempt": 1, "kind": "started"},
        {
            "job_id": job["id"],
            "attempt": 1,
            "kind": "failed",
            "error": {"kind": "exit_code", "message": "exit 3", "exit_code": 3},
        },
    )
    assert [r["applied"] for r in results] == [True, True]
    assert results[1]["status"] == "pending"
    (a2,) = await claim(http, "w1")
    assert a2["attempt"] == 2
    await report(http, "w1", {"job_id": job["id"], "attempt": 2, "kind": "completed", "result": 7})
    got = await get_job(http, job["id"])
    assert got["status"] == "completed"
    assert got["result"] == 7
    assert got["attempt"] == 2
    assert got["finished_at"] is not None
    assert [(a["attempt"], a["outcome"], a["worker_id"]) for a in got["attempts"]] == [
        (1, "failed", "w1"),
        (2, "completed", "w1"),
    ]
    assert got["attempts"][0]["error"] == {"kind": "exit_code", "message": "exit 3", "exit_code": 3}
    assert got["attempts"][0]["started_at"] is not None


async def test_list_filters(http: httpx.AsyncClient) -> None:
    a = [await submit(http, {"i": i}, queue="qa") for i in range(3)]
    b = [await submit(http, {"i": i}, queue="qb", tenant="t2") for i in range(2)]
    w = await submit(http, {}, queue="qb", worker_types=["wasm"])
    await http.post(f"/api/v1/jobs/{a[0]['id']}/cancel")

    async def ids(**params: Any) -> list[str]:
        r = await http.get("/api/v1/jobs", params=params)
        assert r.status_code == 200, r.text
        return [j["id"] for j in r.json()["jobs"]]

    every = [j["id"] for j in (*a, *b, w)]
    assert await ids() == sorted(every, reverse=True)  # newest first
    assert set(await ids(queue="qa")) == {j["id"] for j in a}
    assert set(await ids(tenant="t2")) == {j["id"] for j in b}
    assert await ids(worker_type="wasm") == [w["id"]]
    assert await ids(status="cancelled") == [a[0]["id"]]
    assert set(await ids(status="pending", queue="qa")) == {a[1]["id"], a[2]["id"]}
    r = await http.get("/api/v1/jobs", params=[("status", "cancelled"), ("status", "pending")])
    assert len(r.json()["jobs"]) == 6
    assert await ids(status="completed") == []
    assert await ids(queue="nope") == []


async def test_list_cursor_pagination(client: AsyncClient) -> None:
    submitted = [await client.submit({"i": i}, queue="pages") for i in range(7)]
    await client.submit({}, queue="elsewhere")
    seen: list[str] = []
    pages: list[int] = []
    cursor: str | None = None
    while True:
        page = await client.list_jobs(queue="pages", limit=3, cursor=cursor)
        seen += [j["id"] for j in page["jobs"]]
        pages.append(len(page["jobs"]))
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(pages) < 10
    assert pages == [3, 3, 1]
    assert seen == sorted((j["id"] for j in submitted), reverse=True)


async def test_cancel_pending(client: AsyncClient, http: httpx.AsyncClient) -> None:
    job = await client.submit({})
    cancelled = await client.cancel(job["id"], reason="not needed")
    assert cancelled["status"] == "cancelled"
    assert cancelled["error"] == {"kind": "cancelled", "message": "not needed"}
    assert cancelled["finished_at"] is not None
    got = await client.get(job["id"])
    assert got["status"] == "cancelled"
    assert got["attempts"] == []  # it never ran
    with pytest.raises(InvalidTransition):
        await client.cancel(job["id"])
    r = await http.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 409
    assert r.json()["code"] == "invalid_transition"


async def test_cancel_running(client: AsyncClient, http: httpx.AsyncClient) -> None:
    await register_worker(http, "w1")
    job = await client.submit({})
    (assigned,) = await claim(http, "w1")
    await report(http, "w1", {"job_id": job["id"], "attempt": 1, "kind": "started"})
    assert (await client.get(job["id"]))["status"] == "in_progress"
    cancelled = await client.cancel(job["id"])
    assert cancelled["status"] == "cancelled"
    got = await client.get(job["id"])
    assert [(a["attempt"], a["outcome"]) for a in got["attempts"]] == [(1, "cancelled")]
    answer = await heartbeat(http, "w1", [(job["id"], assigned["attempt"])])
    assert answer["cancel"] == [job["id"]]
    results = await report(
        http, "w1", {"job_id": job["id"], "attempt": 1, "kind": "completed", "result": 1}
    )
    assert results[0]["applied"] is False
    assert (await client.get(job["id"]))["status"] == "cancelled"


async def test_retry_failed_job(client: AsyncClient, http: httpx.AsyncClient) -> None:
    await register_worker(http, "w1")
    job = await client.submit({}, max_attempts=1)
    await claim(http, "w1")
    results = await report(
        http,
        "w1",
        {
            "job_id": job["id"],
            "attempt": 1,
            "kind": "failed",
            "error": {"kind": "x", "message": "m"},
        },
    )
    assert results[0]["status"] == "failed"
    retried = await client.retry(job["id"], attempts=2)
    assert retried["status"] == "pending"
    assert retried["max_attempts"] == 3  # the 1 spent plus 2 more
    assert retried["error"] is None
    assert retried["finished_at"] is None
    (again,) = await claim(http, "w1")
    assert again["attempt"] == 2
    await report(http, "w1", {"job_id": job["id"], "attempt": 2, "kind": "completed"})
    assert (await client.get(job["id"]))["status"] == "completed"


async def test_retry_cancelled_job(client: AsyncClient) -> None:
    job = await client.submit({})
    await client.cancel(job["id"])
    assert (await client.retry(job["id"]))["status"] == "pending"


async def test_retry_completed_is_refused(client: AsyncClient, http: httpx.AsyncClient) -> None:
    await register_worker(http, "w1")
    job = await client.submit({})
    await claim(http, "w1")
    await report(http, "w1", {"job_id": job["id"], "attempt": 1, "kind": "completed"})
    before = await client.get(job["id"])
    r = await http.post(f"/api/v1/jobs/{job['id']}/retry", json={"attempts": 1})
    assert r.status_code == 409
    problem = r.json()
    assert problem["code"] == "invalid_transition"
    assert "retry" in problem["detail"]
    assert "completed" in problem["detail"]
    with pytest.raises(InvalidTransition):
        await client.retry(job["id"])
    assert await client.get(job["id"]) == before


async def test_retry_pending_is_refused(client: AsyncClient) -> None:
    job = await client.submit({})
    with pytest.raises(InvalidTransition):
        await client.retry(job["id"])


async def test_unknown_job_is_not_found_in_the_client(client: AsyncClient) -> None:
    with pytest.raises(NotFound) as info:
        await client.get("no-such-job")
    assert info.value.status_code == 404
    assert info.value.details["job_id"] == "no-such-job"


async def test_unknown_job_raises_job_not_found_in_the_client(client: AsyncClient) -> None:
    """The server raises JobNotFound; the client must raise the same class (errors.py:
    "callers catch the same type on both sides"). It raises the base NotFound instead."""
    with pytest.raises(JobNotFound):
        await client.get("no-such-job")


async def test_wait_returns_as_soon_as_the_job_finishes(http: httpx.AsyncClient) -> None:
    await register_worker(http, "w1")
    job = await submit(http, {})
    started = time.monotonic()
    waiting = asyncio.create_task(http.get(f"/api/v1/jobs/{job['id']}/wait?timeout=10"))
    await claim(http, "w1")
    await asyncio.sleep(0.3)
    assert not waiting.done()  # the wait is parked on the server
    finished = time.monotonic()
    await report(http, "w1", {"job_id": job["id"], "attempt": 1, "kind": "completed", "result": 5})
    r = await asyncio.wait_for(waiting, 5)
    returned = time.monotonic()
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "completed"
    assert body["result"] == 5
    assert [a["outcome"] for a in body["attempts"]] == ["completed"]
    assert returned - finished < 0.5
    assert returned - started < 3


async def test_wait_through_the_client(client: AsyncClient, http: httpx.AsyncClient) -> None:
    await register_worker(http, "w1")
    job = await client.submit({})
    waiting = asyncio.create_task(client.wait(job["id"], timeout_s=10))
    await claim(http, "w1")
    await report(http, "w1", {"job_id": job["id"], "attempt": 1, "kind": "failed"})
    await claim(http, "w1", wait_s=5)
    t0 = time.monotonic()
    await report(http, "w1", {"job_id": job["id"], "attempt": 2, "kind": "completed"})
    done = await asyncio.wait_for(waiting, 5)
    assert time.monotonic() - t0 < 0.5
    assert done["status"] == "completed"
    assert done["attempt"] == 2


async def test_wait_times_out_with_the_job_as_it_is(http: httpx.AsyncClient) -> None:
    job = await submit(http, {})
    started = time.monotonic()
    r = await http.get(f"/api/v1/jobs/{job['id']}/wait", params={"timeout": 0.4})
    elapsed = time.monotonic() - started
    assert r.status_code == 200
    assert r.json()["status"] == "pending"
    assert r.json()["id"] == job["id"]
    assert 0.35 <= elapsed < 2.0


async def test_wait_on_a_terminal_job_returns_at_once(client: AsyncClient) -> None:
    job = await client.submit({})
    await client.cancel(job["id"])
    started = time.monotonic()
    done = await client.wait(job["id"], timeout_s=10)
    assert done["status"] == "cancelled"
    assert time.monotonic() - started < 1.0


async def test_stats_and_health(client: AsyncClient) -> None:
    await client.submit({}, queue="s1")
    await client.submit({}, queue="s1")
    stats = await client.stats()
    assert stats["jobs_by_status"]["pending"] == 2
    assert stats["jobs_by_status"]["completed"] == 0
    assert stats["jobs_by_queue"]["s1"] == {"pending": 2}

    async def reaper_ran() -> bool:
        return (await client.stats())["reaper"]["runs"] > 0

    await eventually(reaper_ran, what="the reaper runs in the server")
    health = await client.health()
    assert health["status"] == "ok"
    assert health["schema_version"] >= 1


async def test_a_bulk_submit_shares_a_group_and_a_named_group_is_kept(
    http: httpx.AsyncClient,
) -> None:
    body = {"jobs": [{"payload": {"i": i}} for i in range(4)]}
    first = (await http.post("/api/v1/jobs/bulk", json=body)).json()
    group_id = first["group_id"]
    assert group_id is not None
    assert {j["group_id"] for j in first["jobs"]} == {group_id}
    second = (await http.post("/api/v1/jobs/bulk", json={"jobs": [{"payload": {}}]})).json()
    assert second["group_id"] not in (None, group_id)
    listed = (await http.get("/api/v1/jobs", params={"group_id": group_id})).json()
    assert sorted(j["id"] for j in listed["jobs"]) == sorted(j["id"] for j in first["jobs"])
    named = await http.post(
        "/api/v1/jobs/bulk",
        json={"jobs": [{"payload": {}, "group_id": "mine"}, {"payload": {}}]},
    )
    jobs = named.json()["jobs"]
    assert jobs[0]["group_id"] == "mine"
    assert jobs[1]["group_id"] == named.json()["group_id"] != "mine"
    only = (
        await http.post("/api/v1/jobs/bulk", json={"jobs": [{"payload": {}, "group_id": "g2"}]})
    ).json()
    assert only["group_id"] is None  # every job named its group: no new one
