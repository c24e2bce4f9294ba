"""Helpers for the integration tests: a real uvicorn server and real agents, in-process.

``Harness`` starts servers (the FastAPI app over a SQLite file, served by uvicorn on
127.0.0.1) and agents, and stops them in reverse order. Every server response passes
through ``record_server_errors``, so a test fails on any 5xx, whoever made the request.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from blixard.agent.agent import Agent
from blixard.agent.settings import AgentSettings
from blixard.api.app import create_app
from blixard.domain.workers import Resources
from blixard.service.control_plane import ControlPlane
from blixard.service.settings import ServerSettings
from blixard.storage.urls import store_from_url

TEST_SETTINGS = ServerSettings(lease_ttl_s=1.0, worker_ttl_s=2.0, reaper_interval_s=0.1)
TERMINAL = {"completed", "failed", "cancelled"}
AGENT_RESOURCES = Resources(cpu=8, memory_mb=8192)

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


async def eventually(
    predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02, what: str = ""
) -> Any:
    """Poll ``predicate`` (sync or async) until it returns something truthy; return it."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = predicate()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"condition {what or predicate!r} not met within {timeout}s (last value: {last!r})"
            )
        await asyncio.sleep(interval)


def record_server_errors(app: ASGIApp, errors: list[str]) -> ASGIApp:
    """An ASGI wrapper that notes every 5xx response and every exception of the app."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        where = f"{scope['method']} {scope['path']}"

        async def checked_send(message: Any) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 500:
                errors.append(f"{where} -> {message['status']}")
            await send(message)

        try:
            await app(scope, receive, checked_send)
        except Exception as exc:
            errors.append(f"{where} raised {exc!r}")
            raise

    return wrapped


def no_5xx_hook(errors: list[str]) -> Callable[[httpx.Response], Awaitable[None]]:
    """An httpx response hook: client-side record of any 5xx answer."""

    async def hook(response: httpx.Response) -> None:
        if response.status_code >= 500:
            await response.aread()
            errors.append(
                f"{response.request.method} {response.request.url} -> "
                f"{response.status_code}: {response.text[:300]}"
            )

    return hook


@dataclass
class RunningServer:
    plane: ControlPlane
    server: uvicorn.Server
    task: asyncio.Task[None]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self.task.done():
            return
        # Wake parked long-poll claims: those whose agent already left see the disconnect
        # and end now, instead of holding the graceful shutdown for their whole wait_s.
        self.plane.work.notify()
        self.server.should_exit = True
        await asyncio.wait_for(self.task, 15)


@dataclass
class RunningAgent:
    agent: Agent
    task: asyncio.Task[int]

    @property
    def worker_id(self) -> str:
        return self.agent.worker_id

    async def stop(self) -> None:
        """Cancel running jobs and wait for the agent to exit; its crash fails the test."""
        if not self.task.done():
            self.agent.stop_now()
            await asyncio.wait_for(asyncio.shield(self.task), 15)
        assert self.task.result() == 0


@dataclass
class Harness:
    """Servers and agents of one test, stopped in reverse order of start."""

    tmp_path: Path
    errors: list[str]
    started: list[RunningServer | RunningAgent] = field(default_factory=list)

    def db_url(self, name: str = "t.db") -> str:
        return f"sqlite:///{self.tmp_path / name}"

    async def start_server(
        self,
        settings: ServerSettings = TEST_SETTINGS,
        *,
        port: int = 0,
        db: str = "t.db",
    ) -> RunningServer:
        plane = ControlPlane(store_from_url(self.db_url(db)), settings)
        app = record_server_errors(create_app(plane), self.errors)
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(), name="uvicorn")
        await eventually(lambda: server.started or task.done(), 10, 0.005, "server started")
        if task.done():
            task.result()  # raises the start-up failure
            raise AssertionError("the server exited during start-up")
        bound = server.servers[0].sockets[0].getsockname()[1]
        running = RunningServer(plane, server, task, bound)
        self.started.append(running)
        return running

    async def start_agent(
        self,
        url: str,
        *,
        worker_type: str = "mock",
        concurrency: int = 1,
        labels: Mapping[str, str] | None = None,
        backend_options: Mapping[str, str] | None = None,
        resources: Resources = AGENT_RESOURCES,
        wait_registered: bool = True,
    ) -> RunningAgent:
        settings = AgentSettings(
            servers=[url],
            worker_type=worker_type,
            concurrency=concurrency,
            claim_wait_s=1.0,
            resources=resources,
            labels=dict(labels or {}),
            backend_options=dict(backend_options or {}),
            name=f"itest-{worker_type}",
            work_root=str(self.tmp_path / "work"),
            shutdown_grace_s=3.0,
        )
        agent = Agent(settings)
        task = asyncio.create_task(agent.run(install_signals=False), name="agent")
        running = RunningAgent(agent, task)
        self.started.append(running)
        if wait_registered:
            async with httpx.AsyncClient(base_url=url) as http:

                async def registered() -> bool:
                    if task.done():
                        task.result()
                    r = await http.get(f"/api/v1/workers/{agent.worker_id}")
                    return r.status_code == 200

                await eventually(registered, 10, 0.02, "agent registered")
        return running

    async def aclose(self) -> None:
        problems: list[BaseException] = []
        while self.started:
            item = self.started.pop()
            try:
                await item.stop()
            except BaseException as exc:
                problems.append(exc)
        if problems:
            raise problems[0]


async def register_worker(
    http: httpx.AsyncClient,
    worker_id: str,
    *,
    worker_type: str = "process",
    concurrency: int = 4,
    cpu: float = 4.0,
    memory_mb: int = 4096,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    r = await http.post(
        "/api/v1/workers",
        json={
            "id": worker_id,
            "worker_type": worker_type,
            "concurrency": concurrency,
            "resources": {"cpu": cpu, "memory_mb": memory_mb},
            "labels": dict(labels or {}),
        },
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def claim(
    http: httpx.AsyncClient, worker_id: str, limit: int = 1, wait_s: float = 0.0
) -> list[dict[str, Any]]:
    r = await http.post(
        f"/api/v1/workers/{worker_id}/claim",
        json={"limit": limit, "wait_s": wait_s},
        timeout=wait_s + 10,
    )
    assert r.status_code == 200, r.text
    jobs: list[dict[str, Any]] = r.json()["jobs"]
    return jobs


async def report(
    http: httpx.AsyncClient, worker_id: str, *reports: dict[str, Any]
) -> list[dict[str, Any]]:
    r = await http.post(f"/api/v1/workers/{worker_id}/reports", json={"reports": list(reports)})
    assert r.status_code == 200, r.text
    results: list[dict[str, Any]] = r.json()["results"]
    return results


async def heartbeat(
    http: httpx.AsyncClient, worker_id: str, running: list[tuple[str, int]]
) -> dict[str, Any]:
    r = await http.post(
        f"/api/v1/workers/{worker_id}/heartbeat",
        json={"running": [{"job_id": j, "attempt": a} for j, a in running]},
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def submit(http: httpx.AsyncClient, payload: dict[str, Any], **fields: Any) -> dict[str, Any]:
    r = await http.post("/api/v1/jobs", json={"payload": payload, **fields})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def get_job(http: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    r = await http.get(f"/api/v1/jobs/{job_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def job_status(http: httpx.AsyncClient, job_id: str) -> str:
    return str((await get_job(http, job_id))["status"])
