"""The worker protocol over HTTP: register, claim (long-poll), heartbeat, report, drain."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from itest_support import (
    claim,
    eventually,
    get_job,
    heartbeat,
    job_status,
    register_worker,
    report,
    submit,
)

from blixard.service.control_plane import ControlPlane


async def get_worker(http: httpx.AsyncClient, worker_id: str) -> dict[str, Any]:
    r = await http.get(f"/api/v1/workers/{worker_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_register(http: httpx.AsyncClient) -> None:
    answer = await register_worker(
        http, "w1", worker_type="wasm", concurrency=3, cpu=2, labels={"zone": "eu"}
    )
    assert answer["lease_ttl_s"] == 1.0
    assert abs(answer["heartbeat_interval_s"] - 1 / 3) < 1e-9
    worker = answer["worker"]
    assert worker["id"] == "w1"
    assert worker["status"] == "online"
    assert (worker["worker_type"], worker["concurrency"]) == ("wasm", 3)
    assert worker["resources"] == {"cpu": 2, "memory_mb": 4096, "gpu": 0}
    assert worker["labels"] == {"zone": "eu"}
    assert worker["running"] == 0
    assert await get_worker(http, "w1") == worker
    listed = (await http.get("/api/v1/workers")).json()
    assert [w["id"] for w in listed] == ["w1"]


async def test_register_again_updates_the_worker(http: httpx.AsyncClient) -> None:
    await register_worker(http, "w1", concurrency=1)
    await http.post("/api/v1/workers/w1/deregister")
    again = await register_worker(http, "w1", concurrency=5, labels={"a": "b"})
    assert again["worker"]["concurrency"] == 5
    assert again["worker"]["status"] == "online"
    assert again["worker"]["labels"] == {"a": "b"}
    assert len((await http.get("/api/v1/workers")).json()) == 1


async def test_claim_returns_the_assignment(http: httpx.AsyncClient) -> None:
    await register_worker(http, "w1")
    job = await submit(http, {"k": "v"}, queue="q", timeout_s=9, requirements={"cpu": 1})
    (assigned,) = await claim(http, "w1", limit=5)
    assert assigned["id"] == job["id"]
    assert assigned["attempt"] == 1
    assert assigned["payload"] == {"k": "v"}
    assert (assigned["queue"], assigned["tenant"], assigned["timeout_s"]) == ("q", "default", 9)
    assert assigned["requirements"]["cpu"] == 1
    got = await get_job(http, job["id"])
    assert got["status"] == "claimed"
    assert got["claimed_by"] == "w1"
    assert got["lease_expires_at"] is not None
    assert await claim(http, "w1") == []  # nothing else to claim


async def test_claim_order_priority_then_age(http: httpx.AsyncClient) -> None:
    await register_worker(http, "w1", concurrency=10)
    low = await submit(http, {}, priority=-1)
    old = await submit(http, {})
    new = await submit(http, {})
    high = await submit(http, {}, priority=5)
    got = await claim(http, "w1", limit=10)
    assert [j["id"] for j in got] == [high["id"], old["id"], new["id"], low["id"]]


async def test_long_poll_claim_wakes_on_submit(http: httpx.AsyncClient) -> None:
    await register_worker(http, "w1")
    started = time.monotonic()
    waiting = asyncio.create_task(claim(http, "w1", wait_s=5))
    await asyncio.sleep(0.3)
    assert not waiting.done()  # parked on the server: nothing to claim yet
    submitted_at = time.monotonic()
    job = await submit(http, {"wake": True})
    jobs = await asyncio.wait_for(waiting, 5)
    returned = time.monotonic()
    assert [j["id"] for j in jobs] == [job["id"]]
    assert returned - submitted_at < 1.0
    assert returned - started < 2.0


async def test_long_poll_claim_returns_empty_after_wait(http: httpx.AsyncClient) -> None:
    await register_worker(http, "w1")
    started = time.monotonic()
    assert await claim(http, "w1", wait_s=0.3) == []
    assert 0.25 <= time.monotonic() - started < 2.0


async def test_long_poll_claim_wakes_for_a_delayed_job(http: httpx.AsyncClient) -> None:
    await register_worker(http, "w1")
    job = await submit(http, {}, delay_s=0.4)
    assert await claim(http, "w1") == []  # not due yet
    started = time.monotonic()
    jobs = await claim(http, "w1", wait_s=5)
    assert [j["id"] for j in jobs] == [job["id"]]
    assert time.monotonic() - started < 1.0


async def test_idle_long_poll_does_not_spin_on_the_store(
    http: httpx.AsyncClient, plane: ControlPlane
) -> None:
    """A due job this worker cannot take must not turn its long-poll into a busy loop:
    the claim should re-check on wake-ups and every poll_backstop_s (1s), not every 1ms."""
    await register_worker(http, "w1", worker_type="process")
    await submit(http, {}, worker_types=["wasm"])  # due, but not for this worker
    calls = 0
    real = plane.store.claim_jobs

    async def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return await real(*args, **kwargs)

    plane.store.claim_jobs = counting  # type: ignore[method-assign]
    try:
        assert await claim(http, "w1", wait_s=1.0) == []
    finally:
        plane.store.claim_jobs = real  # type: ignore[method-assign]
    assert calls <= 5, f"{calls} store claims during one idle 1s long-poll"


async def test_long_poll_claim_wakes_when_capacity_frees(http: httpx.AsyncClient) -> None:
    """An agent frees a slot before its completion report lands: the claim it sends then
    parks on a full worker and must wake as soon as the report frees the capacity."""
    await register_worker(http, "w1", concurrency=1)
    running = await submit(http, {})
    queued = await submit(http, {})
    (assigned,) = await claim(http, "w1")
    assert assigned["id"] == running["id"]
    waiting = asyncio.create_task(claim(http, "w1", wait_s=5))
    await asyncio.sleep(0.3)
    assert not waiting.done()  # the worker is full
    freed_at = time.monotonic()
    await report(http, "w1", {"job_id": running["id"], "attempt": 1, "kind": "completed"})
    jobs = await asyncio.wait_for(waiting, 5)
    assert [j["id"] for j in jobs] == [queued["id"]]
    assert time.monotonic() - freed_at < 0.5


async def test_claim_respects_worker_types(http: httpx.AsyncClient) -> None:
    await register_worker(http, "proc", worker_type="process")
    await register_worker(http, "wasm", worker_type="wasm")
    only_wasm = await submit(http, {}, worker_types=["wasm"])
    either = await submit(http, {}, worker_types=["python", "process"])
    anyone = await submit(http, {})
    got = await claim(http, "proc", limit=10)
    assert {j["id"] for j in got} == {either["id"], anyone["id"]}
    assert await job_status(http, only_wasm["id"]) == "pending"
    assert [j["id"] for j in await claim(http, "wasm", limit=10)] == [only_wasm["id"]]


async def test_claim_respects_labels(http: httpx.AsyncClient) -> None:
    await register_worker(http, "us", labels={"zone": "us", "disk": "ssd"})
    await register_worker(http, "eu", labels={"zone": "eu"})
    job = await submit(http, {}, requirements={"labels": {"zone": "eu"}})
    ssd = await submit(http, {}, requirements={"labels": {"disk": "ssd"}})
    got = await claim(http, "us", limit=10)
    assert [j["id"] for j in got] == [ssd["id"]]
    assert [j["id"] for j in await claim(http, "eu", limit=10)] == [job["id"]]


async def test_claim_respects_cpu_and_memory(http: httpx.AsyncClient) -> None:
    await register_worker(http, "w1", concurrency=10, cpu=2, memory_mb=1000)
    too_big = await submit(http, {}, requirements={"cpu": 3})
    a = await submit(http, {}, requirements={"cpu": 1.5})
    b = await submit(http, {}, requirements={"cpu": 1.5})
    mem = await submit(http, {}, requirements={"memory_mb": 600})
    mem2 = await submit(http, {}, requirements={"memory_mb": 600})
    first = await claim(http, "w1", limit=10)
    # one 1.5-cpu job fits (not both), and one 600 MB job (not both)
    assert [j["id"] for j in first] == [a["id"], mem["id"]]
    worker = await get_worker(http, "w1")
    assert worker["running"] == 2
    assert worker["used"] == {"cpu": 1.5, "memory_mb": 600, "gpu": 0}
    assert await claim(http, "w1", limit=10) == []
    await report(http, "w1", {"job_id": a["id"], "attempt": 1, "kind": "completed"})
    assert [j["id"] for j in await claim(http, "w1", limit=10)] == [b["id"]]
    await report(http, "w1", {"job_id": mem["id"], "attempt": 1, "kind": "completed"})
    assert [j["id"] for j in await claim(http, "w1", limit=10)] == [mem2["id"]]
    assert await job_status(http, too_big["id"]) == "pending"


async def test_claim_respects_concurrency(http: httpx.AsyncClient) -> None:
    await register_worker(http, "w1", concurrency=2)
    jobs = [await submit(http, {"i": i}) for i in range(5)]
    first = await claim(http, "w1", limit=10)
    assert [j["id"] for j in first] == [jobs[0]["id"], jobs[1]["id"]]
    assert await claim(http, "w1", limit=10) == []
    await report(http, "w1", {"job_id": jobs[0]["id"], "attempt": 1, "kind": "completed"})
    assert [j["id"] for j in await claim(http, "w1", limit=10)] == [jobs[2]["id"]]
    assert (await get_worker(http, "w1"))["running"] == 2


async def test_claim_limit(http: httpx.AsyncClient) -> None:
    await register_worker(http, "w1", concurrency=10)
    for i in range(4):
        await submit(http, {"i": i})
    assert len(await claim(http, "w1", limit=3)) == 3
    assert len(await claim(http, "w1", limit=3)) == 1


async def test_heartbeat_renews_leases(http: httpx.AsyncClient) -> None:
    await register_worker(http, "w1")
    job = await submit(http, {})
    (assigned,) = await claim(http, "w1")
    lease = (await get_job(http, job["id"]))["lease_expires_at"]
    deadline = time.monotonic() + 2.0  # twice the lease ttl
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        answer = await heartbeat(http, "w1", [(job["id"], assigned["attempt"])])
        assert answer == {"cancel": [], "drain": False, "status": "online"}
        renewed = (await get_job(http, job["id"]))["lease_expires_at"]
        assert renewed > lease
        lease = renewed
    got = await get_job(http, job["id"])
    assert got["status"] == "claimed"
    assert got["claimed_by"] == "w1"
    assert got["attempts"] == []


async def test_heartbeat_names_jobs_to_stop(http: httpx.AsyncClient) -> None:
    await register_worker(http, "w1", concurrency=5)
    await register_worker(http, "w2")
    keep, cancelled, other = [await submit(http, {}) for _ in range(3)]
    got = await claim(http, "w1", limit=2)
    assert {j["id"] for j in got} == {keep["id"], cancelled["id"]}
    (for_w2,) = await claim(http, "w2")
    assert for_w2["id"] == other["id"]
    r = await http.post(f"/api/v1/jobs/{cancelled['id']}/cancel")
    assert r.status_code == 200
    answer = await heartbeat(
        http,
        "w1",
        [
            (keep["id"], 1),
            (cancelled["id"], 1),
            (other["id"], 1),  # claimed by another worker
            ("ghost", 1),  # unknown
        ],
    )
    assert sorted(answer["cancel"]) == sorted([cancelled["id"], other["id"], "ghost"])
    assert answer["drain"] is False
    wrong_attempt = await heartbeat(http, "w1", [(keep["id"], 2)])
    assert wrong_attempt["cancel"] == [keep["id"]]
    # the job w2 holds is untouched by w1's heartbeat
    assert (await get_job(http, other["id"]))["claimed_by"] == "w2"


async def test_drain(http: httpx.AsyncClient) -> None:
    await register_worker(http, "w1", concurrency=5)
    running = await submit(http, {})
    (assigned,) = await claim(http, "w1")
    r = await http.post("/api/v1/workers/w1/drain")
    assert r.status_code == 200
    assert r.json()["status"] == "draining"
    answer = await heartbeat(http, "w1", [(running["id"], assigned["attempt"])])
    assert answer == {"cancel": [], "drain": True, "status": "draining"}
    waiting = await submit(http, {})
    started = time.monotonic()
    assert await claim(http, "w1", limit=5, wait_s=0.3) == []
    assert time.monotonic() - started < 2.0
    assert await job_status(http, waiting["id"]) == "pending"
    # running jobs still finish and are recorded
    results = await report(http, "w1", {"job_id": running["id"], "attempt": 1, "kind": "completed"})
    assert results[0]["applied"] is True
    assert (await http.post("/api/v1/workers/w1/drain")).json()["status"] == "draining"


async def test_deregister(http: httpx.AsyncClient) -> None:
    await register_worker(http, "w1")
    await register_worker(http, "w2")
    r = await http.post("/api/v1/workers/w1/deregister")
    assert r.status_code == 200
    assert r.json()["status"] == "offline"
    assert (await get_worker(http, "w1"))["status"] == "offline"
    offline = (await http.get("/api/v1/workers", params={"status": "offline"})).json()
    assert [w["id"] for w in offline] == ["w1"]
    online = (await http.get("/api/v1/workers", params={"status": "online"})).json()
    assert [w["id"] for w in online] == ["w2"]
    await submit(http, {})
    assert await claim(http, "w1") == []  # an offline worker claims nothing


async def test_batch_reports_in_order(http: httpx.AsyncClient) -> None:
    await register_worker(http, "w1", concurrency=5)
    a = await submit(http, {})
    b = await submit(http, {}, max_attempts=1)
    await claim(http, "w1", limit=2)
    results = await report(
        http,
        "w1",
        {"job_id": a["id"], "attempt": 1, "kind": "started"},
        {"job_id": b["id"], "attempt": 1, "kind": "started"},
        {"job_id": a["id"], "attempt": 1, "kind": "completed", "result": [1, 2]},
        {
            "job_id": b["id"],
            "attempt": 1,
            "kind": "failed",
            "error": {"kind": "oops", "message": "no"},
            "retryable": True,
        },
    )
    assert [(r["job_id"], r["status"]) for r in results] == [
        (a["id"], "in_progress"),
        (b["id"], "in_progress"),
        (a["id"], "completed"),
        (b["id"], "failed"),  # its only attempt
    ]
    assert all(r["applied"] for r in results)
    got_b = await get_job(http, b["id"])
    assert got_b["error"] == {"kind": "oops", "message": "no"}
    assert [x["outcome"] for x in got_b["attempts"]] == ["failed"]
    assert (await get_worker(http, "w1"))["running"] == 0


async def test_non_retryable_failure_fails_at_once(http: httpx.AsyncClient) -> None:
    await register_worker(http, "w1")
    job = await submit(http, {}, max_attempts=5)
    await claim(http, "w1")
    results = await report(
        http,
        "w1",
        {
            "job_id": job["id"],
            "attempt": 1,
            "kind": "failed",
            "retryable": False,
            "error": {"kind": "invalid_payload", "message": "bad"},
        },
    )
    assert results[0]["status"] == "failed"


async def test_requeued_job_waits_out_its_backoff(http: httpx.AsyncClient) -> None:
    await register_worker(http, "w1")
    job = await submit(http, {}, backoff={"base_s": 0.5, "jitter": 0})
    await claim(http, "w1")
    failed_at = time.time()
    await report(http, "w1", {"job_id": job["id"], "attempt": 1, "kind": "failed"})
    got = await get_job(http, job["id"])
    assert got["status"] == "pending"
    assert await claim(http, "w1") == []  # not due during the backoff
    jobs = await claim(http, "w1", wait_s=3)
    assert [j["attempt"] for j in jobs] == [2]
    assert time.time() - failed_at >= 0.45


async def test_silent_worker_goes_offline(http: httpx.AsyncClient) -> None:
    await register_worker(http, "w1")

    async def offline() -> bool:
        return (await get_worker(http, "w1"))["status"] == "offline"

    await eventually(offline, timeout=5, interval=0.1, what="worker_ttl (2s) marks it offline")
    answer = await heartbeat(http, "w1", [])
    assert answer["status"] == "online"  # a heartbeat brings it back
