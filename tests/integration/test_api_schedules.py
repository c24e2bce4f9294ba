"""/api/v1/schedules over a real server: CRUD, problems, the clients, and the real loop
firing a schedule every second."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from itest_support import TEST_SETTINGS, Harness, eventually, no_5xx_hook

from blixard.client import AsyncClient
from blixard.clock import ManualClock
from blixard.errors import Conflict, ScheduleNotFound, ValidationError
from blixard.service.control_plane import ControlPlane
from blixard.storage.urls import store_from_url

PATH = "/api/v1/schedules"
T = 1_700_000_040.0  # 2023-11-14 22:14:00 UTC


def body(**fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": "nightly",
        "cron": "30 2 * * *",
        "timezone": "Europe/Paris",
        "job": {"payload": {"command": ["echo", "hi"]}, "worker_types": ["process"]},
    }
    out.update(fields)
    return out


async def test_create_list_get_pause_resume_delete(http: httpx.AsyncClient) -> None:
    r = await http.post(PATH, json=body(misfire="catch_up", no_overlap=True))
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["name"] == "nightly"
    assert (created["cron"], created["timezone"]) == ("30 2 * * *", "Europe/Paris")
    assert (created["misfire"], created["no_overlap"], created["paused"]) == (
        "catch_up",
        True,
        False,
    )
    assert created["next_fire_at"].endswith(("T01:30:00.000000Z", "T00:30:00.000000Z"))
    assert created["last_fired_at"] is None
    assert created["job"]["payload"] == {"command": ["echo", "hi"]}
    assert created["job"]["worker_types"] == ["process"]
    assert created["job"]["max_attempts"] == 3
    assert "upcoming" not in created

    await http.post(PATH, json=body(name="other", tenant="acme", cron="@hourly"))
    listed = (await http.get(PATH)).json()
    assert [(s["tenant"], s["name"]) for s in listed] == [("acme", "other"), ("default", "nightly")]
    assert [s["name"] for s in (await http.get(PATH, params={"tenant": "acme"})).json()] == [
        "other"
    ]

    detail = (await http.get(f"{PATH}/{created['id']}", params={"upcoming": 3})).json()
    assert len(detail["upcoming"]) == 3
    assert detail["upcoming"][0] == created["next_fire_at"]
    assert detail["recent_jobs"] == []

    paused = (await http.post(f"{PATH}/{created['id']}/pause")).json()
    assert paused["paused"] is True
    assert (await http.get(f"{PATH}/{created['id']}")).json()["upcoming"] == []
    resumed = (await http.post(f"{PATH}/{created['id']}/resume")).json()
    assert resumed["paused"] is False

    r = await http.delete(f"{PATH}/{created['id']}")
    assert r.status_code == 204
    assert r.content == b""
    assert (await http.get(f"{PATH}/{created['id']}")).status_code == 404


def case(id_: str, fields: dict[str, Any], field: str, status: int = 422) -> Any:
    return pytest.param(fields, field, status, id=id_)


LARGE = "x" * (TEST_SETTINGS.max_payload_bytes + 1)


@pytest.mark.parametrize(
    ("fields", "field", "status"),
    [
        case("cron-fields", {"cron": "* * * *"}, "cron"),
        case("cron-range", {"cron": "61 * * * *"}, "cron"),
        case("cron-alias", {"cron": "@reboot"}, "cron"),
        case("cron-never", {"cron": "0 0 30 2 *"}, "cron"),
        case("cron-missing", {"cron": None}, "cron"),
        case("timezone", {"timezone": "Mars/Olympus"}, "timezone"),
        case("misfire", {"misfire": "later"}, "misfire"),
        case("name", {"name": "not ok"}, "name"),
        case("tenant", {"tenant": ""}, "tenant"),
        case("unknown", {"colour": "red"}, "colour"),
        case("job-missing", {"job": None}, "job"),
        case("job-payload", {"job": {"payload": [1]}}, "job.payload"),
        case("job-queue", {"job": {"payload": {}, "queue": "a b"}}, "job.queue"),
        case("job-unknown", {"job": {"payload": {}, "colour": 1}}, "job.colour"),
        case(
            "job-run-at", {"job": {"payload": {}, "run_at": "2030-01-01T00:00:00Z"}}, "job.run_at"
        ),
        case("job-delay", {"job": {"payload": {}, "delay_s": 5}}, "job.delay_s"),
        case("job-key", {"job": {"payload": {}, "idempotency_key": "k"}}, "job.idempotency_key"),
        case("job-tenant", {"tenant": "a", "job": {"payload": {}, "tenant": "b"}}, "job.tenant"),
        case("job-too-large", {"job": {"payload": {"x": LARGE}}}, "job.payload", 413),
    ],
)
async def test_bad_schedules_are_problems_naming_the_field(
    http: httpx.AsyncClient, fields: dict[str, Any], field: str, status: int
) -> None:
    sent = body(**fields)
    for key in [k for k, v in fields.items() if v is None]:
        del sent[key]
    r = await http.post(PATH, json=sent)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["field"] == field, problem
    assert problem["detail"].startswith(f"{field}: "), problem
    assert (await http.get(PATH)).json() == []


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("POST", "/pause"), ("POST", "/resume"), ("DELETE", "")],
)
async def test_unknown_schedule_is_404(http: httpx.AsyncClient, method: str, suffix: str) -> None:
    r = await http.request(method, f"{PATH}/nope{suffix}")
    assert r.status_code == 404, r.text
    problem = r.json()
    assert (problem["code"], problem["schedule_id"]) == ("schedule_not_found", "nope")


async def test_duplicate_name_in_a_tenant_is_409(http: httpx.AsyncClient) -> None:
    assert (await http.post(PATH, json=body())).status_code == 201
    r = await http.post(PATH, json=body(cron="@daily"))
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "conflict"
    assert "nightly" in r.json()["detail"]
    assert (await http.post(PATH, json=body(tenant="acme"))).status_code == 201


async def test_clients_raise_the_matching_errors(client: AsyncClient) -> None:
    created = await client.create_schedule(
        "report",
        "0 6 * * mon",
        {"function": "reports:weekly"},
        timezone="America/New_York",
        worker_types=["python"],
        priority=5,
        timeout_s=60,
    )
    assert (created["job"]["priority"], created["job"]["timeout_s"]) == (5, 60)
    assert [s["id"] for s in await client.schedules()] == [created["id"]]
    assert (await client.schedule(created["id"], upcoming=2))["upcoming"][1].endswith(
        "T11:00:00.000000Z"
    )
    assert (await client.pause_schedule(created["id"]))["paused"]
    assert not (await client.resume_schedule(created["id"]))["paused"]
    with pytest.raises(Conflict):
        await client.create_schedule("report", "@daily", {})
    with pytest.raises(ValidationError) as err:
        await client.create_schedule("x", "@daily", {}, timezone="Nowhere")
    assert err.value.field == "timezone"
    await client.delete_schedule(created["id"])
    with pytest.raises(ScheduleNotFound):
        await client.schedule(created["id"])


# -- the real loop -------------------------------------------------------------------------


@pytest.fixture
async def fast_http(harness: Harness, server_errors: list[str]) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a server whose scheduler runs every 0.1 s."""
    settings = dataclasses.replace(TEST_SETTINGS, scheduler_interval_s=0.1)
    server = await harness.start_server(settings)
    async with httpx.AsyncClient(
        base_url=server.url, timeout=30, event_hooks={"response": [no_5xx_hook(server_errors)]}
    ) as http:
        yield http


def slot_of(job: dict[str, Any]) -> int:
    return int(job["idempotency_key"].rsplit(":", 1)[1])


async def test_the_server_fires_every_second_and_stops_while_paused(
    fast_http: httpx.AsyncClient,
) -> None:
    http = fast_http
    r = await http.post(
        PATH,
        json=body(name="tick", cron="* * * * * *", timezone="UTC", job={"payload": {"n": 1}}),
    )
    assert r.status_code == 201, r.text
    sid = r.json()["id"]

    async def jobs(at_least: int) -> list[dict[str, Any]] | None:
        got = (await http.get(f"{PATH}/{sid}", params={"jobs": 100})).json()
        fired: list[dict[str, Any]] = got["recent_jobs"]
        return fired if len(fired) >= at_least else None

    fired = await eventually(lambda: jobs(3), timeout=6, what="3 jobs fired")
    slots = [slot_of(j) for j in fired]
    assert slots == sorted(slots, reverse=True)  # newest first
    assert len(set(slots)) == len(slots)
    assert all(j["idempotency_key"] == f"schedule:{sid}:{slot_of(j)}" for j in fired)
    assert all(j["payload"] == {"n": 1} and j["queue"] == "default" for j in fired)
    stats = (await http.get("/api/v1/stats")).json()["scheduler"]
    assert stats["leader"] is True
    assert stats["fired_total"] >= 3
    assert stats["runs"] >= 1

    paused_at = (await http.post(f"{PATH}/{sid}/pause")).json()
    await asyncio.sleep(0.3)  # a pass that read the schedule before the pause ends
    before = (await jobs(0)) or []
    await asyncio.sleep(1.5)
    assert len((await jobs(0)) or []) == len(before)
    resumed = (await http.post(f"{PATH}/{sid}/resume")).json()
    assert resumed["next_fire_at"] > paused_at["updated_at"]
    after = await eventually(lambda: jobs(len(before) + 2), timeout=6, what="firing again")
    new_slots = sorted(slot_of(j) for j in after if j["id"] not in {b["id"] for b in before})
    gap = new_slots[0] - max(slot_of(b) for b in before)
    assert gap >= 2, "the slots of the pause never fire"
    assert new_slots == list(range(new_slots[0], new_slots[0] + len(new_slots)))


async def test_resume_starts_after_the_pause_and_catch_up_runs_the_backlog(
    tmp_path: Path,
) -> None:
    """The use cases with a manual clock (no HTTP, no background loop)."""
    clock = ManualClock(T - 1)
    plane = ControlPlane(
        store_from_url(f"sqlite:///{tmp_path / 's.db'}"),
        clock=clock,
        run_reaper=False,
        run_scheduler=False,
    )
    await plane.start()
    try:
        from blixard.domain.jobs import JobSpec

        s = await plane.schedules.create(
            name="m",
            tenant="default",
            cron="* * * * *",
            timezone="UTC",
            job=JobSpec.build({"n": 1}),
            misfire="catch_up",
        )
        clock.set(T + 300.5)  # 6 slots missed: all fire, oldest first
        assert await plane.scheduler.run_once() == 6
        assert await plane.scheduler.run_once() == 0  # nothing due any more
        await plane.schedules.pause(s.id)
        clock.set(T + 900.5)
        assert await plane.scheduler.run_once() == 0
        resumed = await plane.schedules.resume(s.id)
        assert resumed.next_fire_at == T + 960
        clock.set(T + 960.5)
        assert await plane.scheduler.run_once() == 1
        detail = await plane.schedules.detail(s.id, jobs=100)
        assert [j.idempotency_key for j in detail.recent_jobs][:2] == [
            f"schedule:{s.id}:{int(T) + 960}",
            f"schedule:{s.id}:{int(T) + 300}",
        ]
        assert detail.schedule.last_fired_at == T + 960
        assert detail.schedule.last_job_id == detail.recent_jobs[0].id
        assert plane.scheduler.fired_total == 7
    finally:
        await plane.stop()
