"""What the subprocess-based backends (``process``, ``python``) share.

``ManagedProcess`` runs one child in a session (and so a process group) of its own, streams
its stdout/stderr to an ``OutputSink`` while keeping bounded tails, and kills the whole
group: on ``terminate`` (SIGTERM, a grace period, then SIGKILL) and, once the child has
exited by itself, whatever it left running in its group (SIGKILL). Memory stays bounded
however much the child prints: chunks go to the sink and only the last N bytes are kept.

Also here: parsing of string backend options, the payload checks both backends share, and
the job's environment (with ``BLIXARD_PARENT_RESULTS`` for a job with parents, see
``parent_results.py``; removed, even if the worker has it, for a job without).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Mapping, MutableSet, Sequence
from pathlib import Path
from typing import Any, Final, cast

from blixard.backends.base import (
    Execution,
    ExecutionContext,
    FinishedExecution,
    Outcome,
    OutputSink,
)
from blixard.backends.parent_results import PARENT_RESULTS_ENV
from blixard.errors import BackendError

log = logging.getLogger(__name__)

DEFAULT_TAIL_BYTES: Final = 16 * 1024
DEFAULT_KILL_GRACE_S: Final = 3.0
DRAIN_TIMEOUT_S: Final = 2.0
"""How long to wait for the output pipes to close once the group is dead (a process that
left the group may still hold them)."""
POLL_INTERVAL_S: Final = 0.02
EXIT_AFTER_KILL_TIMEOUT_S: Final = 10.0

STREAMS: Final = ("stdout", "stderr")


# -- backend options (always strings) -------------------------------------------------------

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def option_bool(options: Mapping[str, str], key: str, default: bool) -> bool:
    raw = options.get(key)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise BackendError(f"backend option {key}: expected true or false, got {raw!r}", option=key)


def option_int(options: Mapping[str, str], key: str, default: int, *, minimum: int = 0) -> int:
    raw = options.get(key)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise BackendError(
            f"backend option {key}: expected an integer, got {raw!r}", option=key
        ) from None
    if value < minimum:
        raise BackendError(f"backend option {key}: must be >= {minimum}, got {value}", option=key)
    return value


def option_float(
    options: Mapping[str, str], key: str, default: float, *, minimum: float = 0.0
) -> float:
    raw = options.get(key)
    if raw is None:
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise BackendError(
            f"backend option {key}: expected a number, got {raw!r}", option=key
        ) from None
    if not value >= minimum or value == float("inf"):  # also rejects NaN
        raise BackendError(f"backend option {key}: must be >= {minimum}, got {raw!r}", option=key)
    return value


# -- payload checks --------------------------------------------------------------------------


class PayloadInvalid(Exception):
    """A payload field that cannot be run; becomes a non-retryable ``invalid_payload``."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def execution(self) -> FinishedExecution:
        return FinishedExecution(
            Outcome.failure("invalid_payload", str(self), retryable=False, field=self.field)
        )


def check_text(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise PayloadInvalid(field, f"must be a string, got {type(value).__name__}")
    if "\x00" in value:
        raise PayloadInvalid(field, "must not contain NUL characters")
    return value


def check_env(field: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadInvalid(field, f"must be an object of strings, got {type(value).__name__}")
    env: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key or "=" in key or "\x00" in key:
            raise PayloadInvalid(field, f"invalid variable name {key!r}")
        if not isinstance(item, str):
            raise PayloadInvalid(f"{field}.{key}", f"must be a string, got {type(item).__name__}")
        if "\x00" in item:
            raise PayloadInvalid(f"{field}.{key}", "must not contain NUL characters")
        env[key] = item
    return env


def resolve_cwd(ctx: ExecutionContext, value: Any) -> Path:
    """The payload's ``cwd`` (relative to the work dir), or the work dir, created if missing."""
    if value is None:
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        return ctx.work_dir
    text = check_text("cwd", value)
    if not text:
        raise PayloadInvalid("cwd", "must not be empty")
    return ctx.work_dir / text


def job_environment(
    ctx: ExecutionContext,
    *,
    inherit: bool,
    extra: Mapping[str, str] | None = None,
    parent_results: Path | None = None,
) -> dict[str, str]:
    """The worker's environment (if ``inherit``), the job's identity (and the path of its
    parents' results, from ``write_parent_results``), then ``extra``."""
    env = dict(os.environ) if inherit else {}
    env.pop(PARENT_RESULTS_ENV, None)
    env["BLIXARD_JOB_ID"] = ctx.job.job_id
    env["BLIXARD_JOB_ATTEMPT"] = str(ctx.job.attempt)
    env["BLIXARD_WORK_DIR"] = str(ctx.work_dir)
    if parent_results is not None:
        env[PARENT_RESULTS_ENV] = str(parent_results)
    if extra:
        env.update(extra)
    return env


# -- output ------------------------------------------------------------------------------------


class Tail:
    """The last ``limit`` bytes of a stream, and whether anything before them was dropped."""

    __slots__ = ("_buf", "limit", "total")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0
        self._buf = bytearray()

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self.limit <= 0:
            return
        if len(chunk) >= self.limit:
            self._buf[:] = chunk[-self.limit :]
            return
        self._buf += chunk
        excess = len(self._buf) - self.limit
        if excess > 0:
            del self._buf[:excess]

    @property
    def truncated(self) -> bool:
        return self.total > len(self._buf)

    def data(self) -> bytes:
        return bytes(self._buf)

    def text(self) -> str:
        """UTF-8 (invalid bytes replaced); a character cut by truncation is dropped."""
        data = self._buf
        start = 0
        if self.truncated:
            while start < min(3, len(data)) and 0x80 <= data[start] <= 0xBF:
                start += 1
        return data[start:].decode("utf-8", errors="replace")


class _Protocol(asyncio.SubprocessProtocol):
    def __init__(self, sink: OutputSink, tails: dict[int, Tail]) -> None:
        loop = asyncio.get_running_loop()
        self._sink = sink
        self._tails = tails
        self._open_pipes = set(tails)
        self._sink_broken = False
        self.exited: asyncio.Future[None] = loop.create_future()
        self.pipes_closed: asyncio.Future[None] = loop.create_future()
        if not self._open_pipes:
            self.pipes_closed.set_result(None)

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        tail = self._tails.get(fd)
        if tail is None:
            return
        chunk = data.encode() if isinstance(data, str) else data
        tail.add(chunk)
        if self._sink_broken:
            return
        try:
            self._sink(STREAMS[fd - 1], chunk)
        except Exception:
            self._sink_broken = True
            log.exception("output sink failed; further output is only kept in the tails")

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open_pipes.discard(fd)
        if not self._open_pipes and not self.pipes_closed.done():
            self.pipes_closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to every process in group ``pgid``; a group already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_alive(pgid: int) -> bool:
    """Whether group ``pgid`` still has a live (non-zombie) member.

    Orphans are reparented to PID 1, and in a container PID 1 may never reap them, so on
    Linux a group whose members are all zombies counts as gone.
    """
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


class ManagedProcess:
    """One child in its own process group, with its output streamed and tailed."""

    def __init__(
        self,
        transport: asyncio.SubprocessTransport,
        protocol: _Protocol,
        stdout: Tail,
        stderr: Tail,
    ) -> None:
        self._transport = transport
        self._protocol = protocol
        self.pid: int = transport.get_pid()
        self.stdout = stdout
        self.stderr = stderr
        self.cancelled = False
        """True once ``terminate`` was asked while the child was still running."""
        self._terminating: asyncio.Task[None] | None = None
        self._done: asyncio.Task[int] = asyncio.ensure_future(self._supervise())

    @classmethod
    async def spawn(
        cls,
        argv: Sequence[str],
        *,
        cwd: Path | str,
        env: Mapping[str, str],
        stdin: bytes | None,
        on_output: OutputSink,
        tail_bytes: int = DEFAULT_TAIL_BYTES,
    ) -> ManagedProcess:
        """Start ``argv``; raises ``OSError`` if it cannot be started."""
        loop = asyncio.get_running_loop()
        stdout, stderr = Tail(tail_bytes), Tail(tail_bytes)
        tails = {1: stdout, 2: stderr}
        transport, protocol = await loop.subprocess_exec(
            lambda: _Protocol(on_output, tails),
            *argv,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
        )
        if stdin is not None:
            # Duck-typed: uvloop's pipe transports are not asyncio.WriteTransport subclasses.
            # A child that exits without reading gives EPIPE, which the loop absorbs.
            pipe = cast(asyncio.WriteTransport, transport.get_pipe_transport(0))
            pipe.write(stdin)
            if pipe.can_write_eof():
                pipe.write_eof()
            else:  # pragma: no cover - unix pipes can write EOF
                pipe.close()
        return cls(transport, protocol, stdout, stderr)

    @property
    def returncode(self) -> int | None:
        """The child's exit status (negative: killed by that signal); None while running."""
        return self._transport.get_returncode()

    async def wait(self) -> int:
        """Until the child has exited, its group is dead and its output is drained."""
        return await asyncio.shield(self._done)

    async def terminate(self, grace_s: float = DEFAULT_KILL_GRACE_S) -> None:
        """SIGTERM the group, SIGKILL it after ``grace_s``, reap the child. Idempotent."""
        if self._terminating is None:
            if self._done.done():
                return
            self.cancelled = self.returncode is None
            self._terminating = asyncio.ensure_future(self._terminate(grace_s))
        await asyncio.shield(self._terminating)

    async def _terminate(self, grace_s: float) -> None:
        loop = asyncio.get_running_loop()
        signal_group(self.pid, signal.SIGTERM)
        signal_group(self.pid, signal.SIGCONT)  # a stopped process acts on SIGTERM only now
        deadline = loop.time() + grace_s
        while loop.time() < deadline:
            if (
                self._protocol.exited.done()
                and self._protocol.pipes_closed.done()
                and not group_alive(self.pid)
            ):
                break
            await asyncio.sleep(POLL_INTERVAL_S)
        signal_group(self.pid, signal.SIGKILL)
        try:
            await asyncio.wait_for(asyncio.shield(self._protocol.exited), EXIT_AFTER_KILL_TIMEOUT_S)
        except TimeoutError:
            log.warning(
                "process %d survived SIGKILL for %.0fs", self.pid, EXIT_AFTER_KILL_TIMEOUT_S
            )

    async def _supervise(self) -> int:
        try:
            await self._protocol.exited
            if self._terminating is not None:
                await asyncio.shield(self._terminating)
            else:
                # The job is over: nothing it started in its group outlives it.
                signal_group(self.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._protocol.pipes_closed), DRAIN_TIMEOUT_S)
        finally:
            self._transport.close()
        code = self.returncode
        assert code is not None
        return code


def describe_exit(returncode: int) -> tuple[str, str, dict[str, Any]]:
    """(kind, message, details) of a non-zero exit status."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return "signal", f"killed by {name}", {"signal": name}
    return "exit_code", f"exited with code {returncode}", {"exit_code": returncode}


def tails_of(proc: ManagedProcess) -> dict[str, Any]:
    """stdout/stderr tail texts and their truncation flags, for results and errors."""
    return {
        "stdout": proc.stdout.text(),
        "stderr": proc.stderr.text(),
        "truncated": {"stdout": proc.stdout.truncated, "stderr": proc.stderr.truncated},
    }


def spawn_failure(argv0: str, exc: OSError) -> Outcome:
    """A child that could not be started: not found, not executable, bad cwd."""
    message = f"cannot start {argv0!r}: {exc.strerror or exc}"
    if exc.filename is not None and str(exc.filename) != argv0:
        message += f" ({exc.filename})"
    return Outcome.failure("spawn", message, retryable=False, errno=exc.errno)


class SubprocessExecution(Execution):
    """An ``Execution`` over a ``ManagedProcess``; subclasses turn the exit into an outcome.

    The outcome is computed once, in a task started here, so clean-up happens even if nobody
    waits; ``running`` (the backend's set of live executions) holds it until then.
    """

    def __init__(
        self,
        proc: ManagedProcess,
        kill_grace_s: float,
        running: MutableSet[SubprocessExecution] | None = None,
    ) -> None:
        self.proc = proc
        self.kill_grace_s = kill_grace_s
        self._running = running
        if running is not None:
            running.add(self)
        self._outcome: asyncio.Task[Outcome] = asyncio.ensure_future(self._finish())

    @property
    def pid(self) -> int:
        return self.proc.pid

    def outcome(self, returncode: int) -> Outcome:
        """How the job ended, once the child has exited (not called when cancelled)."""
        raise NotImplementedError

    def cancelled_outcome(self) -> Outcome:
        """How the job ended when it was stopped while running (subclasses that stop a job
        themselves, e.g. on a timeout, say so here)."""
        return Outcome.failure("cancelled", "cancelled while running", **tails_of(self.proc))

    def cleanup(self) -> None:
        """Release per-execution resources (temp files) after the outcome is known."""

    async def _finish(self) -> Outcome:
        try:
            code = await self.proc.wait()
            if self.proc.cancelled:
                return self.cancelled_outcome()
            return self.outcome(code)
        finally:
            try:
                self.cleanup()
            finally:
                if self._running is not None:
                    self._running.discard(self)

    async def wait(self) -> Outcome:
        return await asyncio.shield(self._outcome)

    async def cancel(self) -> None:
        await self.proc.terminate(self.kill_grace_s)


async def cancel_all(running: MutableSet[SubprocessExecution]) -> None:
    """Cancel every execution still in ``running`` (a backend's ``close``)."""
    await asyncio.gather(*(execution.cancel() for execution in list(running)))
