"""Python clients of the HTTP API: ``Client`` (blocking) and ``AsyncClient``."""

from blixard.client.asynchronous import AsyncClient
from blixard.client.sync import Client

__all__ = ["AsyncClient", "Client"]
