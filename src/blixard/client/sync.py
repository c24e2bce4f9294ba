"""The blocking client."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from blixard.client.core import DEFAULT_SERVER, Call, Calls, decode, job_body, unreachable

TERMINAL = {"completed", "failed", "cancelled"}


class Client:
    """``Client("http://127.0.0.1:8765").submit({"command": ["echo", "hi"]})``."""

    def __init__(self, server: str = DEFAULT_SERVER, *, timeout: float = 30.0) -> None:
        self.server = server.rstrip("/")
        self._http = httpx.Client(base_url=self.server, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def call(self, call: Call) -> Any:
        try:
            response = self._http.request(
                call.method,
                call.path,
                json=call.json,
                params=call.params,  # type: ignore[arg-type]
                timeout=call.timeout if call.timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TransportError as exc:
            raise unreachable(self.server, exc) from exc
        return decode(call, response)

    def submit(self, payload: Mapping[str, Any], **options: Any) -> dict[str, Any]:
        """Submit one job; options are JobIn's fields (queue, worker_types, timeout_s...)."""
        result: dict[str, Any] = self.call(Calls.submit(job_body(payload, **options)))
        return result

    def submit_many(self, jobs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Submit JobIn bodies (each with a ``payload``) in one transaction."""
        result: list[dict[str, Any]] = self.call(Calls.submit_bulk(jobs))
        return result

    def get(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call(Calls.get_job(job_id))
        return result

    def list_jobs(self, **filters: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.call(Calls.list_jobs(**filters))
        return result

    def cancel(self, job_id: str, reason: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.call(Calls.cancel(job_id, reason))
        return result

    def retry(self, job_id: str, attempts: int = 1) -> dict[str, Any]:
        result: dict[str, Any] = self.call(Calls.retry(job_id, attempts))
        return result

    def wait(self, job_id: str, timeout_s: float | None = None) -> dict[str, Any]:
        """Until the job is terminal (or ``timeout_s`` passes: the job as it is then)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            step = 60.0 if deadline is None else max(0.0, min(60.0, deadline - time.monotonic()))
            job: dict[str, Any] = self.call(Calls.wait(job_id, step))
            if job["status"] in TERMINAL or (deadline is not None and time.monotonic() >= deadline):
                return job

    def workers(self, status: str | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call(Calls.list_workers(status))
        return result

    def drain(self, worker_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call(Calls.drain(worker_id))
        return result

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call(Calls.stats())
        return result

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call(Calls.health())
        return result
