"""Blixard: a generic distributed job orchestrator.

The public API: ``blixard.Client`` and ``blixard.AsyncClient`` (the HTTP API from Python),
and the error hierarchy in ``blixard.errors`` (``BlixardError`` and its subclasses, also
re-exported here). Clients are imported on first use, so ``import blixard`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blixard.errors import (
    BlixardError,
    ClientError,
    Conflict,
    InvalidTransition,
    JobNotFound,
    NotFound,
    StaleReport,
    ValidationError,
    WorkerNotFound,
)

if TYPE_CHECKING:
    from blixard.client import AsyncClient, Client

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "BlixardError",
    "Client",
    "ClientError",
    "Conflict",
    "InvalidTransition",
    "JobNotFound",
    "NotFound",
    "StaleReport",
    "ValidationError",
    "WorkerNotFound",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in ("Client", "AsyncClient"):
        from blixard import client

        return getattr(client, name)
    raise AttributeError(f"module 'blixard' has no attribute {name!r}")
