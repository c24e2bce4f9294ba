"""Running the HTTP server (uvicorn) inside our own event loop."""

from __future__ import annotations

import asyncio
import logging

import uvicorn

from blixard.api.app import create_app
from blixard.service.control_plane import ControlPlane
from blixard.service.settings import ServerSettings
from blixard.storage.urls import store_from_url

log = logging.getLogger("blixard.server")


def build_server(
    database: str, host: str, port: int, settings: ServerSettings, *, log_level: str = "warning"
) -> tuple[uvicorn.Server, ControlPlane]:
    plane = ControlPlane(store_from_url(database), settings)
    app = create_app(plane)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        loop="none",
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(config), plane


async def wait_started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    """Until uvicorn listens (or failed to start: its error is raised here)."""
    while not server.started:
        if task.done():
            task.result()
            raise SystemExit(1)
        await asyncio.sleep(0.02)
