"""What both clients share: request building and response decoding, without I/O.

Each API call is described once as a ``Call`` (method, path, body, params, how to decode);
the sync and async clients only send it. Problem responses turn back into the Blixard
exception of the same code, so callers catch the same types on both sides of the wire.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote

import httpx
import orjson

from blixard import errors

DEFAULT_SERVER = "http://127.0.0.1:8765"
JSON = Any


def _by_code() -> dict[str, type[errors.BlixardError]]:
    out: dict[str, type[errors.BlixardError]] = {}
    pending: list[type[errors.BlixardError]] = [errors.BlixardError]
    while pending:
        cls = pending.pop()
        out.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return out


_ERRORS = _by_code()


class ApiError(errors.BlixardError):
    """A problem response whose code this client does not know."""


def error_from_response(response: httpx.Response) -> errors.BlixardError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = str(body.get("detail") or response.text[:500] or response.reason_phrase)
    code = str(body.get("code", ""))
    cls = _ERRORS.get(code, ApiError)
    extra = {k: v for k, v in body.items() if k not in ("detail", "code", "title")}
    exc = errors.BlixardError.__new__(cls)
    errors.BlixardError.__init__(exc, detail, **extra)
    exc.status_code = response.status_code
    if isinstance(exc, errors.ValidationError):
        exc.field = str(body.get("field", ""))
    return exc


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str
    json: JSON = None
    params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None
    timeout: float | None = None
    decode: Callable[[JSON], Any] = field(default=lambda body: body)


def decode(call: Call, response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise error_from_response(response)
    return call.decode(orjson.loads(response.content) if response.content else None)


def job_body(
    payload: Mapping[str, Any],
    *,
    queue: str | None = None,
    tenant: str | None = None,
    worker_types: Sequence[str] | None = None,
    requirements: Mapping[str, Any] | None = None,
    priority: int | None = None,
    run_at: datetime | None = None,
    delay_s: float | None = None,
    max_attempts: int | None = None,
    backoff: Mapping[str, float] | None = None,
    timeout_s: float | None = None,
    idempotency_key: str | None = None,
    depends_on: Sequence[str] | None = None,
    on_parent_failure: str | None = None,
    concurrency_key: str | None = None,
    concurrency_limit: int | None = None,
    group_id: str | None = None,
    preferences: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A POST /jobs body (JobIn): only the options given. ``requirements`` may carry
    ``constraints`` (``{"label", "op", "values"}``); ``preferences`` are
    ``{"label", "values", "weight"}``."""
    body: dict[str, Any] = {"payload": dict(payload)}
    options: dict[str, Any] = {
        "queue": queue,
        "tenant": tenant,
        "worker_types": list(worker_types) if worker_types is not None else None,
        "requirements": dict(requirements) if requirements is not None else None,
        "priority": priority,
        "run_at": run_at.isoformat() if run_at else None,
        "delay_s": delay_s,
        "max_attempts": max_attempts,
        "backoff": dict(backoff) if backoff is not None else None,
        "timeout_s": timeout_s,
        "idempotency_key": idempotency_key,
        "depends_on": list(depends_on) if depends_on else None,
        "on_parent_failure": on_parent_failure,
        "concurrency_key": concurrency_key,
        "concurrency_limit": concurrency_limit,
        "group_id": group_id,
        "preferences": [dict(p) for p in preferences] if preferences else None,
    }
    body.update({k: v for k, v in options.items() if v is not None})
    return body


def workflow_body(
    steps: Sequence[Mapping[str, Any]],
    *,
    tenant: str | None = None,
    queue: str | None = None,
    group_id: str | None = None,
) -> dict[str, Any]:
    """The POST /workflows body. Each step is a submit body (``job_body``) with a ``name``,
    ``depends_on`` (names of other steps) and optionally ``after`` (existing job ids)."""
    body: dict[str, Any] = {"steps": [dict(step) for step in steps]}
    options = {"tenant": tenant, "queue": queue, "group_id": group_id}
    body.update({k: v for k, v in options.items() if v is not None})
    return body


class Keep(enum.Enum):
    """A setting a partial update leaves as it is (None is a value there: "no limit")."""

    KEEP = "keep"


KEEP: Final = Keep.KEEP

RateLimitArg = tuple[int, float] | Mapping[str, Any]
"""A rate limit: ``(limit, period_s)`` or ``{"limit": ..., "period_s": ...}``."""


def queue_patch(
    *,
    paused: bool | None = None,
    max_running: int | Keep | None = KEEP,
    rate_limit: RateLimitArg | Keep | None = KEEP,
) -> dict[str, Any]:
    """The PATCH body of a queue: only the settings given (None removes a limit)."""
    body: dict[str, Any] = {}
    if paused is not None:
        body["paused"] = paused
    if max_running is not KEEP:
        body["max_running"] = max_running
    if rate_limit is not KEEP:
        if rate_limit is None or isinstance(rate_limit, Mapping):
            body["rate_limit"] = None if rate_limit is None else dict(rate_limit)
        else:
            limit, period_s = rate_limit
            body["rate_limit"] = {"limit": limit, "period_s": period_s}
    return body


def tenant_patch(
    *, weight: float | None = None, max_running: int | Keep | None = KEEP
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if weight is not None:
        body["weight"] = weight
    if max_running is not KEEP:
        body["max_running"] = max_running
    return body


def schedule_body(
    name: str,
    cron: str,
    job: Mapping[str, Any],
    *,
    tenant: str | None = None,
    timezone: str | None = None,
    misfire: str | None = None,
    no_overlap: bool | None = None,
    paused: bool | None = None,
) -> dict[str, Any]:
    """The POST /schedules body; ``job`` is a submit body (``job_body``) without run_at,
    delay_s or idempotency_key."""
    body: dict[str, Any] = {"name": name, "cron": cron, "job": dict(job)}
    options = {
        "tenant": tenant,
        "timezone": timezone,
        "misfire": misfire,
        "no_overlap": no_overlap,
        "paused": paused,
    }
    body.update({k: v for k, v in options.items() if v is not None})
    return body


def _name(value: str) -> str:
    """A queue, tenant or group name as one path segment (names may hold '/')."""
    return quote(value, safe="")


class Calls:
    """Every API call, as data."""

    @staticmethod
    def submit(body: Mapping[str, Any]) -> Call:
        return Call("POST", "/api/v1/jobs", json=body)

    @staticmethod
    def submit_bulk(bodies: Sequence[Mapping[str, Any]]) -> Call:
        return Call(
            "POST", "/api/v1/jobs/bulk", json={"jobs": list(bodies)}, decode=lambda b: b["jobs"]
        )

    @staticmethod
    def get_job(job_id: str) -> Call:
        return Call("GET", f"/api/v1/jobs/{job_id}")

    @staticmethod
    def list_jobs(
        *,
        status: Sequence[str] = (),
        queue: str | None = None,
        tenant: str | None = None,
        worker_type: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        group_id: str | None = None,
    ) -> Call:
        params: list[tuple[str, Any]] = [("status", s) for s in status]
        for key, value in (
            ("queue", queue),
            ("tenant", tenant),
            ("worker_type", worker_type),
            ("group_id", group_id),
            ("cursor", cursor),
        ):
            if value is not None:
                params.append((key, value))
        params.append(("limit", limit))
        return Call("GET", "/api/v1/jobs", params=params)

    @staticmethod
    def cancel(job_id: str, reason: str | None = None) -> Call:
        return Call(
            "POST", f"/api/v1/jobs/{job_id}/cancel", json={"reason": reason} if reason else None
        )

    @staticmethod
    def retry(job_id: str, attempts: int = 1) -> Call:
        return Call("POST", f"/api/v1/jobs/{job_id}/retry", json={"attempts": attempts})

    @staticmethod
    def wait(job_id: str, timeout_s: float) -> Call:
        return Call(
            "GET",
            f"/api/v1/jobs/{job_id}/wait",
            params={"timeout": timeout_s},
            timeout=timeout_s + 30,
        )

    @staticmethod
    def register(body: Mapping[str, Any]) -> Call:
        return Call("POST", "/api/v1/workers", json=body)

    @staticmethod
    def heartbeat(worker_id: str, running: Sequence[tuple[str, int]]) -> Call:
        return Call(
            "POST",
            f"/api/v1/workers/{worker_id}/heartbeat",
            json={"running": [{"job_id": j, "attempt": a} for j, a in running]},
        )

    @staticmethod
    def claim(
        worker_id: str, limit: int, wait_s: float, reports: Sequence[Mapping[str, Any]] = ()
    ) -> Call:
        """Answers {"jobs": [...], "results": [...]}: reports are applied before the claim."""
        body: dict[str, Any] = {"limit": limit, "wait_s": wait_s}
        if reports:
            body["reports"] = list(reports)
        return Call("POST", f"/api/v1/workers/{worker_id}/claim", json=body, timeout=wait_s + 30)

    @staticmethod
    def report(worker_id: str, reports: Sequence[Mapping[str, Any]]) -> Call:
        return Call(
            "POST",
            f"/api/v1/workers/{worker_id}/reports",
            json={"reports": list(reports)},
            decode=lambda b: b["results"],
        )

    @staticmethod
    def list_workers(status: str | None = None) -> Call:
        return Call("GET", "/api/v1/workers", params={"status": status} if status else None)

    @staticmethod
    def get_worker(worker_id: str) -> Call:
        return Call("GET", f"/api/v1/workers/{worker_id}")

    @staticmethod
    def drain(worker_id: str) -> Call:
        return Call("POST", f"/api/v1/workers/{worker_id}/drain")

    @staticmethod
    def deregister(worker_id: str) -> Call:
        return Call("POST", f"/api/v1/workers/{worker_id}/deregister")

    @staticmethod
    def stats(tenant: str | None = None) -> Call:
        return Call("GET", "/api/v1/stats", params={"tenant": tenant} if tenant else None)

    @staticmethod
    def list_queues() -> Call:
        return Call("GET", "/api/v1/queues")

    @staticmethod
    def get_queue(name: str) -> Call:
        return Call("GET", f"/api/v1/queues/{_name(name)}")

    @staticmethod
    def configure_queue(name: str, body: Mapping[str, Any]) -> Call:
        return Call("PATCH", f"/api/v1/queues/{_name(name)}", json=dict(body))

    @staticmethod
    def pause_queue(name: str) -> Call:
        return Call("POST", f"/api/v1/queues/{_name(name)}/pause")

    @staticmethod
    def resume_queue(name: str) -> Call:
        return Call("POST", f"/api/v1/queues/{_name(name)}/resume")

    @staticmethod
    def list_tenants() -> Call:
        return Call("GET", "/api/v1/tenants")

    @staticmethod
    def get_tenant(name: str) -> Call:
        return Call("GET", f"/api/v1/tenants/{_name(name)}")

    @staticmethod
    def configure_tenant(name: str, body: Mapping[str, Any]) -> Call:
        return Call("PATCH", f"/api/v1/tenants/{_name(name)}", json=dict(body))

    @staticmethod
    def get_group(group_id: str, limit: int = 50, cursor: str | None = None) -> Call:
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        return Call("GET", f"/api/v1/groups/{_name(group_id)}", params=params)

    @staticmethod
    def cancel_group(group_id: str, reason: str | None = None) -> Call:
        return Call(
            "POST",
            f"/api/v1/groups/{_name(group_id)}/cancel",
            json={"reason": reason} if reason else None,
        )

    @staticmethod
    def create_schedule(body: Mapping[str, Any]) -> Call:
        return Call("POST", "/api/v1/schedules", json=dict(body))

    @staticmethod
    def list_schedules(tenant: str | None = None) -> Call:
        return Call("GET", "/api/v1/schedules", params={"tenant": tenant} if tenant else None)

    @staticmethod
    def get_schedule(schedule_id: str, upcoming: int = 5, jobs: int = 10) -> Call:
        return Call(
            "GET",
            f"/api/v1/schedules/{_name(schedule_id)}",
            params={"upcoming": upcoming, "jobs": jobs},
        )

    @staticmethod
    def pause_schedule(schedule_id: str) -> Call:
        return Call("POST", f"/api/v1/schedules/{_name(schedule_id)}/pause")

    @staticmethod
    def resume_schedule(schedule_id: str) -> Call:
        return Call("POST", f"/api/v1/schedules/{_name(schedule_id)}/resume")

    @staticmethod
    def delete_schedule(schedule_id: str) -> Call:
        return Call("DELETE", f"/api/v1/schedules/{_name(schedule_id)}")

    @staticmethod
    def submit_workflow(body: Mapping[str, Any]) -> Call:
        """Answers {"group_id", "created", "jobs"}: one job per step, in topological order."""
        return Call("POST", "/api/v1/workflows", json=dict(body))

    @staticmethod
    def health() -> Call:
        return Call("GET", "/healthz")


def unreachable(server: str, exc: Exception) -> errors.ClientError:
    return errors.ClientError(f"cannot reach the Blixard server at {server}: {exc}", server=server)
