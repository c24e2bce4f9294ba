"""Batched reports: whatever accumulates while one request is in flight goes in the next.

Idle, a report leaves at once (low latency); under load, hundreds share one request (high
throughput). A report is in exactly one place: queued here, or handed out to one request
(this reporter's own batch, or a claim that carries final reports) until that request
settles. Nothing is removed by position, so a claim taking reports while a batch is in
flight can neither lose nor duplicate one. Reports are kept until the server has them: a
server restart loses none. 'started' reports wait in their own map, so a job's final report
drops its still-queued start (the final report carries ``started_at``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from blixard.agent.transport import Transport
from blixard.client.core import Calls
from blixard.errors import BlixardError

log = logging.getLogger("blixard.agent")

ReportBody = dict[str, Any]


class Reporter:
    MAX_BATCH = 1000

    def __init__(self, transport: Transport, worker_id: str) -> None:
        self._transport = transport
        self._worker_id = worker_id
        self._starts: dict[str, ReportBody] = {}
        self._finals: list[ReportBody] = []
        self._outstanding = 0  # handed out to requests that have not settled yet
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

    def put(self, report: ReportBody) -> None:
        if report["kind"] == "started":
            self._starts[report["job_id"]] = report
        else:
            self._starts.pop(report["job_id"], None)
            self._finals.append(report)
        self._idle.clear()
        self._wake.set()

    @property
    def pending(self) -> int:
        """Reports not yet acknowledged by the server (queued or in flight)."""
        return len(self._starts) + len(self._finals) + self._outstanding

    async def flush(self, timeout_s: float | None = None) -> bool:
        """Until every report was delivered; False if ``timeout_s`` ran out."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    # a claim request carries final reports ----------------------------------------------
    def take_finals(self) -> list[ReportBody]:
        """Queued final reports, handed to a claim request; settle or give them back."""
        finals = self._finals[: self.MAX_BATCH]
        del self._finals[: len(finals)]
        self._outstanding += len(finals)
        return finals

    def settle(self, reports: list[ReportBody], results: list[dict[str, Any]]) -> None:
        """The server has ``reports`` (``results`` says which applied)."""
        self._outstanding -= len(reports)
        self.sent += len(reports)
        for result in results:
            if not result["applied"]:
                self.rejected += 1
                log.info("report on job %s not applied: %s", result["job_id"], result["reason"])
        self._maybe_idle()

    def give_back(self, reports: list[ReportBody]) -> None:
        """Reports a failed request did not deliver: first in line for the next one."""
        self._outstanding -= len(reports)
        if reports:
            self._finals[:0] = reports
            self._wake.set()
        self._maybe_idle()

    def _maybe_idle(self) -> None:
        if not self._starts and not self._finals and self._outstanding == 0:
            self._idle.set()

    # the reporter's own batches --------------------------------------------------------
    def _take_batch(self) -> list[ReportBody]:
        starts = list(self._starts.values())[: self.MAX_BATCH]
        for report in starts:
            del self._starts[report["job_id"]]
        finals = self._finals[: self.MAX_BATCH - len(starts)]
        del self._finals[: len(finals)]
        self._outstanding += len(starts) + len(finals)
        return starts + finals  # starts first: each job's reports stay in order

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._starts or self._finals:
                batch = self._take_batch()
                try:
                    results = await self._transport.call(Calls.report(self._worker_id, batch))
                except BlixardError as exc:  # the server answered, and refused the batch
                    log.error("reports refused by the server, dropped: %s", exc.message)
                    results = []
                except asyncio.CancelledError:
                    self.give_back(batch)
                    raise
                self.settle(batch, results)
