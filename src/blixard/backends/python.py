"""The ``python`` backend: call a Python function in a fresh child interpreter per job.

Payload (other fields are ignored):

- ``function`` (required): ``"package.module:function"`` (the part after ``:`` may be a
  dotted attribute path, e.g. ``"module:Class.method"``).
- ``args``: a list of positional arguments (default none).
- ``kwargs``: an object of keyword arguments (default none).
- ``cwd``: the directory to run in, relative to the job's work dir; default the work dir.
  It is also put on ``sys.path``, after the entries of backend option ``path``.

A job with parents (``depends_on``, the steps of a workflow) gets their results, an object
of each parent's result by step name (job id for a parent without a step): as the argument
``parents`` when the function has a parameter of that name that ``args`` and ``kwargs`` do
not fill, and for any function in the JSON file named by ``BLIXARD_PARENT_RESULTS``
(``parent_results.json`` in the work dir). A function returning a value for its children
returns JSON: ``def test(parents): return {"ok": parents["build"]["version"] > 2}``.

The child (``python_runner``) gets the call as JSON on stdin and writes the outcome to a
temporary file, so the function's own prints (streamed to ``on_output``) cannot corrupt it.
A coroutine function is run with ``asyncio.run``. Outcome: success with the function's JSON
return value as the result, or a failure of kind ``exception`` (``type``: the exception's
qualified class name, ``traceback``: its tail), ``import`` (bad module or attribute; not
retryable), ``result_not_json`` (not retryable), ``crashed`` (the child died without a
result: ``os._exit``, ``sys.exit``, a segfault; with ``exit_code`` or ``signal`` and the
output tails), ``invalid_payload`` (not retryable), ``spawn`` or ``cancelled``.

Options (strings): ``path`` (os.pathsep-separated extra sys.path entries), ``python`` (the
interpreter, default the worker's own), ``inherit_env`` (default true), ``tail_bytes``
(default 16384), ``kill_grace_s`` (default 3).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from typing import Any, ClassVar

from blixard.backends import python_runner
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
    describe_exit,
    job_environment,
    option_bool,
    option_float,
    option_int,
    resolve_cwd,
    spawn_failure,
    tails_of,
)

RUNNER_PATH = os.path.abspath(python_runner.__file__)
# Run the runner by file path: the child needs neither ``blixard`` on its path nor the cost
# of importing the package. ``-u``: the function's prints stream as they happen.
BOOTSTRAP = (
    "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)
RESULT_FILE = "result.json"
HEALTH_TIMEOUT_S = 30.0


def _check_function(value: Any) -> str:
    if value is None:
        raise PayloadInvalid("function", "is required")
    if not isinstance(value, str):
        raise PayloadInvalid("function", f"must be a string, got {type(value).__name__}")
    module, sep, attr = value.partition(":")
    if (
        not sep
        or not all(part.isidentifier() for part in module.split("."))
        or not all(part.isidentifier() for part in attr.split("."))
    ):
        raise PayloadInvalid("function", f"must look like 'package.module:function', got {value!r}")
    return value


class PythonExecution(SubprocessExecution):
    def __init__(
        self,
        proc: ManagedProcess,
        kill_grace_s: float,
        running: set[SubprocessExecution],
        result_dir: str,
    ) -> None:
        self._result_dir = result_dir
        super().__init__(proc, kill_grace_s, running)

    def _report(self) -> dict[str, Any] | None:
        try:
            with open(os.path.join(self._result_dir, RESULT_FILE), "rb") as f:
                report = json.loads(f.read())
        except (OSError, ValueError):
            return None
        return report if isinstance(report, dict) and "ok" in report else None

    def outcome(self, returncode: int) -> Outcome:
        report = self._report()
        if report is None:
            _, how, details = describe_exit(returncode)
            return Outcome.failure(
                "crashed",
                f"python process {how} before reporting a result",
                **details,
                **tails_of(self.proc),
            )
        if report["ok"]:
            return Outcome.success(report.get("result"))
        extra = report.get("details")
        return Outcome.failure(
            str(report.get("kind", "exception")),
            str(report.get("message", "")),
            retryable=bool(report.get("retryable", True)),
            **(extra if isinstance(extra, dict) else {}),
        )

    def cleanup(self) -> None:
        shutil.rmtree(self._result_dir, ignore_errors=True)


class PythonBackend(ExecutionBackend):
    name: ClassVar[str] = "python"

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        super().__init__(options)
        self.python = self.options.get("python") or sys.executable
        self.sys_path = [
            os.path.abspath(entry)
            for entry in self.options.get("path", "").split(os.pathsep)
            if entry
        ]
        self.inherit_env = option_bool(self.options, "inherit_env", True)
        self.tail_bytes = option_int(self.options, "tail_bytes", DEFAULT_TAIL_BYTES)
        self.kill_grace_s = option_float(self.options, "kill_grace_s", DEFAULT_KILL_GRACE_S)
        self._running: set[SubprocessExecution] = set()

    async def health(self) -> BackendHealth:
        if os.name != "posix":
            return BackendHealth(ok=False, detail="the python backend needs a POSIX system")
        try:
            proc = await asyncio.create_subprocess_exec(
                self.python,
                "-c",
                "import sys; print('%d.%d.%d' % sys.version_info[:3])",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            return BackendHealth(ok=False, detail=f"cannot run {self.python!r}: {exc}")
        try:
            out, err = await asyncio.wait_for(proc.communicate(), HEALTH_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return BackendHealth(ok=False, detail=f"{self.python!r} did not answer")
        if proc.returncode != 0:
            detail = err.decode(errors="replace").strip()[-500:]
            return BackendHealth(ok=False, detail=f"{self.python!r} failed: {detail}")
        version = out.decode().strip()
        return BackendHealth(
            ok=True,
            detail=f"python {version} at {self.python}",
            capabilities={"python": version, "async": True},
        )

    async def start(self, ctx: ExecutionContext) -> Execution:
        payload = ctx.job.payload
        try:
            function = _check_function(payload.get("function"))
            args = payload.get("args", [])
            if not isinstance(args, list):
                raise PayloadInvalid("args", f"must be a list, got {type(args).__name__}")
            kwargs = payload.get("kwargs", {})
            if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
                raise PayloadInvalid("kwargs", "must be an object")
            cwd = resolve_cwd(ctx, payload.get("cwd"))
            parent_results = await write_parent_results(ctx)
        except (PayloadInvalid, ParentResultsUnwritable) as exc:
            return exc.execution()
        request = {
            "function": function,
            "args": args,
            "kwargs": kwargs,
            "sys_path": [*self.sys_path, str(cwd.absolute())],
            "parents": None if ctx.job.parent_results is None else dict(ctx.job.parent_results),
        }
        result_dir = tempfile.mkdtemp(prefix="blixard-python-")
        try:
            proc = await ManagedProcess.spawn(
                [
                    self.python,
                    "-u",
                    "-c",
                    BOOTSTRAP,
                    RUNNER_PATH,
                    os.path.join(result_dir, RESULT_FILE),
                ],
                cwd=cwd,
                env=job_environment(ctx, inherit=self.inherit_env, parent_results=parent_results),
                stdin=json.dumps(request).encode(),
                on_output=ctx.on_output,
                tail_bytes=self.tail_bytes,
            )
        except OSError as exc:
            shutil.rmtree(result_dir, ignore_errors=True)
            return FinishedExecution(spawn_failure(self.python, exc))
        except BaseException:
            shutil.rmtree(result_dir, ignore_errors=True)
            raise
        return PythonExecution(proc, self.kill_grace_s, self._running, result_dir)

    async def close(self) -> None:
        """Cancel whatever is still running."""
        await cancel_all(self._running)
