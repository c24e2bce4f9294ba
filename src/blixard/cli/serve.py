"""Running the control plane and its HTTP server (uvicorn) inside our own event loop.

The address is bound and the store opened (and migrated) before uvicorn starts, so a busy
port, an unreachable database or a schema newer than this code is one clear error line,
not a server that half-starts. Signals belong to the caller (``blixard up`` stops its local
workers before the server): uvicorn's own handlers, which re-raise the signal after
shutting down and so kill the process before its cleanup, are not installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn

from blixard.api.app import create_app
from blixard.errors import ListenError
from blixard.service.control_plane import ControlPlane
from blixard.service.settings import ServerSettings
from blixard.storage.urls import store_from_url

log = logging.getLogger("blixard.server")


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


@contextlib.asynccontextmanager
async def serving(
    database: str, host: str, port: int, settings: ServerSettings, *, log_level: str = "warning"
) -> AsyncIterator[tuple[str, asyncio.Task[None]]]:
    """Yields (base URL, the server task) once the API listens; stops everything after."""
    sock = bind(host, port)
    try:
        plane = ControlPlane(store_from_url(database), settings)
        await plane.start()
        try:
            config = uvicorn.Config(
                create_app(plane, manage_lifecycle=False),
                log_level=log_level,
                access_log=False,
                loop="none",
                lifespan="on",
                timeout_graceful_shutdown=5,
            )
            server = _Server(config)
            task = asyncio.create_task(server.serve(sockets=[sock]))
            while not server.started:
                if task.done():
                    task.result()
                    raise ListenError(f"the HTTP server on {host}:{port} did not start")
                await asyncio.sleep(0.02)
            bound = sock.getsockname()[1]
            try:
                yield f"http://{host}:{bound}", task
            finally:
                server.should_exit = True
                plane.work.close()  # parked long-polls return now, not at their deadline
                await asyncio.gather(task, return_exceptions=True)
        finally:
            await plane.stop()
    finally:
        sock.close()
