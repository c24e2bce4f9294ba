"""Batched reports: whatever accumulates while one request is in flight goes in the next.

Idle, a report leaves at once (low latency); under load, hundreds share one request (high
throughput). Reports are kept until the server has them: a server restart loses none.
'started' reports wait in their own map, so a job's final report simply drops its queued
start (the final report carries ``started_at``); starts are sent before finals, which keeps
each job's reports in order.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from blixard.agent.transport import Transport
from blixard.client.core import Calls
from blixard.errors import BlixardError

log = logging.getLogger("blixard.agent")


class Reporter:
    MAX_BATCH = 1000

    def __init__(self, transport: Transport, worker_id: str) -> None:
        self._transport = transport
        self._worker_id = worker_id
        self._starts: dict[str, dict[str, Any]] = {}
        self._finals: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        self.rejected = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="blixard-reporter")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def put(self, report: dict[str, Any]) -> None:
        if report["kind"] == "started":
            self._starts[report["job_id"]] = report
        else:
            self._starts.pop(report["job_id"], None)
            self._finals.append(report)
        self._idle.clear()
        self._wake.set()

    def take_finals(self) -> list[dict[str, Any]]:
        """Queued final reports, handed to a claim request that carries them instead."""
        finals, self._finals = self._finals[: self.MAX_BATCH], self._finals[self.MAX_BATCH :]
        self._settle()
        return finals

    def give_back(self, finals: list[dict[str, Any]]) -> None:
        """Reports a failed claim request did not deliver: they go out with the next batch."""
        if finals:
            self._finals[:0] = finals
            self._idle.clear()
            self._wake.set()

    def note_results(self, results: list[dict[str, Any]]) -> None:
        self.sent += len(results)
        for result in results:
            if not result["applied"]:
                self.rejected += 1
                log.info("report on job %s not applied: %s", result["job_id"], result["reason"])

    def _settle(self) -> None:
        if not self._starts and not self._finals and self._task is not None:
            self._idle.set()

    @property
    def pending(self) -> int:
        return len(self._starts) + len(self._finals)

    async def flush(self, timeout_s: float | None = None) -> bool:
        """Until every queued report was delivered; False if ``timeout_s`` ran out."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def _next_batch(self) -> tuple[list[dict[str, Any]], int]:
        starts = list(self._starts.values())[: self.MAX_BATCH]
        finals = self._finals[: self.MAX_BATCH - len(starts)]
        return starts + finals, len(starts)

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._starts or self._finals:
                batch, n_starts = self._next_batch()
                try:
                    results = await self._transport.call(Calls.report(self._worker_id, batch))
                except BlixardError as exc:  # the server answered, and refused the batch
                    log.error("reports refused by the server, dropped: %s", exc.message)
                    results = []
                for report in batch[:n_starts]:
                    if self._starts.get(report["job_id"]) is report:
                        del self._starts[report["job_id"]]
                del self._finals[: len(batch) - n_starts]
                self.note_results(results)
            self._idle.set()
