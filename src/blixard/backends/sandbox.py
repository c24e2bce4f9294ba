"""The ``sandbox`` backend: run a command in fresh namespaces with bubblewrap (``bwrap``).

Needs ``bwrap`` (``apt-get install bubblewrap``) and ``prlimit`` (util-linux); without them,
or when bwrap cannot make namespaces here, ``health`` fails and ``blixard worker --type
sandbox`` stops at start-up saying what to install.

The sandbox: new user/pid/ipc/uts/cgroup/network namespaces (``--unshare-all``: only ``lo``),
no capabilities, ``--die-with-parent``, ``--new-session``; ``/usr``, ``/etc``, the ``/bin``,
``/lib*``, ``/sbin`` links and option ``ro_binds`` (comma-separated) bound read-only; the
job's work dir writable at ``/job`` (the default cwd); a private ``/tmp``, fresh ``/proc``,
minimal ``/dev``.

Payload: ``command``, ``stdin`` as for ``process``; ``env``, the whole environment over
``PATH`` (``/usr/local/bin:/usr/bin:/bin``) and ``HOME=/job``, plus ``BLIXARD_JOB_ID``,
``BLIXARD_JOB_ATTEMPT``, ``BLIXARD_WORK_DIR=/job`` and, with parents,
``BLIXARD_PARENT_RESULTS=/job/parent_results.json`` (nothing from the worker; it is bwrap's
environment rather than ``--setenv`` arguments, so values stay out of the host's ``ps``);
``cwd``, an existing directory relative to ``/job``; ``network: true`` keeps the host network,
refused (``invalid_payload``) unless option ``allow_network=true``. Limits, each lowered to
option ``max_<name>``: ``memory_mb`` (default the job's ``requirements.memory_mb``, else
option ``default_memory_mb``, 1024: RLIMIT_AS per process plus the cgroup's memory, no swap),
``cpu_time_s`` (RLIMIT_CPU per process, 600), ``max_processes`` (``pids.max`` and RLIMIT_NPROC,
256), ``file_size_mb`` (RLIMIT_FSIZE, 1024), ``cpus`` (a cgroup CPU quota; default
``requirements.cpu``, else none).

Cgroups: with option ``cgroups`` (default true) and a writable tree at ``cgroup_root``
(``/sys/fs/cgroup``; v2 when ``cgroup.controllers`` is there, else v1 with one hierarchy per
memory/pids/cpu), each job gets ``<cgroup_parent>/<job>``, removed afterwards. RLIMIT_NPROC
does not bind a worker running as root (the kernel exempts uid 0), so there only the pids
cgroup limits processes. ``health`` reports which limits are enforced.

Result and errors as for ``process`` plus (not retryable): ``timeout`` (the job's
``timeout_s``), ``memory_limit`` (a cgroup OOM kill, or a non-zero exit whose stderr reports
an allocation failure: ``MemoryError``, "Cannot allocate memory", "out of memory"),
``cpu_limit`` (SIGXCPU), ``file_size_limit`` (SIGXFSZ), ``process_limit`` (the pids cgroup
refused a fork). bwrap reports death by signal N as status 128+N, so 129-192 are ``signal``.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import signal
import tempfile
import uuid
from collections.abc import Mapping, MutableSet
from pathlib import Path
from typing import Any, ClassVar, Final

from blixard.backends.base import (
    BackendHealth,
    Execution,
    ExecutionBackend,
    ExecutionContext,
    FinishedExecution,
    Outcome,
)
from blixard.backends.cgroups import MB, Cgroup, CgroupTree, remove_cgroup
from blixard.backends.parent_results import (
    PARENT_RESULTS_ENV,
    PARENT_RESULTS_FILE,
    ParentResultsUnwritable,
    write_parent_results,
)
from blixard.backends.process import command_argv
from blixard.backends.subprocesses import (
    DEFAULT_KILL_GRACE_S,
    DEFAULT_TAIL_BYTES,
    ManagedProcess,
    PayloadInvalid,
    SubprocessExecution,
    cancel_all,
    check_env,
    check_text,
    describe_exit,
    option_bool,
    option_float,
    option_int,
    spawn_failure,
    tails_of,
)

INSTALL_HINT: Final = "apt-get install bubblewrap"
JOB_DIR: Final = "/job"
DEFAULT_PATH: Final = "/usr/local/bin:/usr/bin:/bin"
SYSTEM_DIRS: Final = ("/usr", "/etc")
SYSTEM_LINKS: Final = ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
HEALTH_TIMEOUT_S: Final = 10.0
SH: Final = "/bin/sh"
# Joins the cgroups named by the first $1 arguments, then execs the rest (prlimit, bwrap).
JOIN_CGROUPS: Final = (
    'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ >"$1" || exit 125; shift; n=$((n - 1)); '
    'done; exec "$@"'
)
MEMORY_ERRORS: Final = ("memoryerror", "cannot allocate memory", "out of memory")


def _system_binds() -> list[str]:
    args: list[str] = []
    for path in SYSTEM_DIRS:
        if os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in SYSTEM_LINKS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args


def _number(payload: Mapping[str, Any], key: str) -> float | None:
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadInvalid(key, f"must be a number, got {type(value).__name__}")
    if not value > 0 or value == float("inf"):
        raise PayloadInvalid(key, f"must be a finite number > 0, got {value}")
    return float(value)


def _capped_rlimit(resource_id: int, value: int) -> int:
    """``value``, lowered to the current hard limit (raising it needs CAP_SYS_RESOURCE)."""
    hard = resource.getrlimit(resource_id)[1]
    return value if hard == resource.RLIM_INFINITY else min(value, hard)


class SandboxExecution(SubprocessExecution):
    def __init__(
        self,
        proc: ManagedProcess,
        kill_grace_s: float,
        running: MutableSet[SubprocessExecution],
        *,
        cgroup: Cgroup | None,
        memory_mb: int,
        timeout_s: float | None,
    ) -> None:
        self.cgroup = cgroup
        self.memory_mb = memory_mb
        self.timeout_s = timeout_s
        self.timed_out = False
        self._stopping: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._removal: asyncio.Future[None] | None = None
        if timeout_s is not None:
            self._timer = asyncio.get_running_loop().call_later(timeout_s, self._on_timeout)
        super().__init__(proc, kill_grace_s, running)

    def _on_timeout(self) -> None:
        self.timed_out = True
        self._stopping = asyncio.ensure_future(self.proc.terminate(self.kill_grace_s))

    def cancelled_outcome(self) -> Outcome:
        if self.timed_out and self.timeout_s is not None:
            return Outcome.failure(
                "timeout",
                f"timed out after {self.timeout_s:g}s",
                retryable=False,
                timeout_s=self.timeout_s,
                **tails_of(self.proc),
            )
        return super().cancelled_outcome()

    def outcome(self, returncode: int) -> Outcome:
        tails = tails_of(self.proc)
        if returncode == 0:
            return Outcome.success({"exit_code": 0, **tails})
        if 128 < returncode <= 128 + 64:
            returncode = 128 - returncode  # bwrap's 128+N: killed by signal N
        sig = -returncode if returncode < 0 else None
        stderr = str(tails["stderr"]).lower()
        if returncode == 1 and "bwrap: execvp" in stderr:  # not found / not executable
            message = str(tails["stderr"]).strip().splitlines()[-1]
            return Outcome.failure("spawn", message, retryable=False, **tails)
        if (self.cgroup is not None and self.cgroup.oom_killed()) or any(
            text in stderr for text in MEMORY_ERRORS
        ):
            message = f"exceeded the memory limit of {self.memory_mb} MB"
            return Outcome.failure(
                "memory_limit", message, retryable=False, memory_mb=self.memory_mb, **tails
            )
        if sig == signal.SIGXCPU:
            return Outcome.failure("cpu_limit", "exceeded its CPU time", retryable=False, **tails)
        if sig == signal.SIGXFSZ:
            message = "exceeded the file size limit"
            return Outcome.failure("file_size_limit", message, retryable=False, **tails)
        kind, message, details = describe_exit(returncode)
        if self.cgroup is not None and self.cgroup.pids_limited():
            message = f"hit the process limit ({message})"
            return Outcome.failure("process_limit", message, retryable=False, **details, **tails)
        return Outcome.failure(kind, message, **details, **tails)

    def cleanup(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.cgroup is not None:
            self._removal = asyncio.ensure_future(remove_cgroup(self.cgroup))

    async def wait(self) -> Outcome:
        """The outcome, once the job's cgroup is gone too."""
        outcome = await super().wait()
        if self._removal is not None:
            await asyncio.shield(self._removal)
        return outcome


class SandboxBackend(ExecutionBackend):
    name: ClassVar[str] = "sandbox"

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        super().__init__(options)
        opts = self.options
        self.bwrap = opts.get("bwrap") or shutil.which("bwrap") or "bwrap"
        self.prlimit = opts.get("prlimit") or shutil.which("prlimit") or "prlimit"
        self.allow_network = option_bool(opts, "allow_network", False)
        self.tail_bytes = option_int(opts, "tail_bytes", DEFAULT_TAIL_BYTES)
        self.kill_grace_s = option_float(opts, "kill_grace_s", DEFAULT_KILL_GRACE_S)
        self.max_memory_mb = option_int(opts, "max_memory_mb", 4096, minimum=1)
        self.default_memory_mb = option_int(opts, "default_memory_mb", 1024, minimum=1)
        self.max_cpu_time_s = option_int(opts, "max_cpu_time_s", 3600, minimum=1)
        self.default_cpu_time_s = option_int(opts, "default_cpu_time_s", 600, minimum=1)
        self.max_processes = option_int(opts, "max_processes", 1024, minimum=1)
        self.default_processes = option_int(opts, "default_processes", 256, minimum=1)
        self.max_file_size_mb = option_int(opts, "max_file_size_mb", 4096, minimum=1)
        self.default_file_size_mb = option_int(opts, "default_file_size_mb", 1024, minimum=1)
        self.max_cpus = option_float(opts, "max_cpus", float(os.cpu_count() or 1), minimum=0.01)
        self.use_cgroups = option_bool(opts, "cgroups", True)
        self.cgroups = CgroupTree(
            Path(opts.get("cgroup_root", "/sys/fs/cgroup")),
            opts.get("cgroup_parent", "blixard-sandbox"),
        )
        extra = [p.strip() for p in opts.get("ro_binds", "").split(",") if p.strip()]
        self.system_binds = _system_binds() + [a for p in extra for a in ("--ro-bind", p, p)]
        self._cgroups_checked = False
        self._running: set[SubprocessExecution] = set()

    def bwrap_argv(self, work_dir: Path, cwd: str, *, network: bool) -> list[str]:
        argv = [self.bwrap, "--unshare-all", *(["--share-net"] if network else [])]
        argv += ["--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        argv += ["--hostname", "sandbox", *self.system_binds]
        argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        return [*argv, "--bind", str(work_dir), JOB_DIR, "--chdir", cwd, "--"]

    def _check_cgroups(self) -> str:
        self._cgroups_checked = True
        if not self.use_cgroups:
            self.cgroups.version, self.cgroups.controllers = None, ()
            return "cgroups off (backend option cgroups=false)"
        return self.cgroups.detect()

    async def health(self) -> BackendHealth:
        if shutil.which(self.bwrap) is None:
            detail = f"bubblewrap ({self.bwrap}) is not installed; install it with {INSTALL_HINT}"
            return BackendHealth(ok=False, detail=detail)
        if shutil.which(self.prlimit) is None:
            detail = f"prlimit ({self.prlimit}) is not installed; apt-get install util-linux"
            return BackendHealth(ok=False, detail=detail)
        with tempfile.TemporaryDirectory(prefix="blixard-sandbox-") as tmp:
            argv = [*self.bwrap_argv(Path(tmp), JOB_DIR, network=False), "true"]
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                    env={"PATH": DEFAULT_PATH},
                )
                _, err = await asyncio.wait_for(proc.communicate(), HEALTH_TIMEOUT_S)
                problem = err.decode(errors="replace").strip() if proc.returncode else ""
                problem = problem or (f"exit status {proc.returncode}" if proc.returncode else "")
            except (OSError, TimeoutError) as exc:
                problem = str(exc) or type(exc).__name__
        if problem:
            detail = f"bwrap cannot run a sandbox here: {problem} (needs {INSTALL_HINT})"
            return BackendHealth(ok=False, detail=detail)
        cgroup_detail = await asyncio.to_thread(self._check_cgroups)
        controllers = self.cgroups.controllers
        nproc = os.geteuid() != 0
        return BackendHealth(
            ok=True,
            detail=cgroup_detail,
            capabilities={
                "sandbox": "bwrap",
                "network": self.allow_network,
                "rlimits": ["memory", "cpu_time", "file_size", *(["processes"] if nproc else [])],
                "cgroup": self.cgroups.version if controllers else None,
                "cgroup_limits": list(controllers),
                "max_memory_mb": self.max_memory_mb,
                "max_cpu_time_s": self.max_cpu_time_s,
                "max_processes": self.max_processes,
            },
        )

    def _limits(self, ctx: ExecutionContext) -> tuple[int, int, int, int, float | None]:
        payload, req = ctx.job.payload, ctx.job.requirements

        def pick(key: str, default: float, cap: float, requirement: str = "") -> float:
            value = _number(payload, key)
            if value is None and requirement and isinstance(req.get(requirement), int | float):
                value = float(req[requirement]) or None
            return min(default if value is None else value, cap)

        memory = int(pick("memory_mb", self.default_memory_mb, self.max_memory_mb, "memory_mb"))
        cpu_time = int(pick("cpu_time_s", self.default_cpu_time_s, self.max_cpu_time_s))
        processes = int(pick("max_processes", self.default_processes, self.max_processes))
        fsize = int(pick("file_size_mb", self.default_file_size_mb, self.max_file_size_mb))
        cpus = pick("cpus", 0, self.max_cpus, "cpu") or None
        return max(memory, 1), max(cpu_time, 1), max(processes, 1), max(fsize, 1), cpus

    def _prlimit_argv(self, memory: int, cpu_time: int, processes: int, fsize: int) -> list[str]:
        cpu_hard = _capped_rlimit(resource.RLIMIT_CPU, cpu_time + 1)
        return [
            self.prlimit,
            f"--as={_capped_rlimit(resource.RLIMIT_AS, memory * MB)}",
            f"--cpu={min(cpu_time, cpu_hard)}:{cpu_hard}",
            f"--nproc={_capped_rlimit(resource.RLIMIT_NPROC, processes)}",
            f"--fsize={_capped_rlimit(resource.RLIMIT_FSIZE, fsize * MB)}",
            "--core=0",
            "--",
        ]

    async def start(self, ctx: ExecutionContext) -> Execution:
        payload = ctx.job.payload
        try:
            command = command_argv(payload.get("command"))
            env = check_env("env", payload.get("env"))
            stdin = payload.get("stdin")
            data = None if stdin is None else check_text("stdin", stdin).encode()
            cwd_value = payload.get("cwd")
            cwd = JOB_DIR if cwd_value is None else check_text("cwd", cwd_value)
            if cwd_value is not None and (not cwd or os.path.isabs(cwd) or ".." in cwd.split("/")):
                raise PayloadInvalid("cwd", "must be a relative path inside the job directory")
            network = payload.get("network", False)
            if not isinstance(network, bool):
                raise PayloadInvalid("network", f"must be a boolean, got {type(network).__name__}")
            if network and not self.allow_network:
                raise PayloadInvalid(
                    "network", "network access is not allowed on this worker (allow_network)"
                )
            memory, cpu_time, processes, fsize, cpus = self._limits(ctx)
            ctx.work_dir.mkdir(parents=True, exist_ok=True)
            parent_results = await write_parent_results(ctx)
        except (PayloadInvalid, ParentResultsUnwritable) as exc:
            return exc.execution()
        if cwd_value is not None:
            if not (ctx.work_dir / cwd).is_dir():
                message = f"cwd {cwd!r} is not a directory in the job directory"
                return FinishedExecution(Outcome.failure("spawn", message, retryable=False))
            cwd = f"{JOB_DIR}/{cwd}"
        job_env = {"PATH": DEFAULT_PATH, "HOME": JOB_DIR, **env}
        job_env |= {
            "BLIXARD_JOB_ID": ctx.job.job_id,
            "BLIXARD_JOB_ATTEMPT": str(ctx.job.attempt),
            "BLIXARD_WORK_DIR": JOB_DIR,
        }
        if parent_results is not None:
            job_env[PARENT_RESULTS_ENV] = f"{JOB_DIR}/{PARENT_RESULTS_FILE}"
        if not self._cgroups_checked:  # health() normally did this at worker start
            await asyncio.to_thread(self._check_cgroups)
        cgroup: Cgroup | None = None
        if self.cgroups.controllers:
            name = f"{ctx.job.job_id}-{ctx.job.attempt}-{uuid.uuid4().hex[:8]}"
            settings = self.cgroups.settings(memory, processes, cpus)
            try:
                cgroup = await asyncio.to_thread(self.cgroups.create, name, settings)
            except OSError as exc:
                return FinishedExecution(
                    Outcome.failure("spawn", f"cannot create the job's cgroup: {exc}")
                )
        argv = self._prlimit_argv(memory, cpu_time, processes, fsize)
        argv += self.bwrap_argv(ctx.work_dir.absolute(), cwd, network=network) + command
        if cgroup is not None:
            files = cgroup.procs_files
            argv = [SH, "-c", JOIN_CGROUPS, "blixard-sandbox", str(len(files)), *files, *argv]
        try:
            proc = await ManagedProcess.spawn(
                argv,
                cwd=ctx.work_dir,
                env=job_env,
                stdin=data,
                on_output=ctx.on_output,
                tail_bytes=self.tail_bytes,
            )
        except OSError as exc:
            if cgroup is not None:
                cgroup.remove()
            return FinishedExecution(spawn_failure(argv[0], exc))
        return SandboxExecution(
            proc,
            self.kill_grace_s,
            self._running,
            cgroup=cgroup,
            memory_mb=memory,
            timeout_s=ctx.job.timeout_s,
        )

    async def close(self) -> None:
        """Cancel whatever is still running."""
        await cancel_all(self._running)
