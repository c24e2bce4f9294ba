"""The FastAPI application over a ControlPlane."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from blixard import __version__
from blixard.api import (
    problems,
    routes_groups,
    routes_jobs,
    routes_queues,
    routes_schedules,
    routes_workers,
    routes_workflows,
)
from blixard.api.deps import plane
from blixard.api.responses import FastJSONResponse
from blixard.api.schemas import HealthOut, StatsOut
from blixard.api.serialize import iso
from blixard.errors import BlixardError
from blixard.service.control_plane import ControlPlane


def create_app(control_plane: ControlPlane, *, manage_lifecycle: bool = True) -> FastAPI:
    """``manage_lifecycle``: start and stop the control plane with the app."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            await control_plane.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                await control_plane.stop()

    app = FastAPI(
        title="Blixard",
        version=__version__,
        description="A generic distributed job orchestrator.",
        lifespan=lifespan,
        default_response_class=FastJSONResponse,
    )
    app.state.control_plane = control_plane
    problems.install(app)
    app.include_router(routes_jobs.router)
    app.include_router(routes_workers.router)
    app.include_router(routes_queues.router)
    app.include_router(routes_groups.router)
    app.include_router(routes_schedules.router)
    app.include_router(routes_workflows.router)

    @app.get("/api/v1/stats", response_model=StatsOut, tags=["cluster"])
    async def stats(request: Request, tenant: str | None = None) -> Response:
        """Job counts (of one tenant's jobs with ``tenant``), workers, and the waiting jobs
        that fit no online worker."""
        cp = plane(request)
        s = await cp.stats(tenant)
        unschedulable = await cp.diagnosis.summary(tenant)
        return FastJSONResponse(
            {
                "tenant": s.tenant,
                "jobs_by_status": s.jobs_by_status,
                "jobs_by_queue": s.jobs_by_queue,
                "jobs_by_tenant": s.jobs_by_tenant,
                "workers_by_status": s.workers_by_status,
                "oldest_pending_at": iso(s.oldest_pending_at),
                "unschedulable": {
                    "count": unschedulable.count,
                    "reasons": [{"reason": r, "count": n} for r, n in unschedulable.reasons],
                },
                "reaper": {
                    "leader": cp.reaper.leader,
                    "runs": cp.reaper.runs,
                    "reaped_total": cp.reaper.reaped_total,
                },
                "scheduler": {
                    "leader": cp.scheduler.leader,
                    "runs": cp.scheduler.runs,
                    "fired_total": cp.scheduler.fired_total,
                },
            }
        )

    @app.get("/healthz", response_model=HealthOut, tags=["cluster"])
    async def healthz(request: Request) -> Response:
        cp = plane(request)
        try:
            version = await cp.store.schema_version()
        except BlixardError as exc:
            return FastJSONResponse(
                {
                    "status": "degraded",
                    "database": f"error: {exc.message}",
                    "version": __version__,
                    "schema_version": 0,
                },
                status_code=503,
            )
        return FastJSONResponse(
            {"status": "ok", "database": "ok", "version": __version__, "schema_version": version}
        )

    return app
