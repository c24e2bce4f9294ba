"""The ``container`` backend: run a job in an OCI container through the Docker Engine API.

Needs a reachable Docker engine (``apt-get install docker.io``, then ``dockerd``) and the
``docker`` package (``pip install 'blixard[container]'``). The engine is found at backend
option ``docker_host`` (``unix:///path/to/docker.sock``), else ``DOCKER_HOST``, else the
default socket; ``health`` pings it and reports its version, so an unreachable engine stops
``blixard worker --type container`` at start-up. The work dir is bind-mounted, so the engine
must run on the worker's host. The blocking client calls run in the backend's own threads.

Payload: ``image`` (required, already on the engine: nothing is pulled); ``command``, a list
(argv) or a string run by ``/bin/sh -c`` (default the image's own command); ``env``, an
object of strings, plus ``BLIXARD_JOB_ID``, ``BLIXARD_JOB_ATTEMPT``, ``BLIXARD_WORK_DIR=/job``
and, with parents, ``BLIXARD_PARENT_RESULTS=/job/parent_results.json``; ``network: true``
(bridge networking) refused (``invalid_payload``) unless option ``allow_network=true``, else
network mode ``none``; ``read_only`` root file system (default true) with a tmpfs ``/tmp``.
The job's work dir is bound read-write at ``/job``, the working directory.

Limits, each lowered to option ``max_<name>``: ``memory_mb`` (default the job's
``requirements.memory_mb``, else option ``default_memory_mb``, 1024; no swap), ``cpus`` (CPU
quota; default ``requirements.cpu``, else none), ``max_processes`` (pids limit, 256). Always
``cap_drop=ALL`` and ``no-new-privileges``. The container is removed afterwards, also after
a cancel or a timeout.

Result: ``exit_code``, ``stdout``/``stderr`` tails and their ``truncated`` flags (output is
streamed to the job's sink as it comes). Errors: ``exit_code``, ``memory_limit`` (OOMKilled),
``timeout`` (the job's ``timeout_s``), ``cancelled``, ``image_not_found`` and
``invalid_payload`` (not retryable), ``engine`` (the daemon failed or is unreachable:
retryable).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, ClassVar, Final, TypeVar

from blixard.backends.base import (
    BackendHealth,
    Execution,
    ExecutionBackend,
    ExecutionContext,
    FinishedExecution,
    Outcome,
)
from blixard.backends.parent_results import (
    PARENT_RESULTS_ENV,
    PARENT_RESULTS_FILE,
    ParentResultsUnwritable,
    write_parent_results,
)
from blixard.backends.process import command_argv
from blixard.backends.subprocesses import (
    DEFAULT_TAIL_BYTES,
    DRAIN_TIMEOUT_S,
    PayloadInvalid,
    Tail,
    check_env,
    check_text,
    option_bool,
    option_float,
    option_int,
)

T = TypeVar("T")

JOB_DIR: Final = "/job"
INSTALL_HINT: Final = "pip install 'blixard[container]'"
ENGINE_HINT: Final = (
    "start dockerd (apt-get install docker.io) or point the worker at a running engine with "
    "--backend-option docker_host=unix:///path/to/docker.sock (or DOCKER_HOST)"
)
LABEL: Final = "blixard.job"
HEALTH_TIMEOUT_S: Final = 10.0
STOP_TIMEOUT_S: Final = 30.0


def _number(payload: Mapping[str, Any], key: str) -> float | None:
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadInvalid(key, f"must be a number, got {type(value).__name__}")
    if not value > 0 or value == float("inf"):
        raise PayloadInvalid(key, f"must be a finite number > 0, got {value}")
    return float(value)


def _flag(payload: Mapping[str, Any], key: str, default: bool) -> bool:
    value = payload.get(key, default)
    if not isinstance(value, bool):
        raise PayloadInvalid(key, f"must be a boolean, got {type(value).__name__}")
    return value


def _engine_failure(what: str, exc: BaseException) -> Outcome:
    message = f"{what}: {type(exc).__name__}: {exc}"
    return Outcome.failure("engine", message, retryable=True)


class ContainerExecution(Execution):
    """One container: streams its output, waits for it, turns its end into an outcome and
    removes it (whatever happened)."""

    def __init__(
        self,
        backend: ContainerBackend,
        container_id: str,
        ctx: ExecutionContext,
        *,
        memory_mb: int,
        tail_bytes: int,
    ) -> None:
        self.backend = backend
        self.container_id = container_id
        self.ctx = ctx
        self.memory_mb = memory_mb
        self.timeout_s = ctx.job.timeout_s
        self.tails = {"stdout": Tail(tail_bytes), "stderr": Tail(tail_bytes)}
        self.cancelled = False
        self.timed_out = False
        self._loop = asyncio.get_running_loop()
        self._kill: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        if self.timeout_s is not None:
            self._timer = self._loop.call_later(self.timeout_s, self._on_timeout)
        self._task = asyncio.ensure_future(self._run())

    # -- output (the pump runs in a thread; chunks are handed to the loop) ------------------

    def _emit(self, stream: str, chunk: bytes) -> None:
        self.tails[stream].add(chunk)
        self.ctx.on_output(stream, chunk)

    def _pump(self, frames: Iterator[tuple[bytes | None, bytes | None]]) -> None:
        with contextlib.suppress(Exception):  # the stream breaks when the container goes
            for out, err in frames:
                if out:
                    self._loop.call_soon_threadsafe(self._emit, "stdout", out)
                if err:
                    self._loop.call_soon_threadsafe(self._emit, "stderr", err)

    def _tails(self) -> dict[str, Any]:
        out, err = self.tails["stdout"], self.tails["stderr"]
        return {
            "stdout": out.text(),
            "stderr": err.text(),
            "truncated": {"stdout": out.truncated, "stderr": err.truncated},
        }

    # -- the container's life ----------------------------------------------------------------

    async def _run(self) -> Outcome:
        api = self.backend.api
        cid = self.container_id
        try:
            frames = await self.backend.call(
                api.attach, cid, stdout=True, stderr=True, stream=True, logs=True, demux=True
            )
            pump = asyncio.ensure_future(self.backend.call(self._pump, frames))
            if not (self.cancelled or self.timed_out):
                await self.backend.call(api.start, cid)
                if self.cancelled or self.timed_out:  # stopped while it was starting
                    await self.backend.kill(cid)
            status = await self.backend.call(api.wait, cid)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(pump), DRAIN_TIMEOUT_S)
            state = (await self.backend.call(api.inspect_container, cid)).get("State", {})
            await asyncio.sleep(0)  # let the last handed-over chunks land in the tails
            return self._outcome(int(status.get("StatusCode", -1)), bool(state.get("OOMKilled")))
        except Exception as exc:
            if self.cancelled or self.timed_out:
                return self._stopped_outcome()
            return _engine_failure(f"the engine failed running container {cid[:12]}", exc)
        finally:
            if self._timer is not None:
                self._timer.cancel()
            await self.backend.remove(cid)

    def _stopped_outcome(self) -> Outcome:
        if self.timed_out and self.timeout_s is not None:
            return Outcome.failure(
                "timeout",
                f"timed out after {self.timeout_s:g}s",
                retryable=False,
                timeout_s=self.timeout_s,
                **self._tails(),
            )
        return Outcome.failure("cancelled", "cancelled", retryable=False, **self._tails())

    def _outcome(self, exit_code: int, oom_killed: bool) -> Outcome:
        if self.cancelled or self.timed_out:
            return self._stopped_outcome()
        tails = self._tails()
        if oom_killed:
            message = f"exceeded the memory limit of {self.memory_mb} MB"
            return Outcome.failure(
                "memory_limit", message, retryable=False, memory_mb=self.memory_mb, **tails
            )
        if exit_code == 0:
            return Outcome.success({"exit_code": 0, **tails})
        return Outcome.failure(
            "exit_code", f"exited with code {exit_code}", exit_code=exit_code, **tails
        )

    def _on_timeout(self) -> None:
        self.timed_out = True
        self._stop()

    def _stop(self) -> asyncio.Future[None]:
        if self._kill is None:
            self._kill = asyncio.ensure_future(self.backend.kill(self.container_id))
        return self._kill

    async def wait(self) -> Outcome:
        return await asyncio.shield(self._task)

    async def cancel(self) -> None:
        if self._task.done():
            return
        self.cancelled = not self.timed_out
        await self._stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._task), STOP_TIMEOUT_S)


class ContainerBackend(ExecutionBackend):
    name: ClassVar[str] = "container"

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        super().__init__(options)
        opts = self.options
        self.docker_host = opts.get("docker_host") or os.environ.get("DOCKER_HOST") or ""
        self.allow_network = option_bool(opts, "allow_network", False)
        self.tail_bytes = option_int(opts, "tail_bytes", DEFAULT_TAIL_BYTES)
        self.api_timeout_s = option_float(opts, "api_timeout_s", 60.0, minimum=1.0)
        self.max_memory_mb = option_int(opts, "max_memory_mb", 4096, minimum=6)
        self.default_memory_mb = option_int(opts, "default_memory_mb", 1024, minimum=6)
        self.max_processes = option_int(opts, "max_processes", 1024, minimum=1)
        self.default_processes = option_int(opts, "default_processes", 256, minimum=1)
        self.max_cpus = option_float(opts, "max_cpus", float(os.cpu_count() or 1), minimum=0.01)
        self.tmpfs_size_mb = option_int(opts, "tmpfs_mb", 64, minimum=1)
        # Each running job holds two threads (its output stream and its wait) for its whole
        # run, so they come from a pool of our own rather than the loop's default executor.
        self._threads = ThreadPoolExecutor(
            max_workers=option_int(opts, "threads", 64, minimum=4),
            thread_name_prefix="blixard-container",
        )
        self._api: Any = None
        self._running: set[ContainerExecution] = set()

    # -- the engine ------------------------------------------------------------------------

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in one of the backend's threads."""
        return await asyncio.get_running_loop().run_in_executor(
            self._threads, partial(fn, *args, **kwargs)
        )

    def _connect(self) -> Any:
        import docker

        if self._api is None:
            self._api = docker.APIClient(
                base_url=self.docker_host or None, version="auto", timeout=int(self.api_timeout_s)
            )
        return self._api

    @property
    def api(self) -> Any:
        """The low-level ``docker.APIClient`` (connected by ``health`` or the first job)."""
        if self._api is None:
            raise RuntimeError("the container backend is not connected")
        return self._api

    def _where(self) -> str:
        return self.docker_host or "the default Docker socket"

    async def health(self) -> BackendHealth:
        try:
            import docker  # noqa: F401
        except ImportError:
            detail = f"the docker package is not installed; install it with {INSTALL_HINT}"
            return BackendHealth(ok=False, detail=detail)
        try:
            api = await asyncio.wait_for(self.call(self._connect), HEALTH_TIMEOUT_S)
            await asyncio.wait_for(self.call(api.ping), HEALTH_TIMEOUT_S)
            version = await asyncio.wait_for(self.call(api.version), HEALTH_TIMEOUT_S)
        except Exception as exc:
            self._api = None
            detail = f"cannot reach the Docker engine at {self._where()} ({exc}); {ENGINE_HINT}"
            return BackendHealth(ok=False, detail=detail)
        engine = str(version.get("Version", "unknown"))
        api_version = str(version.get("ApiVersion", "unknown"))
        return BackendHealth(
            ok=True,
            detail=f"Docker engine {engine} (API {api_version}) at {self._where()}",
            capabilities={
                "container": "docker",
                "engine_version": engine,
                "api_version": api_version,
                "network": self.allow_network,
                "max_memory_mb": self.max_memory_mb,
                "max_processes": self.max_processes,
                "max_cpus": self.max_cpus,
            },
        )

    async def kill(self, container_id: str) -> None:
        """Kill a running container (it is removed by its execution)."""
        with contextlib.suppress(Exception):
            await self.call(self.api.kill, container_id)

    async def remove(self, container_id: str) -> None:
        """Force-remove a container; a gone one is fine."""
        import docker.errors

        try:
            await self.call(self.api.remove_container, container_id, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except Exception as exc:  # pragma: no cover - the engine went away meanwhile
            import logging

            logging.getLogger(__name__).warning("cannot remove container %s: %s", container_id, exc)

    # -- jobs ------------------------------------------------------------------------------

    def _limits(self, ctx: ExecutionContext) -> tuple[int, int, float | None]:
        payload, req = ctx.job.payload, ctx.job.requirements

        def pick(key: str, default: float, cap: float, requirement: str = "") -> float:
            value = _number(payload, key)
            if value is None and requirement and isinstance(req.get(requirement), int | float):
                value = float(req[requirement]) or None
            return min(default if value is None else value, cap)

        memory = int(pick("memory_mb", self.default_memory_mb, self.max_memory_mb, "memory_mb"))
        processes = int(pick("max_processes", self.default_processes, self.max_processes))
        cpus = pick("cpus", 0, self.max_cpus, "cpu") or None
        return max(memory, 6), max(processes, 1), cpus  # the engine's minimum is 6 MB

    def _container_config(self, ctx: ExecutionContext, with_parents: bool) -> dict[str, Any]:
        """Checks the payload (``PayloadInvalid``) and builds ``create_container``'s kwargs
        (``host_config`` as a plain dict of ``create_host_config`` kwargs)."""
        payload = ctx.job.payload
        image = payload.get("image")
        if image is None:
            raise PayloadInvalid("image", "is required")
        image = check_text("image", image)
        if not image.strip():
            raise PayloadInvalid("image", "must not be empty")
        raw_command = payload.get("command")
        command = None if raw_command is None else command_argv(raw_command)
        env = check_env("env", payload.get("env"))
        network = _flag(payload, "network", False)
        if network and not self.allow_network:
            raise PayloadInvalid(
                "network", "network access is not allowed on this worker (allow_network)"
            )
        read_only = _flag(payload, "read_only", True)
        memory, processes, cpus = self._limits(ctx)
        env |= {
            "BLIXARD_JOB_ID": ctx.job.job_id,
            "BLIXARD_JOB_ATTEMPT": str(ctx.job.attempt),
            "BLIXARD_WORK_DIR": JOB_DIR,
        }
        if with_parents:
            env[PARENT_RESULTS_ENV] = f"{JOB_DIR}/{PARENT_RESULTS_FILE}"
        host_config: dict[str, Any] = {
            "binds": {str(ctx.work_dir.absolute()): {"bind": JOB_DIR, "mode": "rw"}},
            "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={self.tmpfs_size_mb}m"},
            "read_only": read_only,
            "network_mode": "bridge" if network else "none",
            "mem_limit": f"{memory}m",
            "memswap_limit": f"{memory}m",
            "pids_limit": processes,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
        }
        if cpus is not None:
            host_config["nano_cpus"] = int(cpus * 1e9)
        return {
            "image": image,
            "command": command,
            "environment": env,
            "working_dir": JOB_DIR,
            "labels": {LABEL: ctx.job.job_id, f"{LABEL}.attempt": str(ctx.job.attempt)},
            "network_disabled": not network,
            "host_config": host_config,
            "memory_mb": memory,
        }

    def _create(self, config: dict[str, Any]) -> str:
        api = self.api
        kwargs = dict(config)
        kwargs.pop("memory_mb")
        kwargs["host_config"] = api.create_host_config(**kwargs["host_config"])
        created = api.create_container(**kwargs)
        return str(created["Id"])

    async def start(self, ctx: ExecutionContext) -> Execution:
        import docker.errors

        try:
            with_parents = ctx.job.parent_results is not None
            config = self._container_config(ctx, with_parents)
            ctx.work_dir.mkdir(parents=True, exist_ok=True)
            await write_parent_results(ctx)
        except (PayloadInvalid, ParentResultsUnwritable) as exc:
            return exc.execution()
        try:
            if self._api is None:
                await self.call(self._connect)
            container_id = await self.call(self._create, config)
        except docker.errors.ImageNotFound as exc:
            message = f"image {config['image']!r} is not on the Docker engine: {exc.explanation}"
            return FinishedExecution(
                Outcome.failure("image_not_found", message, retryable=False, image=config["image"])
            )
        except Exception as exc:
            return FinishedExecution(_engine_failure("the engine cannot create the container", exc))
        execution = ContainerExecution(
            self, container_id, ctx, memory_mb=config["memory_mb"], tail_bytes=self.tail_bytes
        )
        self._running.add(execution)
        execution._task.add_done_callback(lambda _: self._running.discard(execution))
        return execution

    async def close(self) -> None:
        """Cancel (and so remove) whatever is still running, then let the threads go."""
        await asyncio.gather(*(e.cancel() for e in list(self._running)), return_exceptions=True)
        self._threads.shutdown(wait=False, cancel_futures=True)
        if self._api is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._api.close)
            self._api = None
