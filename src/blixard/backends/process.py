"""The ``process`` backend: run a command as a child process of the worker.

Payload (other fields are ignored):

- ``command`` (required): a list of strings, executed directly (argv), or a string, run by
  ``/bin/sh -c``.
- ``env``: an object of strings, set over the worker's environment (backend option
  ``inherit_env``, default true) and ``BLIXARD_JOB_ID`` / ``BLIXARD_JOB_ATTEMPT`` /
  ``BLIXARD_WORK_DIR``.
- ``cwd``: the directory to run in, relative to the job's work dir; default the work dir.
- ``stdin``: a string fed to the process (default: no input).

A job with parents (``depends_on``, the steps of a workflow) finds their results in the
JSON file named by ``BLIXARD_PARENT_RESULTS`` (``parent_results.json`` in its work dir): an
object of each parent's result by step name (job id for a parent without a step). A parent
process job's result is ``{"exit_code", "stdout", ...}``, so a step reads what its parent
printed, e.g. ``jq -r .build.stdout "$BLIXARD_PARENT_RESULTS"``.

Result on exit code 0: ``{"exit_code": 0, "stdout": tail, "stderr": tail,
"truncated": {"stdout": bool, "stderr": bool}}`` where each tail is the last ``tail_bytes``
(option, default 16384) of the stream decoded as UTF-8. Errors (kind): ``exit_code``
(with ``exit_code``), ``signal`` (with the signal name), ``spawn`` (not found, not
executable, bad cwd; not retryable), ``invalid_payload`` (not retryable), ``cancelled``;
all but ``invalid_payload`` and ``spawn`` carry the output tails.

The child runs in a session of its own; cancelling sends SIGTERM to its whole process group,
then SIGKILL after ``kill_grace_s`` (option, default 3). When the child exits by itself,
whatever it left running in its group is killed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

from blixard.backends.base import (
    BackendHealth,
    Execution,
    ExecutionBackend,
    ExecutionContext,
    FinishedExecution,
    Outcome,
)
from blixard.backends.parent_results import ParentResultsUnwritable, write_parent_results
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
    job_environment,
    option_bool,
    option_float,
    option_int,
    resolve_cwd,
    spawn_failure,
    tails_of,
)

SHELL = "/bin/sh"


def command_argv(command: Any) -> list[str]:
    """A payload's ``command`` as argv: a list as given, a string run by ``/bin/sh -c``."""
    if isinstance(command, str):
        if not command.strip():
            raise PayloadInvalid("command", "must not be empty")
        return [SHELL, "-c", check_text("command", command)]
    if isinstance(command, list):
        if not command:
            raise PayloadInvalid("command", "must not be an empty list")
        argv = [check_text(f"command[{i}]", arg) for i, arg in enumerate(command)]
        if not argv[0]:
            raise PayloadInvalid("command[0]", "must not be empty")
        return argv
    if command is None:
        raise PayloadInvalid("command", "is required")
    raise PayloadInvalid(
        "command", f"must be a list of strings or a string, got {type(command).__name__}"
    )


class ProcessExecution(SubprocessExecution):
    def outcome(self, returncode: int) -> Outcome:
        tails = tails_of(self.proc)
        if returncode == 0:
            return Outcome.success({"exit_code": 0, **tails})
        kind, message, details = describe_exit(returncode)
        return Outcome.failure(kind, message, **details, **tails)


class ProcessBackend(ExecutionBackend):
    name: ClassVar[str] = "process"

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        super().__init__(options)
        self.inherit_env = option_bool(self.options, "inherit_env", True)
        self.tail_bytes = option_int(self.options, "tail_bytes", DEFAULT_TAIL_BYTES)
        self.kill_grace_s = option_float(self.options, "kill_grace_s", DEFAULT_KILL_GRACE_S)
        self._running: set[SubprocessExecution] = set()

    async def health(self) -> BackendHealth:
        if os.name != "posix":
            return BackendHealth(ok=False, detail="the process backend needs a POSIX system")
        shell = os.access(SHELL, os.X_OK)
        return BackendHealth(
            ok=True,
            detail="" if shell else f"{SHELL} not found: string commands will fail",
            capabilities={"shell": shell},
        )

    async def start(self, ctx: ExecutionContext) -> Execution:
        payload = ctx.job.payload
        try:
            argv = command_argv(payload.get("command"))
            env = check_env("env", payload.get("env"))
            stdin = payload.get("stdin")
            data = None if stdin is None else check_text("stdin", stdin).encode()
            cwd = resolve_cwd(ctx, payload.get("cwd"))
            parent_results = await write_parent_results(ctx)
        except (PayloadInvalid, ParentResultsUnwritable) as exc:
            return exc.execution()
        try:
            proc = await ManagedProcess.spawn(
                argv,
                cwd=cwd,
                env=job_environment(
                    ctx, inherit=self.inherit_env, extra=env, parent_results=parent_results
                ),
                stdin=data,
                on_output=ctx.on_output,
                tail_bytes=self.tail_bytes,
            )
        except OSError as exc:
            return FinishedExecution(spawn_failure(argv[0], exc))
        return ProcessExecution(proc, self.kill_grace_s, self._running)

    async def close(self) -> None:
        """Cancel whatever is still running."""
        await cancel_all(self._running)
