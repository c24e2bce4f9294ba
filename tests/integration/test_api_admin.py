"""The administration API over a real server: queues, tenants, groups, stats by tenant and
the unschedulable diagnosis, with its 4xx answers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from itest_support import claim, register_worker, submit

from blixard.client import AsyncClient
from blixard.domain.jobs import JobSpec, Requirements
from blixard.errors import GroupNotFound, QueueNotFound, TenantNotFound, ValidationError
from blixard.service.control_plane import ControlPlane

Q = "/api/v1/queues"
T = "/api/v1/tenants"
G = "/api/v1/groups"


def check_problem(
    r: httpx.Response, status: int, code: str, field: str | None = None
) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = r.json()
    assert (problem["status"], problem["code"]) == (status, code), problem
    if field is not None:
        assert problem["field"] == field, problem
        assert problem["detail"].startswith(f"{field}: "), problem
    return problem


async def add_group(plane: ControlPlane, group_id: str, n: int, **kwargs: Any) -> list[str]:
    """Jobs of one group, submitted through the service (the group is the submitter's)."""
    specs = [JobSpec.build({"i": i}, group_id=group_id, **kwargs) for i in range(n)]
    return [i.job.id for i in await plane.jobs.submit(specs)]


# queues ------------------------------------------------------------------------------------
async def test_patch_creates_a_queue_and_changes_only_what_is_given(
    http: httpx.AsyncClient,
) -> None:
    r = await http.get(f"{Q}/emails")
    check_problem(r, 404, "queue_not_found")
    r = await http.patch(f"{Q}/emails", json={"max_running": 3})
    assert r.status_code == 200, r.text
    q = r.json()
    assert q["name"] == "emails"
    assert (q["paused"], q["max_running"], q["rate_limit"], q["rate_tokens"]) == (
        False,
        3,
        None,
        None,
    )
    assert q["running"] == 0
    assert q["jobs_by_status"]["pending"] == 0
    assert q["created_at"] is not None

    r = await http.patch(f"{Q}/emails", json={"rate_limit": {"limit": 100, "period_s": 60}})
    q = r.json()
    assert (q["max_running"], q["rate_limit"]) == (3, {"limit": 100, "period_s": 60.0})
    assert q["rate_tokens"] == 100
    r = await http.patch(f"{Q}/emails", json={"max_running": None})
    q = r.json()
    assert (q["max_running"], q["rate_limit"]["limit"]) == (None, 100)
    r = await http.patch(f"{Q}/emails", json={"rate_limit": None, "paused": True})
    q = r.json()
    assert (q["paused"], q["max_running"], q["rate_limit"]) == (True, None, None)
    assert (await http.get(f"{Q}/emails")).json() == q


async def test_list_queues_with_counts(client: AsyncClient) -> None:
    await client.submit({}, queue="a")
    await client.submit({}, queue="a", delay_s=60)
    await client.submit({}, queue="b")
    await client.configure_queue("c", paused=True)
    listed = await client.queues()
    assert [q["name"] for q in listed] == ["a", "b", "c"]
    assert listed[0]["jobs_by_status"]["pending"] == 2
    assert listed[0]["oldest_pending_at"] is not None
    assert listed[2]["paused"] is True
    assert listed[2]["jobs_by_status"]["pending"] == 0
    assert await client.queue("b") == listed[1]
    with pytest.raises(QueueNotFound):
        await client.queue("zzz")


async def test_a_paused_queue_hands_out_nothing_until_resumed(
    http: httpx.AsyncClient, client: AsyncClient
) -> None:
    await register_worker(http, "w1")
    paused = await client.pause_queue("slow")
    assert paused["paused"] is True
    job = await submit(http, {}, queue="slow")  # a paused queue accepts jobs
    assert await claim(http, "w1") == []

    async def resume_soon() -> dict[str, Any]:
        await asyncio.sleep(0.3)
        return await client.resume_queue("slow")

    started = time.monotonic()
    resumed, got = await asyncio.gather(resume_soon(), claim(http, "w1", wait_s=10))
    assert resumed["paused"] is False
    assert [j["id"] for j in got] == [job["id"]]
    assert time.monotonic() - started < 5  # the waiting claim woke on the resume


async def test_queue_names_with_slashes(client: AsyncClient) -> None:
    q = await client.configure_queue("team/a:b", max_running=1)
    assert q["name"] == "team/a:b"
    assert (await client.pause_queue("team/a:b"))["paused"] is True
    assert (await client.queue("team/a:b"))["max_running"] == 1


# tenants -----------------------------------------------------------------------------------
async def test_tenants(client: AsyncClient, http: httpx.AsyncClient) -> None:
    check_problem(await http.get(f"{T}/acme"), 404, "tenant_not_found")
    await client.submit({}, tenant="acme")
    t = await client.tenant("acme")
    assert (t["weight"], t["max_running"], t["jobs_by_status"]["pending"]) == (1.0, None, 1)
    t = await client.configure_tenant("acme", weight=3, max_running=2)
    assert (t["weight"], t["max_running"]) == (3.0, 2)
    t = await client.configure_tenant("acme", max_running=None)
    assert (t["weight"], t["max_running"]) == (3.0, None)
    await client.configure_tenant("new", weight=0.5)
    assert [x["name"] for x in await client.tenants()] == ["acme", "new"]
    with pytest.raises(TenantNotFound):
        await client.tenant("nobody")


# groups ------------------------------------------------------------------------------------
async def test_group_summary_jobs_and_cancel(
    plane: ControlPlane, http: httpx.AsyncClient, client: AsyncClient
) -> None:
    await register_worker(http, "w1", concurrency=1)
    ids = await add_group(plane, "batch-1", 3)
    (running,) = await claim(http, "w1")
    assert running["id"] in ids

    found = await client.group("batch-1", limit=2)
    group = found["group"]
    assert (group["id"], group["status"], group["total"]) == ("batch-1", "running", 3)
    assert group["jobs_by_status"]["claimed"] == 1
    assert group["jobs_by_status"]["pending"] == 2
    assert group["finished_at"] is None
    assert [j["id"] for j in found["jobs"]] == sorted(ids, reverse=True)[:2]
    assert all(j["unschedulable"] is None for j in found["jobs"])
    rest = await client.group("batch-1", limit=2, cursor=found["next_cursor"])
    assert [j["id"] for j in rest["jobs"]] == sorted(ids, reverse=True)[2:]

    done = await client.cancel_group("batch-1", "wrong input")
    assert sorted(j["id"] for j in done["cancelled"]) == sorted(ids)
    assert {j["status"] for j in done["cancelled"]} == {"cancelled"}
    assert done["cancelled"][0]["error"] == {"kind": "cancelled", "message": "wrong input"}
    assert done["group"]["status"] == "cancelled"
    assert done["group"]["finished_at"] is not None
    held = {"job_id": running["id"], "attempt": running["attempt"]}
    hb = await http.post("/api/v1/workers/w1/heartbeat", json={"running": [held]})
    assert hb.json()["cancel"] == [running["id"]]
    again = await client.cancel_group("batch-1")
    assert again["cancelled"] == []


async def test_unknown_group_is_404(client: AsyncClient, http: httpx.AsyncClient) -> None:
    check_problem(await http.get(f"{G}/nope"), 404, "group_not_found")
    check_problem(await http.post(f"{G}/nope/cancel"), 404, "group_not_found")
    with pytest.raises(GroupNotFound):
        await client.group("nope")


# stats and the unschedulable diagnosis -----------------------------------------------------
async def test_stats_by_tenant_and_unschedulable_jobs(
    plane: ControlPlane, http: httpx.AsyncClient, client: AsyncClient
) -> None:
    await register_worker(http, "w1", worker_type="process", cpu=4)
    await client.submit({}, tenant="acme", worker_types=["gpu"])
    await client.submit({}, tenant="acme", worker_types=["gpu"])
    await client.submit({}, tenant="globex", requirements={"cpu": 16})
    await client.submit({}, tenant="globex")

    s = await client.stats()
    assert s["tenant"] is None
    assert s["jobs_by_tenant"] == {"acme": {"pending": 2}, "globex": {"pending": 2}}
    assert s["unschedulable"] == {
        "count": 3,
        "reasons": [
            {"reason": "no online worker of type gpu", "count": 2},
            {"reason": "needs 16 cpu; the largest online worker has 4", "count": 1},
        ],
    }
    s = await client.stats(tenant="acme")
    assert s["tenant"] == "acme"
    assert s["jobs_by_status"]["pending"] == 2
    assert s["jobs_by_tenant"] == {"acme": {"pending": 2}}
    assert s["unschedulable"]["count"] == 2
    r = await http.get("/api/v1/stats", params={"tenant": "nobody"})
    assert r.status_code == 200
    assert r.json()["unschedulable"] == {"count": 0, "reasons": []}

    # The group page names each job's reason.
    await add_group(plane, "g", 1, requirements=Requirements(gpu=2))
    (job,) = (await client.group("g"))["jobs"]
    assert job["unschedulable"] == "needs 2 gpu; the largest online worker has 0"


async def test_job_reads_carry_the_unschedulable_reason(
    plane: ControlPlane, http: httpx.AsyncClient
) -> None:
    await register_worker(http, "w1", worker_type="process")
    job = await submit(http, {}, worker_types=["wasm"])
    (stored,) = await plane.store.get_jobs([job["id"]])
    assert await plane.diagnosis.for_job(stored) == "no online worker of type wasm"
    ok = await submit(http, {})
    (fits,) = await plane.store.get_jobs([ok["id"]])
    assert await plane.diagnosis.for_job(fits) is None


# 4xx ---------------------------------------------------------------------------------------
BAD_PATCHES = [
    (f"{Q}/q", {"max_running": -1}, "max_running", "negative-max-running"),
    (f"{Q}/q", {"max_running": "many"}, "max_running", "text-max-running"),
    (f"{Q}/q", {"max_running": 2.5}, "max_running", "float-max-running"),
    (f"{Q}/q", {"rate_limit": {"limit": 0, "period_s": 1}}, "rate_limit.limit", "rate-0"),
    (
        f"{Q}/q",
        {"rate_limit": {"limit": 5, "period_s": 0}},
        "rate_limit.period_s",
        "rate-period-0",
    ),
    (f"{Q}/q", {"rate_limit": {"limit": 5}}, "rate_limit.period_s", "rate-half"),
    (f"{Q}/q", {"rate_limit": "100/60s"}, "rate_limit", "rate-text"),
    (f"{Q}/q", {"paused": "maybe"}, "paused", "paused-text"),
    (f"{Q}/q", {"colour": "red"}, "colour", "unknown-field"),
    (f"{Q}/bad%20name", {"paused": True}, "queue", "bad-queue-name"),
    (f"{T}/t", {"weight": 0}, "weight", "weight-0"),
    (f"{T}/t", {"weight": -2}, "weight", "negative-weight"),
    (f"{T}/t", {"max_running": -1}, "max_running", "tenant-max-running"),
    (f"{T}/bad%20name", {"weight": 2}, "tenant", "bad-tenant-name"),
]


async def test_bad_patches_are_422_and_change_nothing(http: httpx.AsyncClient) -> None:
    for path, body, field, name in BAD_PATCHES:
        problem = check_problem(await http.patch(path, json=body), 422, "invalid", field)
        assert (await http.get(path)).status_code == 404, (name, problem)  # nothing created


async def test_bad_input_raises_validation_error_in_the_client(client: AsyncClient) -> None:
    with pytest.raises(ValidationError) as info:
        await client.configure_queue("q", rate_limit=(0, 60))
    assert info.value.field == "rate_limit.limit"


async def test_the_unschedulable_summary_is_reused_for_a_while(
    plane: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stats polled many times a second do not group every waiting job each time."""
    assert (await plane.diagnosis.summary()).count == 0
    await plane.jobs.submit([JobSpec.build({}, worker_types=["tpu"])])
    assert (await plane.diagnosis.summary()).count == 0  # the summary of a moment ago
    assert (await plane.diagnosis.summary("default")).count == 1  # per tenant
    later = time.monotonic() + 60
    monkeypatch.setattr("blixard.service.diagnosis.monotonic", lambda: later)
    summary = await plane.diagnosis.summary()
    assert (summary.count, summary.reasons) == (1, [("no worker is online", 1)])
