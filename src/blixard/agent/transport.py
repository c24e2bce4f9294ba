"""The agent's link to the control plane: several servers, failover, retry with backoff.

A call goes to the current server; when that server cannot be reached the next one is
tried, and once all have failed the agent backs off (capped exponential) and starts over.
Running jobs are untouched meanwhile: a server restart or failover costs no work.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from typing import Any

from blixard.client.asynchronous import AsyncClient
from blixard.client.core import Call
from blixard.errors import ClientError, StorageError

log = logging.getLogger("blixard.agent")


class Transport:
    def __init__(
        self, servers: Sequence[str], *, max_backoff_s: float = 5.0, timeout_s: float = 30.0
    ) -> None:
        if not servers:
            raise ValueError("at least one server URL is required")
        self._clients = [AsyncClient(s, timeout=timeout_s, max_connections=16) for s in servers]
        self._current = 0
        self._max_backoff_s = max_backoff_s
        self.failovers = 0

    @property
    def server(self) -> str:
        return self._clients[self._current].server

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self._clients), return_exceptions=True)

    async def once(self, call: Call) -> Any:
        """One try on the current server, failing over to the next on a transport error."""
        client = self._clients[self._current]
        try:
            return await client.call(call)
        except (ClientError, StorageError):
            if len(self._clients) > 1 and self._clients[self._current] is client:
                self._current = (self._current + 1) % len(self._clients)
                self.failovers += 1
                log.warning("server %s unreachable, failing over to %s", client.server, self.server)
            raise

    async def call(self, call: Call) -> Any:
        """Until it succeeds: unreachable servers (and 503s) are retried with backoff.
        Other errors (4xx: the server answered) are raised to the caller."""
        delay = 0.05
        failures = 0
        while True:
            try:
                return await self.once(call)
            except (ClientError, StorageError) as exc:
                failures += 1
                if failures % len(self._clients) == 0:
                    if failures == len(self._clients):
                        log.warning("no server reachable (%s); retrying", exc.message)
                    await asyncio.sleep(delay * (0.5 + random.random() / 2))
                    delay = min(delay * 2, self._max_backoff_s)
