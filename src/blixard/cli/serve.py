"""Running the control plane and its HTTP server (uvicorn) inside our own event loop.

The store is opened (and migrated) before uvicorn starts, so a database that is unreachable
or newer than this code is one clear error line and exit code 1, not a server that
half-starts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn

from blixard.api.app import create_app
from blixard.service.control_plane import ControlPlane
from blixard.service.settings import ServerSettings
from blixard.storage.urls import store_from_url

log = logging.getLogger("blixard.server")


@asynccontextmanager
async def serving(
    database: str, host: str, port: int, settings: ServerSettings, *, log_level: str = "warning"
) -> AsyncIterator[tuple[str, asyncio.Task[None]]]:
    """Yields (base URL, the server task) once the API listens; stops everything after."""
    plane = ControlPlane(store_from_url(database), settings)
    await plane.start()
    try:
        config = uvicorn.Config(
            create_app(plane, manage_lifecycle=False),
            host=host,
            port=port,
            log_level=log_level,
            access_log=False,
            loop="none",
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()  # uvicorn's own error (e.g. the port is taken) ends here
                raise SystemExit(1)
            await asyncio.sleep(0.02)
        bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else port
        try:
            yield f"http://{host}:{bound}", task
        finally:
            server.should_exit = True
            await asyncio.gather(task, return_exceptions=True)
    finally:
        await plane.stop()
