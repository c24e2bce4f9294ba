"""The worker agent.

It registers, then runs three loops: claim (long-poll for as many jobs as it has free
slots; the server checks resources and labels), heartbeat (renews leases, learns which jobs
to stop and whether to drain) and the reporter (batched reports). Each job runs through the
execution backend under its timeout. A first SIGTERM/SIGINT drains (no new claims, running
jobs finish); a second one cancels running jobs and reports them as failed so they are
retried elsewhere at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blixard import __version__
from blixard.agent.reporter import Reporter
from blixard.agent.settings import AgentSettings
from blixard.agent.transport import Transport
from blixard.backends.base import (
    Assignment,
    Execution,
    ExecutionBackend,
    ExecutionContext,
    Outcome,
)
from blixard.backends.registry import load_backend
from blixard.client.core import Calls
from blixard.errors import BackendError, BlixardError, WorkerNotFound
from blixard.ids import new_id

log = logging.getLogger("blixard.agent")


@dataclass(slots=True)
class Running:
    assignment: Assignment
    task: asyncio.Task[None]
    execution: Execution | None = None
    cancelled_by_server: bool = False


class Agent:
    def __init__(self, settings: AgentSettings, backend: ExecutionBackend | None = None) -> None:
        self.settings = settings
        self.worker_id = new_id()
        self.backend = backend or load_backend(settings.backend_name, settings.backend_options)
        self.transport = Transport(settings.servers)
        self.reporter = Reporter(self.transport, self.worker_id)
        self.running: dict[str, Running] = {}
        self.completed = 0
        self.failed = 0
        self._heartbeat_interval = 5.0
        self._draining = asyncio.Event()
        self._stopping = False
        self._slot_freed = asyncio.Event()
        self._claim_tasks: list[asyncio.Task[None]] = []
        self._reserved = 0
        self._work_seen = asyncio.Event()
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._signals = 0
        self._capabilities: dict[str, Any] = {}

    # lifecycle -------------------------------------------------------------------------
    async def check_backend(self) -> None:
        health = await self.backend.health()
        if not health.ok:
            raise BackendError(
                f"backend {self.settings.backend_name!r} cannot run here: {health.detail}"
            )
        self._capabilities = {"backend": self.settings.backend_name, **health.capabilities}

    async def register(self) -> None:
        s = self.settings
        body = {
            "id": self.worker_id,
            "worker_type": s.worker_type,
            "name": s.name,
            "concurrency": s.concurrency,
            "resources": {
                "cpu": s.resources.cpu,
                "memory_mb": s.resources.memory_mb,
                "gpu": s.resources.gpu,
            },
            "labels": dict(s.labels),
            "capabilities": self._capabilities,
            "host": os.uname().nodename,
            "pid": os.getpid(),
            "version": __version__,
        }
        answer = await self.transport.call(Calls.register(body))
        self._heartbeat_interval = float(answer["heartbeat_interval_s"])
        log.info(
            "worker %s (%s, type %s, %d slots) registered with %s",
            self.worker_id,
            s.name,
            s.worker_type,
            s.concurrency,
            self.transport.server,
        )

    async def run(self, *, install_signals: bool = True) -> int:
        """Until drained or stopped; the process exit code."""
        await self.check_backend()
        await self.register()
        if install_signals:
            self._install_signal_handlers()
        self.reporter.start()
        self._heartbeat_task = asyncio.create_task(self._heartbeat_loop(), name="heartbeat")
        streams = max(1, min(self.settings.claim_streams, self.settings.concurrency))
        share = -(-self.settings.concurrency // streams)
        self._claim_tasks = [
            asyncio.create_task(self._claim_loop(share, primary=i == 0), name=f"claim-{i}")
            for i in range(streams)
        ]
        try:
            await self._draining.wait()
            await self._finish()
        finally:
            await self._shutdown()
        return 0

    def drain(self) -> None:
        """No new claims; exit once running jobs are done and reported."""
        if not self._draining.is_set():
            log.info("draining: %d running job(s) will finish", len(self.running))
            self._draining.set()
            for task in self._claim_tasks:
                task.cancel()

    def stop_now(self) -> None:
        """Cancel running jobs, report them failed (retryable), then exit."""
        self._stopping = True
        log.warning("stopping: cancelling %d running job(s)", len(self.running))
        for item in list(self.running.values()):
            item.task.cancel()
        self.drain()

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal)

    def _on_signal(self) -> None:
        self._signals += 1
        if self._signals == 1:
            self.drain()
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().create_task(self._announce_drain())
        else:
            self.stop_now()

    async def _announce_drain(self) -> None:
        with contextlib.suppress(BlixardError):
            await self.transport.once(Calls.drain(self.worker_id))

    async def _finish(self) -> None:
        while self.running:
            tasks = [r.task for r in self.running.values()]
            await asyncio.gather(*tasks, return_exceptions=True)
        # Reports must reach the server; wait for it, unless a second signal says stop now.
        while not await self.reporter.flush(0.5):
            if self._stopping:
                if not await self.reporter.flush(self.settings.shutdown_grace_s):
                    log.error("%d report(s) undelivered at exit", self.reporter.pending)
                break

    async def _shutdown(self) -> None:
        tasks = [*self._claim_tasks, *([self._heartbeat_task] if self._heartbeat_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.reporter.stop()
        with contextlib.suppress(BlixardError):
            await asyncio.wait_for(self.transport.once(Calls.deregister(self.worker_id)), 5)
        await self.backend.close()
        await self.transport.aclose()
        log.info(
            "worker %s stopped: %d completed, %d failed",
            self.worker_id,
            self.completed,
            self.failed,
        )

    # loops -----------------------------------------------------------------------------
    async def _claim_loop(self, share: int, *, primary: bool) -> None:
        """One claim stream. Several streams keep a request in flight while another one's
        database work runs, each asking for at most ``share`` of the slots; slots asked
        for by a request in flight are reserved, so the streams never over-claim. Only the
        primary stream long-polls: an idle worker has one claim waiting on the server, and
        the others wake when a claim brings work (the worker is busy, pipelining pays)."""
        wait_s = self.settings.claim_wait_s if primary else 0.0
        while not self._draining.is_set():
            free = self.settings.concurrency - len(self.running) - self._reserved
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            limit = min(free, share)
            # Final reports ride on the claim: one round trip frees the slots and fills them.
            reports = self.reporter.take_finals()
            self._reserved += limit
            try:
                answer = await self.transport.call(
                    Calls.claim(self.worker_id, limit, wait_s, reports)
                )
            except WorkerNotFound:
                self.reporter.give_back(reports)
                await self.register()
                continue
            except BlixardError as exc:
                self.reporter.give_back(reports)
                log.error("claim refused: %s", exc.message)
                await asyncio.sleep(1.0)
                continue
            except asyncio.CancelledError:
                self.reporter.give_back(reports)  # drained while waiting: send them separately
                raise
            finally:
                self._reserved -= limit
            self.reporter.settle(reports, answer["results"])
            jobs = answer["jobs"]
            for raw in jobs:
                self._start(raw)
            self._slot_freed.set()  # unclaimed reserved slots are free again
            if jobs:
                self._work_seen.set()
            elif not primary:
                self._work_seen.clear()
                await self._work_seen.wait()
            if jobs:
                await asyncio.sleep(0)  # let the jobs start before the next claim goes out

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_interval)
            running = [(r.assignment.job_id, r.assignment.attempt) for r in self.running.values()]
            try:
                answer = await self.transport.call(Calls.heartbeat(self.worker_id, running))
            except WorkerNotFound:
                log.warning("the server does not know this worker any more; registering again")
                await self.register()
                continue
            except BlixardError as exc:
                log.error("heartbeat refused: %s", exc.message)
                continue
            for job_id in answer["cancel"]:
                item = self.running.get(job_id)
                if item is not None:
                    log.info("job %s: stopping (cancelled or reassigned)", job_id)
                    item.cancelled_by_server = True
                    item.task.cancel()
            if answer["drain"]:
                self.drain()

    # jobs ------------------------------------------------------------------------------
    def _start(self, raw: dict[str, Any]) -> None:
        assignment = Assignment(
            job_id=raw["id"],
            attempt=raw["attempt"],
            queue=raw["queue"],
            tenant=raw["tenant"],
            payload=raw["payload"],
            timeout_s=raw.get("timeout_s"),
            requirements=raw.get("requirements") or {},
            parent_results=raw.get("parent_results"),
        )
        task = asyncio.create_task(self._run_job(assignment), name=f"job-{assignment.job_id}")
        self.running[assignment.job_id] = Running(assignment, task)

    async def _run_job(self, job: Assignment) -> None:
        item = self.running.get(job.job_id)
        work_dir = Path(self.settings.work_root) / f"blixard-{self.worker_id}" / job.job_id
        outcome: Outcome | None = None
        started_at = time.time()
        try:
            if self.backend.uses_work_dir:
                work_dir.mkdir(parents=True, exist_ok=True)
            ctx = ExecutionContext(job=job, work_dir=work_dir)
            execution = await self.backend.start(ctx)
            if item is not None:
                item.execution = execution
            self.reporter.put(_report(job, "started", started_at=started_at))
            outcome = await self._wait(execution, job)
        except asyncio.CancelledError:
            await self._cancel_execution(item)
            if item is not None and not item.cancelled_by_server:
                outcome = Outcome.failure("worker_shutdown", "the worker was stopped")
        except Exception as exc:  # a backend bug must not take the agent down
            log.exception("job %s: backend error", job.job_id)
            outcome = Outcome.failure("backend_error", f"{type(exc).__name__}: {exc}")
        finally:
            self.running.pop(job.job_id, None)
            self._slot_freed.set()
            if self.backend.uses_work_dir:
                shutil.rmtree(work_dir, ignore_errors=True)
        if outcome is not None:
            self._report_outcome(job, outcome, started_at)

    async def _wait(self, execution: Execution, job: Assignment) -> Outcome:
        if job.timeout_s is None:
            return await execution.wait()
        try:
            return await asyncio.wait_for(asyncio.shield(execution.wait()), job.timeout_s)
        except TimeoutError:
            await execution.cancel()
            return Outcome.failure(
                "timeout", f"timed out after {job.timeout_s:g}s", timeout_s=job.timeout_s
            )

    @staticmethod
    async def _cancel_execution(item: Running | None) -> None:
        if item is not None and item.execution is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(item.execution.cancel())

    def _report_outcome(self, job: Assignment, outcome: Outcome, started_at: float) -> None:
        if outcome.ok:
            self.completed += 1
            self.reporter.put(
                _report(job, "completed", result=outcome.result, started_at=started_at)
            )
        else:
            self.failed += 1
            self.reporter.put(
                _report(
                    job,
                    "failed",
                    error=outcome.error,
                    retryable=outcome.retryable,
                    started_at=started_at,
                )
            )


def _report(job: Assignment, kind: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"job_id": job.job_id, "attempt": job.attempt, "kind": kind}
    started_at = fields.pop("started_at", None)
    if started_at is not None:
        body["started_at"] = started_at
    body.update({k: v for k, v in fields.items() if v is not None or k == "result"})
    return body
