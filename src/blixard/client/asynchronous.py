"""The asyncio client; the agent talks to the server through it."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from blixard.client.core import DEFAULT_SERVER, Call, Calls, decode, job_body, unreachable

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

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(Calls.stats())
        return result

    async def health(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(Calls.health())
        return result
