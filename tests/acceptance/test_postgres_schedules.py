"""Two ``blixard server`` processes on one PostgreSQL schema fire a cron schedule that has a
slot every second: one server leads the scheduler; when it is SIGKILLed the other takes
over, and every slot from the first to the last has exactly one job (catch_up: the slots of
the takeover fire late, none is lost, none fires twice)."""

from __future__ import annotations

import signal
import time
from datetime import datetime
from typing import Any

import httpx
import pytest

from blixard.client import Client
from support.postgres import pg_schema_url, start_pg_server
from support.processes import ProcessGroup, ServerProcess, wait_until

pytestmark = pytest.mark.acceptance
__all__ = ["pg_schema_url"]  # the fixture, imported for pytest

SCHEDULER_INTERVAL = 0.2


def scheduler_stats(server: ServerProcess) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/api/v1/stats", timeout=10)
    response.raise_for_status()
    result: dict[str, Any] = response.json()["scheduler"]
    return result


def fired_slots(server: ServerProcess, schedule_id: str) -> list[int]:
    """The slot of every job the schedule fired (from its idempotency key), oldest first."""
    response = httpx.get(
        f"{server.url}/api/v1/schedules/{schedule_id}", params={"jobs": 100}, timeout=10
    )
    response.raise_for_status()
    jobs = response.json()["recent_jobs"]
    for job in jobs:
        assert job["idempotency_key"].startswith(f"schedule:{schedule_id}:"), job
    return sorted(int(job["idempotency_key"].rsplit(":", 1)[1]) for job in jobs)


@pytest.mark.timeout(90)
def test_one_job_per_slot_with_two_servers_and_a_leader_killed(
    pg_schema_url: str, procs: ProcessGroup
) -> None:
    servers = [
        start_pg_server(
            procs, pg_schema_url, name=f"server-{i}", scheduler_interval=SCHEDULER_INTERVAL
        )
        for i in range(2)
    ]
    with Client(servers[0].url) as client:
        created = client.create_schedule(
            "tick", "* * * * * *", {"n": 1}, misfire="catch_up", worker_types=["nobody"]
        )
    sid = created["id"]
    first_slot = int(datetime.fromisoformat(created["next_fire_at"]).timestamp())

    wait_until(
        lambda: len(fired_slots(servers[1], sid)) >= 3,
        20,
        0.1,
        message=lambda: f"3 slots fired\n{procs.describe(20)}",
    )
    # Both loops run; exactly one server leads (each asks the database every pass).
    time.sleep(2 * SCHEDULER_INTERVAL)
    leading = [s for s in servers if scheduler_stats(s)["leader"]]
    assert len(leading) == 1, f"leaders: {[s.name for s in leading]}\n{procs.describe(20)}"
    leader = leading[0]
    survivor = servers[1] if leader is servers[0] else servers[0]
    assert scheduler_stats(survivor)["fired_total"] == 0
    assert scheduler_stats(leader)["fired_total"] >= 3

    leader.kill(signal.SIGKILL)
    assert leader.wait(10) == -signal.SIGKILL
    killed_at = int(time.time())

    def survivor_fires_after_the_kill() -> bool:
        stats = scheduler_stats(survivor)
        slots = fired_slots(survivor, sid)
        return stats["leader"] and stats["fired_total"] > 0 and slots[-1] >= killed_at + 2

    wait_until(
        survivor_fires_after_the_kill,
        20,
        0.1,
        message=lambda: f"{survivor.name} to take over\n{procs.describe(20)}",
    )
    slots = fired_slots(survivor, sid)
    assert slots[0] == first_slot, (slots[:3], first_slot)
    assert slots == list(range(slots[0], slots[-1] + 1)), (
        f"not one job per slot: {slots}\n{procs.describe(20)}"
    )
    detail = httpx.get(f"{survivor.url}/api/v1/schedules/{sid}", timeout=10).json()
    assert detail["last_job_id"] is not None
    assert detail["next_fire_at"] > detail["last_fired_at"]
