"""The lease reaper over a real server: silent workers and overrunning attempts."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx
from itest_support import claim, eventually, get_job, heartbeat, register_worker, submit

FAST_BACKOFF = {"base_s": 0.05, "jitter": 0}


async def test_silent_worker_loses_its_jobs(http: httpx.AsyncClient) -> None:
    await register_worker(http, "silent")
    job = await submit(http, {}, max_attempts=2, backoff=FAST_BACKOFF)
    (first,) = await claim(http, "silent")
    assert first["attempt"] == 1
    claimed_at = time.monotonic()

    async def pending_again() -> dict[str, Any] | None:
        got = await get_job(http, job["id"])
        return got if got["status"] == "pending" else None

    got = await eventually(pending_again, timeout=5, what="lease expiry requeues the job")
    assert time.monotonic() - claimed_at >= 0.9  # not before the 1s lease ran out
    assert got["claimed_by"] is None
    assert got["error"]["kind"] == "lease_expired"
    assert [(a["attempt"], a["outcome"], a["worker_id"]) for a in got["attempts"]] == [
        (1, "lease_expired", "silent")
    ]
    assert got["attempts"][0]["error"]["kind"] == "lease_expired"

    (second,) = await claim(http, "silent", wait_s=3)
    assert second["attempt"] == 2

    async def failed() -> dict[str, Any] | None:
        got = await get_job(http, job["id"])
        return got if got["status"] == "failed" else None

    got = await eventually(failed, timeout=5, what="the last attempt's lease expiry fails it")
    assert got["error"]["kind"] == "lease_expired"
    assert got["finished_at"] is not None
    assert [(a["attempt"], a["outcome"]) for a in got["attempts"]] == [
        (1, "lease_expired"),
        (2, "lease_expired"),
    ]
    # the silent worker learns it lost the job when it comes back
    answer = await heartbeat(http, "silent", [(job["id"], 2)])
    assert answer["cancel"] == [job["id"]]


async def test_reaped_job_goes_to_a_live_worker(http: httpx.AsyncClient) -> None:
    await register_worker(http, "dead")
    await register_worker(http, "alive")
    job = await submit(http, {}, backoff=FAST_BACKOFF)
    (lost,) = await claim(http, "dead")
    assert lost["id"] == job["id"]
    started = time.monotonic()
    jobs = await claim(http, "alive", wait_s=5)
    assert [(j["id"], j["attempt"]) for j in jobs] == [(job["id"], 2)]
    assert 0.9 <= time.monotonic() - started < 3.0


async def test_timeout_reaps_despite_heartbeats(http: httpx.AsyncClient) -> None:
    """timeout_s=1 and lease 1s: the attempt's deadline is claim + 2s. Heartbeats keep the
    lease alive past the lease ttl, but not past the deadline."""
    await register_worker(http, "busy")
    job = await submit(http, {}, timeout_s=1.0, max_attempts=1)
    (assigned,) = await claim(http, "busy")
    claimed_at = time.monotonic()
    seen: list[str] = []
    stop = asyncio.Event()

    async def keep_heartbeating() -> None:
        while not stop.is_set():
            answer = await heartbeat(http, "busy", [(job["id"], assigned["attempt"])])
            seen.extend(answer["cancel"])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.15)

    beating = asyncio.create_task(keep_heartbeating())
    try:
        await asyncio.sleep(1.4)  # past the 1s lease: only the heartbeats keep it alive
        still = await get_job(http, job["id"])
        assert still["status"] == "claimed"
        assert seen == []

        async def reaped() -> dict[str, Any] | None:
            got = await get_job(http, job["id"])
            return got if got["status"] != "claimed" else None

        got = await eventually(reaped, timeout=5, what="the deadline reaps the attempt")
        elapsed = time.monotonic() - claimed_at
        await eventually(lambda: seen, timeout=2, what="a heartbeat names the reaped job")
    finally:
        stop.set()
        await beating
    assert 1.8 <= elapsed < 3.5
    assert got["status"] == "failed"
    assert got["error"]["kind"] == "timeout"
    assert [(a["attempt"], a["outcome"]) for a in got["attempts"]] == [(1, "timeout")]
    assert got["attempts"][0]["error"]["kind"] == "timeout"
    assert seen[0] == job["id"]


async def test_timeout_with_attempts_left_requeues(http: httpx.AsyncClient) -> None:
    await register_worker(http, "busy")
    job = await submit(http, {}, timeout_s=0.3, max_attempts=2, backoff=FAST_BACKOFF)
    (assigned,) = await claim(http, "busy")

    async def requeued() -> dict[str, Any] | None:
        await heartbeat(http, "busy", [(job["id"], assigned["attempt"])])
        got = await get_job(http, job["id"])
        return got if got["status"] == "pending" else None

    got = await eventually(requeued, timeout=5, interval=0.1, what="timeout requeues")
    assert [a["outcome"] for a in got["attempts"]] == ["timeout"]
    assert got["error"]["kind"] == "timeout"
