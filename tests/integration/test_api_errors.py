"""Every 4xx answer is a JSON problem: status, code, detail, and the field for a 422."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from itest_support import (
    Harness,
    RunningServer,
    claim,
    get_job,
    no_5xx_hook,
    register_worker,
    report,
    submit,
)

MIB = 1024 * 1024
JOB = "/api/v1/jobs"


def check_problem(
    r: httpx.Response, status: int, code: str, field: str | None = None
) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = r.json()
    assert problem["status"] == status
    assert problem["code"] == code
    assert isinstance(problem["detail"], str)
    assert problem["detail"]
    assert isinstance(problem["title"], str)
    if status == 422:
        assert problem["field"] == field, problem
        assert problem["detail"].startswith(f"{field}: ")
    elif field is not None:
        assert problem["field"] == field, problem
    return problem


def case(
    id_: str, method: str, path: str, body: Any, status: int, code: str, field: str | None = None
) -> Any:
    return pytest.param(method, path, body, status, code, field, id=id_)


CASES = [
    # submit: the request schema
    case("missing-payload", "POST", JOB, {}, 422, "invalid", "payload"),
    case("payload-list", "POST", JOB, {"payload": [1, 2]}, 422, "invalid", "payload"),
    case("payload-string", "POST", JOB, {"payload": "x"}, 422, "invalid", "payload"),
    case("payload-null", "POST", JOB, {"payload": None}, 422, "invalid", "payload"),
    case("body-not-object", "POST", JOB, [1, 2], 422, "invalid", "body"),
    case(
        "priority-text", "POST", JOB, {"payload": {}, "priority": "hi"}, 422, "invalid", "priority"
    ),
    case(
        "priority-float", "POST", JOB, {"payload": {}, "priority": 1.5}, 422, "invalid", "priority"
    ),
    case(
        "max-attempts-text",
        "POST",
        JOB,
        {"payload": {}, "max_attempts": "many"},
        422,
        "invalid",
        "max_attempts",
    ),
    case(
        "worker-types-string",
        "POST",
        JOB,
        {"payload": {}, "worker_types": "process"},
        422,
        "invalid",
        "worker_types",
    ),
    case(
        "worker-types-item",
        "POST",
        JOB,
        {"payload": {}, "worker_types": ["ok", 3]},
        422,
        "invalid",
        "worker_types[1]",
    ),
    case("run-at-text", "POST", JOB, {"payload": {}, "run_at": "soon"}, 422, "invalid", "run_at"),
    case("negative-delay", "POST", JOB, {"payload": {}, "delay_s": -1}, 422, "invalid", "delay_s"),
    case(
        "negative-cpu",
        "POST",
        JOB,
        {"payload": {}, "requirements": {"cpu": -1}},
        422,
        "invalid",
        "requirements.cpu",
    ),
    case(
        "label-value-number",
        "POST",
        JOB,
        {"payload": {}, "requirements": {"labels": {"zone": 1}}},
        422,
        "invalid",
        "requirements.labels.zone",
    ),
    # submit: unknown fields (extra="forbid")
    case("unknown-field", "POST", JOB, {"payload": {}, "colour": "red"}, 422, "invalid", "colour"),
    case(
        "unknown-nested-field",
        "POST",
        JOB,
        {"payload": {}, "requirements": {"disk": 1}},
        422,
        "invalid",
        "requirements.disk",
    ),
    case(
        "unknown-backoff-field",
        "POST",
        JOB,
        {"payload": {}, "backoff": {"base": 1}},
        422,
        "invalid",
        "backoff.base",
    ),
    # submit: the domain's checks
    case("bad-queue", "POST", JOB, {"payload": {}, "queue": "a b"}, 422, "invalid", "queue"),
    case("bad-tenant", "POST", JOB, {"payload": {}, "tenant": ""}, 422, "invalid", "tenant"),
    case(
        "bad-worker-type",
        "POST",
        JOB,
        {"payload": {}, "worker_types": ["ok", "not ok"]},
        422,
        "invalid",
        "worker_types[1]",
    ),
    case(
        "max-attempts-zero",
        "POST",
        JOB,
        {"payload": {}, "max_attempts": 0},
        422,
        "invalid",
        "max_attempts",
    ),
    case(
        "max-attempts-huge",
        "POST",
        JOB,
        {"payload": {}, "max_attempts": 1001},
        422,
        "invalid",
        "max_attempts",
    ),
    case(
        "priority-range",
        "POST",
        JOB,
        {"payload": {}, "priority": 10**7},
        422,
        "invalid",
        "priority",
    ),
    case("timeout-zero", "POST", JOB, {"payload": {}, "timeout_s": 0}, 422, "invalid", "timeout_s"),
    case(
        "backoff-factor",
        "POST",
        JOB,
        {"payload": {}, "backoff": {"factor": 0.5}},
        422,
        "invalid",
        "backoff.factor",
    ),
    case(
        "label-key",
        "POST",
        JOB,
        {"payload": {}, "requirements": {"labels": {"bad key": "x"}}},
        422,
        "invalid",
        "requirements.labels.bad key",
    ),
    case(
        "idempotency-empty",
        "POST",
        JOB,
        {"payload": {}, "idempotency_key": ""},
        422,
        "invalid",
        "idempotency_key",
    ),
    case(
        "run-at-and-delay",
        "POST",
        JOB,
        {"payload": {}, "run_at": "2030-01-01T00:00:00Z", "delay_s": 1},
        422,
        "invalid",
        "run_at",
    ),
    case(
        "run-at-year-9999",
        "POST",
        JOB,
        {"payload": {}, "run_at": "9999-12-31T00:00:00Z"},
        422,
        "invalid",
        "run_at",
    ),
    case("bulk-empty", "POST", f"{JOB}/bulk", {"jobs": []}, 422, "invalid", "jobs"),
    case("bulk-not-list", "POST", f"{JOB}/bulk", {"jobs": {}}, 422, "invalid", "jobs"),
    # listing
    case("limit-zero", "GET", f"{JOB}?limit=0", None, 422, "invalid", "limit"),
    case("limit-too-big", "GET", f"{JOB}?limit=1001", None, 422, "invalid", "limit"),
    case("limit-text", "GET", f"{JOB}?limit=ten", None, 422, "invalid", "limit"),
    case("status-unknown", "GET", f"{JOB}?status=done", None, 422, "invalid", "status[0]"),
    case("workers-status", "GET", "/api/v1/workers?status=gone", None, 422, "invalid", "status"),
    # unknown jobs
    case("get-unknown", "GET", f"{JOB}/nope", None, 404, "job_not_found"),
    case("cancel-unknown", "POST", f"{JOB}/nope/cancel", None, 404, "job_not_found"),
    case("retry-unknown", "POST", f"{JOB}/nope/retry", None, 404, "job_not_found"),
    case("wait-unknown", "GET", f"{JOB}/nope/wait?timeout=0", None, 404, "job_not_found"),
    case("wait-too-long", "GET", f"{JOB}/nope/wait?timeout=301", None, 422, "invalid", "timeout"),
    case("retry-zero", "POST", f"{JOB}/nope/retry", {"attempts": 0}, 422, "invalid", "attempts"),
    case("cancel-extra", "POST", f"{JOB}/nope/cancel", {"why": "x"}, 422, "invalid", "why"),
    # unknown workers
    case(
        "heartbeat-unknown",
        "POST",
        "/api/v1/workers/nope/heartbeat",
        {"running": []},
        404,
        "worker_not_found",
    ),
    case(
        "claim-unknown", "POST", "/api/v1/workers/nope/claim", {"limit": 1}, 404, "worker_not_found"
    ),
    case("drain-unknown", "POST", "/api/v1/workers/nope/drain", None, 404, "worker_not_found"),
    case(
        "deregister-unknown",
        "POST",
        "/api/v1/workers/nope/deregister",
        None,
        404,
        "worker_not_found",
    ),
    case("get-worker-unknown", "GET", "/api/v1/workers/nope", None, 404, "worker_not_found"),
    case(
        "claim-limit-zero",
        "POST",
        "/api/v1/workers/nope/claim",
        {"limit": 0},
        422,
        "invalid",
        "limit",
    ),
    case(
        "claim-limit-huge",
        "POST",
        "/api/v1/workers/nope/claim",
        {"limit": 5000},
        422,
        "invalid",
        "limit",
    ),
    case(
        "claim-negative-wait",
        "POST",
        "/api/v1/workers/nope/claim",
        {"wait_s": -1},
        422,
        "invalid",
        "wait_s",
    ),
    case(
        "heartbeat-bad-running",
        "POST",
        "/api/v1/workers/nope/heartbeat",
        {"running": [{"job_id": "j"}]},
        422,
        "invalid",
        "running[0].attempt",
    ),
    # register
    case(
        "register-missing-type",
        "POST",
        "/api/v1/workers",
        {"id": "w"},
        422,
        "invalid",
        "worker_type",
    ),
    case(
        "register-bad-type",
        "POST",
        "/api/v1/workers",
        {"id": "w", "worker_type": "a b"},
        422,
        "invalid",
        "worker_type",
    ),
    case(
        "register-zero-concurrency",
        "POST",
        "/api/v1/workers",
        {"id": "w", "worker_type": "p", "concurrency": 0},
        422,
        "invalid",
        "concurrency",
    ),
    case(
        "register-negative-memory",
        "POST",
        "/api/v1/workers",
        {"id": "w", "worker_type": "p", "resources": {"memory_mb": -1}},
        422,
        "invalid",
        "resources.memory_mb",
    ),
    # reports
    case(
        "report-bad-kind",
        "POST",
        f"{JOB}/nope/report",
        {"worker_id": "w", "attempt": 1, "kind": "exploded"},
        422,
        "invalid",
        "kind",
    ),
    case(
        "report-attempt-zero",
        "POST",
        f"{JOB}/nope/report",
        {"worker_id": "w", "attempt": 0, "kind": "completed"},
        422,
        "invalid",
        "attempt",
    ),
    case(
        "report-error-without-kind",
        "POST",
        f"{JOB}/nope/report",
        {"worker_id": "w", "attempt": 1, "kind": "failed", "error": {"message": "m"}},
        422,
        "invalid",
        "error.kind",
    ),
    case(
        "reports-missing-job-id",
        "POST",
        "/api/v1/workers/w/reports",
        {"reports": [{"attempt": 1, "kind": "completed"}]},
        422,
        "invalid",
        "reports[0].job_id",
    ),
    # routing
    case("unknown-route", "GET", "/api/v1/nothing-here", None, 404, "not_found"),
    case("wrong-method", "DELETE", JOB, None, 405, "http_error"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[RunningServer, list[str]]]:
    """One server for the many cases below (a server per case costs ~0.4s each)."""
    errors: list[str] = []
    harness = Harness(Path(tmp_path_factory.mktemp("problems")), errors)
    server = await harness.start_server()
    try:
        yield server, errors
    finally:
        await harness.aclose()
    assert not errors, errors


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(("method", "path", "body", "status", "code", "field"), CASES)
async def test_problem_responses(
    shared: tuple[RunningServer, list[str]],
    method: str,
    path: str,
    body: Any,
    status: int,
    code: str,
    field: str | None,
) -> None:
    server, errors = shared
    async with httpx.AsyncClient(
        base_url=server.url, event_hooks={"response": [no_5xx_hook(errors)]}
    ) as http:
        r = await http.request(method, path, json=body)
        check_problem(r, status, code, field)
        # a refused submission stores nothing (and no case here is meant to store one)
        assert (await http.get(JOB)).json()["jobs"] == []
    assert not errors, errors


async def test_unknown_job_and_worker_problems_name_them(http: httpx.AsyncClient) -> None:
    job = check_problem(await http.get(f"{JOB}/j-404"), 404, "job_not_found")
    assert job["job_id"] == "j-404"
    assert "j-404" in job["detail"]
    worker = check_problem(
        await http.post("/api/v1/workers/w-404/claim", json={"limit": 1}), 404, "worker_not_found"
    )
    assert worker["worker_id"] == "w-404"
    assert "w-404" in worker["detail"]


async def test_payload_too_large(http: httpx.AsyncClient) -> None:
    r = await http.post(JOB, json={"payload": {"blob": "x" * MIB}})
    problem = check_problem(r, 413, "too_large", "payload")
    assert str(MIB) in problem["detail"]
    assert problem["limit"] == MIB
    assert (await http.get(JOB)).json()["jobs"] == []


async def test_payload_at_the_limit_is_accepted(http: httpx.AsyncClient) -> None:
    overhead = len(b'{"b":""}')
    r = await http.post(JOB, json={"payload": {"b": "x" * (MIB - overhead)}})
    assert r.status_code == 201


async def test_malformed_json_names_the_body(http: httpx.AsyncClient) -> None:
    r = await http.post(JOB, content=b'{"payload": {', headers={"content-type": "application/json"})
    check_problem(r, 422, "invalid", "body")


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
async def test_non_finite_numbers_in_the_payload_are_refused(
    http: httpx.AsyncClient, literal: bytes
) -> None:
    """NaN/Infinity are not JSON; the payload must not be stored with them silently
    replaced by null."""
    body = b'{"payload": {"x": ' + literal + b"}}"
    r = await http.post(JOB, content=body, headers={"content-type": "application/json"})
    check_problem(r, 422, "invalid", "payload")


# the single report endpoint: a refused report answers 409 and changes nothing ------------
async def _claimed_job(http: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    await register_worker(http, "w1")
    await register_worker(http, "w2")
    job = await submit(http, {"n": 1}, max_attempts=5, backoff={"base_s": 0, "jitter": 0})
    (assigned,) = await claim(http, "w1")
    assert assigned["id"] == job["id"]
    return job, assigned


def single(worker: str, attempt: int, kind: str = "completed", **extra: Any) -> dict[str, Any]:
    return {"worker_id": worker, "attempt": attempt, "kind": kind, **extra}


async def test_single_report_applies(http: httpx.AsyncClient) -> None:
    job, _ = await _claimed_job(http)
    r = await http.post(f"{JOB}/{job['id']}/report", json=single("w1", 1, "started"))
    assert r.status_code == 200
    assert r.json() == {"job_id": job["id"], "applied": True, "status": "in_progress", "reason": ""}
    r = await http.post(f"{JOB}/{job['id']}/report", json=single("w1", 1, result={"ok": 1}))
    assert r.status_code == 200
    assert r.json()["status"] == "completed"
    got = await get_job(http, job["id"])
    assert got["result"] == {"ok": 1}


async def test_duplicate_completion_is_409_and_changes_nothing(http: httpx.AsyncClient) -> None:
    job, _ = await _claimed_job(http)
    first = await http.post(f"{JOB}/{job['id']}/report", json=single("w1", 1, result="first"))
    assert first.status_code == 200
    before = await get_job(http, job["id"])
    again = await http.post(f"{JOB}/{job['id']}/report", json=single("w1", 1, result="second"))
    problem = check_problem(again, 409, "stale_report")
    assert problem["reason"] == "invalid_transition: completed"
    assert problem["job_id"] == job["id"]
    assert problem["job_status"] == "completed"
    after = await get_job(http, job["id"])
    assert after == before
    assert after["result"] == "first"
    assert len(after["attempts"]) == 1


async def test_report_from_the_wrong_worker_is_409(http: httpx.AsyncClient) -> None:
    job, _ = await _claimed_job(http)
    before = await get_job(http, job["id"])
    r = await http.post(f"{JOB}/{job['id']}/report", json=single("w2", 1, "failed"))
    problem = check_problem(r, 409, "stale_report")
    assert problem["reason"] == "not_claimed_by_worker"
    assert problem["job_status"] == "claimed"
    assert await get_job(http, job["id"]) == before


async def test_report_for_a_stale_attempt_is_409(http: httpx.AsyncClient) -> None:
    job, _ = await _claimed_job(http)
    results = await report(
        http, "w1", {"job_id": job["id"], "attempt": 1, "kind": "failed"}
    )  # attempt 1 failed: requeued at once (zero backoff)
    assert results[0]["status"] == "pending"
    (again,) = await claim(http, "w1")
    assert again["attempt"] == 2
    before = await get_job(http, job["id"])
    r = await http.post(f"{JOB}/{job['id']}/report", json=single("w1", 1))
    problem = check_problem(r, 409, "stale_report")
    assert problem["reason"] == "stale_attempt"
    assert await get_job(http, job["id"]) == before
    assert before["status"] == "claimed"


async def test_report_for_an_unknown_job_is_refused_cleanly(http: httpx.AsyncClient) -> None:
    await register_worker(http, "w1")
    r = await http.post(f"{JOB}/ghost/report", json=single("w1", 1))
    problem = check_problem(r, 404, "job_not_found")
    assert "ghost" in problem["detail"]


async def test_batch_report_refusals_are_per_item(http: httpx.AsyncClient) -> None:
    job, _ = await _claimed_job(http)
    results = await report(
        http,
        "w2",
        {"job_id": job["id"], "attempt": 1, "kind": "completed"},
        {"job_id": "ghost", "attempt": 1, "kind": "completed"},
    )
    assert [(r["applied"], r["reason"]) for r in results] == [
        (False, "not_claimed_by_worker"),
        (False, "not_found"),
    ]
    assert (await get_job(http, job["id"]))["status"] == "claimed"


async def test_cancel_twice_and_retry_pending_are_409(http: httpx.AsyncClient) -> None:
    job = await submit(http, {})
    check_problem(await http.post(f"{JOB}/{job['id']}/retry"), 409, "invalid_transition")
    assert (await http.post(f"{JOB}/{job['id']}/cancel")).status_code == 200
    problem = check_problem(await http.post(f"{JOB}/{job['id']}/cancel"), 409, "invalid_transition")
    assert problem["transition"] == "cancel"
    assert problem["job_status"] == "cancelled"
