"""``blixard up``, ``server``, ``worker`` and ``db migrate``."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import time

import click

from blixard.agent.agent import Agent
from blixard.agent.settings import AgentSettings, default_resources
from blixard.cli import loop
from blixard.cli.options import F, database_option, option, parse_pairs
from blixard.domain.workers import Resources
from blixard.service.settings import ServerSettings
from blixard.storage.urls import redact, store_from_url

log = logging.getLogger("blixard")


def _server_options(f: F) -> F:
    for decorator in reversed(
        [
            database_option,
            option("--host", default="127.0.0.1", show_default=True, help="Address to listen on."),
            option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True),
            option(
                "--lease-ttl",
                type=click.FloatRange(0.2),
                default=15.0,
                show_default=True,
                help="Seconds a claim lives without a heartbeat.",
            ),
            option(
                "--worker-ttl",
                type=click.FloatRange(0.2),
                default=None,
                help="Seconds before a silent worker is offline (default: 2 x lease TTL).",
            ),
            option(
                "--reaper-interval", type=click.FloatRange(0.05), default=1.0, show_default=True
            ),
            option(
                "--scheduler-interval",
                type=click.FloatRange(0.05),
                default=1.0,
                show_default=True,
                help="Seconds between the cron scheduler's passes (on the leading server).",
            ),
            option(
                "--log-level",
                type=click.Choice(["debug", "info", "warning", "error"]),
                default="info",
                show_default=True,
            ),
        ]
    ):
        f = decorator(f)
    return f


def _settings(
    lease_ttl: float,
    worker_ttl: float | None,
    reaper_interval: float,
    scheduler_interval: float = 1.0,
) -> ServerSettings:
    return ServerSettings(
        lease_ttl_s=lease_ttl,
        worker_ttl_s=worker_ttl or 2 * lease_ttl,
        reaper_interval_s=reaper_interval,
        scheduler_interval_s=scheduler_interval,
    )


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@click.command()
@_server_options
def server(
    database: str,
    host: str,
    port: int,
    lease_ttl: float,
    worker_ttl: float | None,
    reaper_interval: float,
    scheduler_interval: float,
    log_level: str,
) -> None:
    """Run the control plane: the HTTP API, the lease reaper, the cron scheduler."""
    _logging(log_level)
    settings = _settings(lease_ttl, worker_ttl, reaper_interval, scheduler_interval)
    loop.run(_serve(database, host, port, settings, workers=[]))


@click.command()
@_server_options
@option(
    "--workers",
    "-w",
    "worker_count",
    type=click.IntRange(0, 64),
    default=1,
    show_default=True,
    help="Worker processes per worker type.",
)
@option(
    "--worker-type",
    "worker_types",
    multiple=True,
    default=("process", "python"),
    show_default=True,
    help="Worker types to start locally.",
)
@option(
    "--concurrency",
    "-c",
    type=click.IntRange(1, 10_000),
    default=4,
    show_default=True,
    help="Jobs each local worker runs at once.",
)
def up(
    database: str,
    host: str,
    port: int,
    lease_ttl: float,
    worker_ttl: float | None,
    reaper_interval: float,
    scheduler_interval: float,
    log_level: str,
    worker_count: int,
    worker_types: tuple[str, ...],
    concurrency: int,
) -> None:
    """The whole thing in one command: a server plus a local pool of workers."""
    _logging(log_level)
    settings = _settings(lease_ttl, worker_ttl, reaper_interval, scheduler_interval)
    commands = [
        [
            sys.executable,
            "-m",
            "blixard",
            "worker",
            "--type",
            wtype,
            "--concurrency",
            str(concurrency),
            "--log-level",
            log_level,
        ]
        for wtype in worker_types
        for _ in range(worker_count)
    ]
    loop.run(_serve(database, host, port, settings, workers=commands))


async def _serve(
    database: str, host: str, port: int, settings: ServerSettings, workers: list[list[str]]
) -> None:
    """Until SIGTERM/SIGINT: then local workers drain first, then the API and the store."""
    from blixard.cli.serve import serving  # the API stack: servers only

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with serving(database, host, port, settings) as (url, task):
        what = "up" if workers else "server"
        click.echo(
            f"Blixard {what} on {url}  (API docs: {url}/docs, database: {redact(database)})",
            err=True,
        )
        supervisor = _Supervisor(workers, url) if workers else None
        if supervisor:
            supervisor.start()
            click.echo(
                f"started {len(workers)} local worker(s); try: blixard submit --wait -- echo hello",
                err=True,
            )
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait([task, stopping], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        click.echo("stopping", err=True)
        if supervisor:
            await supervisor.stop()


class _Supervisor:
    """Keeps ``blixard up``'s local workers running; restarts one that dies."""

    def __init__(self, commands: list[list[str]], url: str) -> None:
        self._commands = commands
        self._url = url
        self._procs: list[subprocess.Popen[bytes] | None] = [None] * len(commands)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        for i in range(len(self._commands)):
            self._spawn(i)
        self._task = asyncio.create_task(self._watch())

    def _spawn(self, i: int) -> None:
        env = {**os.environ, "BLIXARD_SERVER": self._url}
        self._procs[i] = subprocess.Popen(self._commands[i], env=env)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            for i, proc in enumerate(self._procs):
                if proc is not None and proc.poll() is not None:
                    log.warning(
                        "local worker %d exited with %s; restarting it", proc.pid, proc.returncode
                    )
                    self._spawn(i)

    async def stop(self, grace_s: float = 30.0) -> None:
        """SIGTERM every worker (they drain, reporting to the still-running server), wait
        without blocking the loop, then SIGKILL what is left."""
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        procs = [p for p in self._procs if p is not None]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:  # noqa: ASYNC110 - polling child processes
            await asyncio.sleep(0.05)
        for proc in procs:
            if proc.poll() is None:
                log.warning("local worker %d did not drain in %.0fs; killing it", proc.pid, grace_s)
                proc.kill()
                proc.wait()


@click.command()
@option(
    "--server",
    "-s",
    "servers",
    multiple=True,
    default=("http://127.0.0.1:8765",),
    show_default=True,
    help="Server URL; repeat for failover between several servers.",
)
@option(
    "--type",
    "-t",
    "worker_type",
    default="process",
    show_default=True,
    help="Worker type (any name; custom types pick a backend with --backend).",
)
@option("--backend", help="Execution backend (default: the one named like the type).")
@option(
    "--backend-option", "backend_options", multiple=True, help="KEY=VALUE passed to the backend."
)
@option("--concurrency", "-c", type=click.IntRange(1, 10_000), default=4, show_default=True)
@option("--label", "-l", "labels", multiple=True, help="KEY=VALUE this worker carries.")
@option("--cpus", type=click.FloatRange(0), help="CPU cores to offer (default: all).")
@option(
    "--memory", "memory_mb", type=click.IntRange(0), help="Memory (MB) to offer (default: all)."
)
@option("--gpus", type=click.IntRange(0), default=0, show_default=True)
@option("--name", help="A human name (default: host-pid).")
@option(
    "--claim-wait",
    type=click.FloatRange(0.1, 60),
    default=30.0,
    show_default=True,
    help="Long-poll seconds per claim.",
)
@option(
    "--claim-streams",
    type=click.IntRange(1, 16),
    default=2,
    show_default=True,
    help="Claim requests in flight at once, each for its share of the slots.",
)
@option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def worker(
    servers: tuple[str, ...],
    worker_type: str,
    backend: str | None,
    backend_options: tuple[str, ...],
    concurrency: int,
    labels: tuple[str, ...],
    cpus: float | None,
    memory_mb: int | None,
    gpus: int,
    name: str | None,
    claim_wait: float,
    claim_streams: int,
    log_level: str,
) -> None:
    """Run a worker agent: claim jobs that fit, run them, report."""
    _logging(log_level)
    servers = tuple(s for item in servers for s in item.split(",") if s)
    defaults = default_resources()
    settings = AgentSettings(
        servers=servers,
        worker_type=worker_type,
        backend=backend,
        concurrency=concurrency,
        resources=Resources(
            cpu=defaults.cpu if cpus is None else cpus,
            memory_mb=defaults.memory_mb if memory_mb is None else memory_mb,
            gpu=gpus,
        ),
        labels=parse_pairs(labels, "--label"),
        backend_options=parse_pairs(backend_options, "--backend-option"),
        claim_wait_s=claim_wait,
        claim_streams=claim_streams,
    )
    if name:
        settings = dataclasses.replace(settings, name=name)
    from blixard.domain.workers import WorkerSpec

    WorkerSpec(
        id="check",
        worker_type=worker_type,
        name="check",
        concurrency=concurrency,
        resources=settings.resources,
        labels=settings.labels,
    )  # validates early
    sys.exit(loop.run(Agent(settings).run()))


@click.group()
def db() -> None:
    """Database maintenance."""


@db.command()
@database_option
def migrate(database: str) -> None:
    """Apply pending schema migrations."""

    async def run() -> tuple[list[int], int]:
        store = store_from_url(database)
        await store.open(migrate=False)
        applied = await store.migrate()
        version = await store.schema_version()
        await store.close()
        return applied, version

    applied, version = asyncio.run(run())
    if applied:
        click.echo(f"applied migration(s) {', '.join(map(str, applied))}; schema version {version}")
    else:
        click.echo(f"schema is up to date (version {version})")


@db.command("copy")
@option("--from", "source", required=True, help="Database URL to copy from.")
@option("--to", "target", required=True, help="Database URL to copy into (migrated first).")
def copy(source: str, target: str) -> None:
    """Copy every job, attempt and worker to another database (servers stopped)."""
    from blixard.storage.copying import copy_store

    async def run() -> None:
        src, dst = store_from_url(source), store_from_url(target)
        await src.open(migrate=False)
        try:
            await dst.open()
            try:
                report = await copy_store(
                    src,
                    dst,
                    progress=lambda n: click.echo(f"\r{n} jobs copied", nl=False, err=True),
                )
            finally:
                await dst.close()
        finally:
            await src.close()
        click.echo("", err=True)
        click.echo(
            f"copied {report.jobs_created} new job(s) of {report.jobs_read} read, "
            f"{report.attempts} attempt record(s), {report.workers} worker(s), "
            f"{report.queues} queue(s), {report.tenants} tenant(s), "
            f"{report.schedules} new schedule(s) from {redact(source)} to {redact(target)}"
        )

    loop.run(run())
