"""The asyncio client; the agent talks to the server through it."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from blixard.client.core import (
    DEFAULT_SERVER,
    KEEP,
    Call,
    Calls,
    Keep,
    RateLimitArg,
    decode,
    job_body,
    queue_patch,
    schedule_body,
    tenant_patch,
    unreachable,
    workflow_body,
)

TERMINAL = {"completed", "failed", "cancelled"}


class AsyncClient:
    """``async with AsyncClient(url) as c: await c.submit({...})``."""

    def __init__(
        self,
        server: str = DEFAULT_SERVER,
        *,
        timeout: float = 30.0,
        max_connections: int = 100,
    ) -> None:
        self.server = server.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.server,
            timeout=timeout,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(self, call: Call) -> Any:
        try:
            response = await self._http.request(
                call.method,
                call.path,
                json=call.json,
                params=call.params,  # type: ignore[arg-type]
                timeout=call.timeout if call.timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TransportError as exc:
            raise unreachable(self.server, exc) from exc
        return decode(call, response)

    async def submit(self, payload: Mapping[str, Any], **options: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(Calls.submit(job_body(payload, **options)))
        return result

    async def submit_many(self, jobs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.call(Calls.submit_bulk(jobs))
        return result

    async def get(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(Calls.get_job(job_id))
        return result

    async def list_jobs(self, **filters: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(Calls.list_jobs(**filters))
        return result

    async def cancel(self, job_id: str, reason: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(Calls.cancel(job_id, reason))
        return result

    async def retry(self, job_id: str, attempts: int = 1) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(Calls.retry(job_id, attempts))
        return result

    async def wait(self, job_id: str, timeout_s: float | None = None) -> dict[str, Any]:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            step = 60.0 if deadline is None else max(0.0, min(60.0, deadline - time.monotonic()))
            job: dict[str, Any] = await self.call(Calls.wait(job_id, step))
            if job["status"] in TERMINAL or (deadline is not None and time.monotonic() >= deadline):
                return job

    async def workers(self, status: str | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.call(Calls.list_workers(status))
        return result

    async def drain(self, worker_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(Calls.drain(worker_id))
        return result

    async def stats(self, tenant: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(Calls.stats(tenant))
        return result

    async def queues(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.call(Calls.list_queues())
        return result

    async def queue(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(Calls.get_queue(name))
        return result

    async def configure_queue(
        self,
        name: str,
        *,
        paused: bool | None = None,
        max_running: int | Keep | None = KEEP,
        rate_limit: RateLimitArg | Keep | None = KEEP,
    ) -> dict[str, Any]:
        body = queue_patch(paused=paused, max_running=max_running, rate_limit=rate_limit)
        result: dict[str, Any] = await self.call(Calls.configure_queue(name, body))
        return result

    async def pause_queue(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(Calls.pause_queue(name))
        return result

    async def resume_queue(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(Calls.resume_queue(name))
        return result

    async def tenants(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.call(Calls.list_tenants())
        return result

    async def tenant(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(Calls.get_tenant(name))
        return result

    async def configure_tenant(
        self, name: str, *, weight: float | None = None, max_running: int | Keep | None = KEEP
    ) -> dict[str, Any]:
        body = tenant_patch(weight=weight, max_running=max_running)
        result: dict[str, Any] = await self.call(Calls.configure_tenant(name, body))
        return result

    async def group(
        self, group_id: str, limit: int = 50, cursor: str | None = None
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(Calls.get_group(group_id, limit, cursor))
        return result

    async def cancel_group(self, group_id: str, reason: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(Calls.cancel_group(group_id, reason))
        return result

    async def create_schedule(
        self,
        name: str,
        cron: str,
        payload: Mapping[str, Any],
        *,
        tenant: str | None = None,
        timezone: str | None = None,
        misfire: str | None = None,
        no_overlap: bool | None = None,
        paused: bool | None = None,
        **job_options: Any,
    ) -> dict[str, Any]:
        """A cron schedule firing ``payload`` jobs; ``job_options`` are the submit options
        (queue, worker_types, priority, timeout_s...) but run_at, delay_s, idempotency_key."""
        body = schedule_body(
            name,
            cron,
            job_body(payload, **job_options),
            tenant=tenant,
            timezone=timezone,
            misfire=misfire,
            no_overlap=no_overlap,
            paused=paused,
        )
        result: dict[str, Any] = await self.call(Calls.create_schedule(body))
        return result

    async def schedules(self, tenant: str | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.call(Calls.list_schedules(tenant))
        return result

    async def schedule(self, schedule_id: str, upcoming: int = 5, jobs: int = 10) -> dict[str, Any]:
        """A schedule with its ``upcoming`` slots and the latest ``jobs`` it fired."""
        result: dict[str, Any] = await self.call(Calls.get_schedule(schedule_id, upcoming, jobs))
        return result

    async def pause_schedule(self, schedule_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(Calls.pause_schedule(schedule_id))
        return result

    async def resume_schedule(self, schedule_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(Calls.resume_schedule(schedule_id))
        return result

    async def delete_schedule(self, schedule_id: str) -> None:
        await self.call(Calls.delete_schedule(schedule_id))

    async def submit_workflow(
        self,
        steps: Sequence[Mapping[str, Any]],
        *,
        tenant: str | None = None,
        queue: str | None = None,
        group_id: str | None = None,
    ) -> dict[str, Any]:
        """Submit a DAG of named steps as one group: ``{"name": "test", "payload": {...},
        "depends_on": ["build"]}`` (other keys: the submit options). Answers {"group_id",
        "created", "jobs"} with the jobs in topological order; follow it with ``group``."""
        body = workflow_body(steps, tenant=tenant, queue=queue, group_id=group_id)
        result: dict[str, Any] = await self.call(Calls.submit_workflow(body))
        return result

    async def health(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(Calls.health())
        return result
