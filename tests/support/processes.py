"""Real ``blixard`` processes for acceptance tests.

Every process is ``python -m blixard ...`` with its stdout and stderr in a log file under the
test's ``tmp_path``, so a failing test can show what each process said. A ``ProcessGroup``
owns the processes a test starts and stops all of them at teardown, whatever happened:
SIGTERM first, SIGKILL for stragglers and for everything they spawned (job processes
included). Everything binds to 127.0.0.1.

    group = ProcessGroup(tmp_path)
    server = group.start_server(lease_ttl=1)
    worker = group.start_worker(server.url, "process", concurrency=2)
    ...
    group.stop_all()
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx

HOST = "127.0.0.1"
T = TypeVar("T")

NOISE = "httpx: HTTP Request:"
"""Workers at log level info log every request they make; log tails leave those out."""

START_TIMEOUT_S = 30.0
"""How long a server gets to answer /healthz, and a worker to show up online."""


class WaitTimeout(AssertionError):
    """``wait_until`` ran out of time (an AssertionError: the test fails, with context)."""


class ProcessDied(AssertionError):
    """A process exited while a test was waiting for it to do something."""


# -- small helpers --------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float = 10.0,
    interval: float = 0.05,
    *,
    message: str | Callable[[], str] = "the condition",
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``predicate`` until it returns something truthy, and return that.

    Exceptions in ``ignore`` count as "not yet" (e.g. ``httpx.TransportError`` while a server
    restarts); anything else propagates. On timeout raise ``WaitTimeout`` whose message is
    ``message`` (called lazily when it is a callable, so it can carry log tails).
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
        except ignore as exc:
            last_error = exc
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            suffix = f" (last error: {last_error!r})" if last_error is not None else ""
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {text}{suffix}")
        time.sleep(interval)


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test's environment without BLIXARD_* variables (they would change every flag's
    default), unbuffered, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLIXARD_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def cli_flags(flags: Mapping[str, Any]) -> list[str]:
    """``{"lease_ttl": 1, "label": ["a=b", "c=d"], "json": True}`` to
    ``["--lease-ttl", "1", "--label", "a=b", "--label", "c=d", "--json"]``; None and False
    are left out."""
    out: list[str] = []
    for key, value in flags.items():
        option = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            out.append(option)
        elif isinstance(value, list | tuple):
            for item in value:
                out += [option, str(item)]
        else:
            out += [option, str(value)]
    return out


def blixard_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "blixard", *args]


def run_cli(
    *args: str,
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run one ``blixard`` command to the end; its output is captured as text."""
    return subprocess.run(
        blixard_command(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(env),
        cwd=cwd,
        input=input,
        check=False,
    )


def describe_run(result: subprocess.CompletedProcess[str]) -> str:
    """A CLI run for an assertion message."""
    return (
        f"$ {' '.join(map(str, result.args[3:]))}\n"
        f"exit code {result.returncode}\n"
        f"--- stdout ---\n{result.stdout[-3000:]}\n"
        f"--- stderr ---\n{result.stderr[-3000:]}"
    )


# -- processes in /proc ---------------------------------------------------------------------


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name: [state, ppid, ...]."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return text.rsplit(")", 1)[1].split()


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    fields = _proc_stat(pid)
    return fields is not None and fields[0] != "Z"


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, grandchildren...), found through /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _proc_stat(int(entry))
        if fields is None or fields[0] == "Z":
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def kill_pids(pids: Iterable[int], sig: int = signal.SIGKILL) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


# -- one process ----------------------------------------------------------------------------


class BlixardProcess:
    """``python -m blixard ARGS`` with its output in ``log_path``."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.args = list(args)
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in close()
        self.popen = subprocess.Popen(
            blixard_command(*self.args),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=clean_env(env),
            cwd=cwd or log_path.parent,
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} pid={self.pid} rc={self.returncode}>"

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (default SIGKILL) if the process still runs."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(sig)

    def wait(self, timeout: float = 15.0) -> int:
        """The exit code; fails the test (with the log tail) if it is still running."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise WaitTimeout(
                f"{self.name} (pid {self.pid}) still running after {timeout:g}s\n{self.describe()}"
            ) from None

    def terminate_and_wait(self, timeout: float = 15.0, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` and wait for the exit code; SIGKILL and fail the test on timeout."""
        self.kill(sig)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            text = self.describe()
            self.kill(signal.SIGKILL)
            self.popen.wait(10)
            raise WaitTimeout(
                f"{self.name} (pid {self.pid}) ignored signal {sig} for {timeout:g}s\n{text}"
            ) from None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40, *, quiet: bool = False) -> str:
        """The last ``lines`` lines of the log; ``quiet``: without httpx's line per request."""
        text = self.log_text().splitlines()
        if quiet:
            text = [line for line in text if NOISE not in line]
        return "\n".join(text[-lines:])

    def describe(self, lines: int = 40) -> str:
        state = "running" if self.running else f"exit code {self.returncode}"
        return (
            f"---- {self.name} (pid {self.pid}, {state}): last {lines} log lines "
            f"(without httpx requests; full log: {self.log_path}) ----\n"
            f"{self.log_tail(lines, quiet=True)}"
        )

    def close(self) -> None:
        self._log.close()


class ServerProcess(BlixardProcess):
    """``blixard server`` (or ``blixard up``): its URL, port and database URL."""

    def __init__(self, *args: Any, port: int, database: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.port = port
        self.database = database
        self.url = f"http://{HOST}:{port}"

    def healthy(self) -> bool:
        if not self.running:
            raise ProcessDied(f"{self.name} exited\n{self.describe()}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2.0).status_code == 200
        except httpx.TransportError:
            return False

    def wait_healthy(self, timeout: float = START_TIMEOUT_S) -> None:
        wait_until(
            self.healthy,
            timeout,
            0.05,
            message=lambda: f"{self.name} to answer GET /healthz\n{self.describe()}",
        )


class WorkerProcess(BlixardProcess):
    """``blixard worker``; ``worker_id`` is known once it registered (``wait_online``)."""

    def __init__(self, *args: Any, server_url: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server_url = server_url
        self.worker_id: str | None = None

    def record(self) -> dict[str, Any] | None:
        """This worker in GET /api/v1/workers (matched by pid), or None."""
        response = httpx.get(f"{self.server_url}/api/v1/workers", timeout=5.0)
        response.raise_for_status()
        mine = [w for w in response.json() if w["pid"] == self.pid]
        if self.worker_id is not None:
            mine = [w for w in mine if w["id"] == self.worker_id]
        return mine[-1] if mine else None

    def wait_online(self, timeout: float = START_TIMEOUT_S) -> dict[str, Any]:
        def online() -> dict[str, Any] | None:
            if not self.running:
                raise ProcessDied(f"{self.name} exited\n{self.describe()}")
            found = self.record()
            return found if found and found["status"] == "online" else None

        found = wait_until(
            online,
            timeout,
            0.05,
            message=lambda: f"{self.name} to be online in GET /api/v1/workers\n{self.describe()}",
            ignore=(httpx.TransportError,),
        )
        self.worker_id = found["id"]
        return found


# -- a test's processes ----------------------------------------------------------------------


class ProcessGroup:
    """The processes one test started; ``stop_all`` (run at teardown) stops every one."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.log_dir = tmp_path / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.processes: list[BlixardProcess] = []
        self._adopted: set[int] = set()
        self._names: dict[str, int] = {}

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def _unique(self, name: str) -> str:
        n = self._names.get(name, 0) + 1
        self._names[name] = n
        return name if n == 1 else f"{name}-{n}"

    def _log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def start(self, name: str, *args: str, env: Mapping[str, str] | None = None) -> BlixardProcess:
        """Any ``blixard`` command, e.g. ``group.start("up", "up", "--port", "8000")``."""
        name = self._unique(name)
        proc = BlixardProcess(name, args, self._log_path(name), env=env, cwd=self.tmp_path)
        self.processes.append(proc)
        return proc

    def start_server(
        self,
        db_path: Path | None = None,
        port: int | None = None,
        *,
        name: str = "server",
        command: str = "server",
        wait: bool = True,
        env: Mapping[str, str] | None = None,
        **flags: Any,
    ) -> ServerProcess:
        """``blixard server`` on 127.0.0.1 (``command="up"`` for ``blixard up``); waits for
        GET /healthz. Defaults: a database in tmp_path, a free port, a 2 s lease TTL and a
        0.2 s reaper interval; ``flags`` are more options (``lease_ttl=1``...)."""
        db_path = db_path or self.tmp_path / "blixard.db"
        port = port or free_port()
        database = f"sqlite:///{db_path.resolve()}"
        options = {"lease_ttl": 2, "reaper_interval": 0.2, "log_level": "info", **flags}
        args = [command, "--database", database, "--host", HOST, "--port", str(port)]
        args += cli_flags(options)
        name = self._unique(name)
        proc = ServerProcess(
            name,
            args,
            self._log_path(name),
            env=env,
            cwd=self.tmp_path,
            port=port,
            database=database,
        )
        self.processes.append(proc)
        if wait:
            proc.wait_healthy()
        return proc

    def start_worker(
        self,
        url: str | Sequence[str],
        type: str = "process",
        concurrency: int = 4,
        *,
        name: str | None = None,
        wait: bool = True,
        env: Mapping[str, str] | None = None,
        **flags: Any,
    ) -> WorkerProcess:
        """``blixard worker`` for ``url`` (several: failover); waits until it is online in
        GET /api/v1/workers of the first. Defaults: ``--claim-wait 1``; ``flags`` are more
        options (``label=["zone=a"]``...)."""
        urls = [url] if isinstance(url, str) else list(url)
        options = {"claim_wait": 1, "log_level": "info", **flags}
        args = ["worker", *cli_flags({"server": urls})]
        args += ["--type", type, "--concurrency", str(concurrency), *cli_flags(options)]
        name = self._unique(name or f"worker-{type}")
        proc = WorkerProcess(
            name, args, self._log_path(name), env=env, cwd=self.tmp_path, server_url=urls[0]
        )
        self.processes.append(proc)
        if wait:
            proc.wait_online()
        return proc

    def adopt(self, *pids: int) -> None:
        """Processes this test did not start but must not outlive it (``up``'s workers)."""
        self._adopted.update(pids)

    def describe(self, lines: int = 30) -> str:
        """Every process's state and log tail, for assertion messages."""
        return "\n".join(p.describe(lines) for p in self.processes) or "(no processes)"

    def stop_all(self, grace: float = 3.0) -> None:
        """SIGTERM everything (twice for workers: cancel their jobs), wait up to ``grace``
        seconds, then SIGKILL what is left, and whatever they spawned."""
        live = [p for p in self.processes if p.running]
        spawned = set(self._adopted)
        for proc in live:
            spawned.update(descendants(proc.pid))
        for proc in live:
            proc.kill(signal.SIGTERM)
        workers = [p for p in live if isinstance(p, WorkerProcess)]
        if workers:
            time.sleep(0.2)  # two signals sent back to back may be delivered as one
            for proc in workers:
                proc.kill(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in live:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(max(0.0, deadline - time.monotonic()))
        for proc in live:
            proc.kill(signal.SIGKILL)
        kill_pids(p for p in spawned if pid_alive(p))
        for proc in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(10)
            proc.close()
