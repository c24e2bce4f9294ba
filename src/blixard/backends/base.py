"""The one interface every execution backend implements.

The agent asks a backend to ``start`` a job and gets back an ``Execution``: it can ``wait``
for the outcome and ``cancel`` it (idempotent; ``wait`` then returns promptly). Output goes
to ``ExecutionContext.on_output`` as it is produced. ``health`` is called once at worker
start: a missing runtime is a start-up error, not a failure on the first job. The agent
enforces the job's timeout by cancelling the execution; backends need not track it.

Backends are found by name in a registry (``registry.py``) that the ``blixard.backends``
entry-point group extends; the built-ins are registered through the same group.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

OutputSink = Callable[[str, bytes], None]
"""Called with ("stdout" | "stderr", chunk) as a job writes output."""


@dataclass(frozen=True, slots=True)
class Assignment:
    """A claimed job as the agent sees it: enough to run it, nothing about scheduling."""

    job_id: str
    attempt: int
    queue: str
    tenant: str
    payload: dict[str, Any]
    timeout_s: float | None = None
    requirements: Mapping[str, Any] = field(default_factory=dict)
    # The results of the job's parents (depends_on), by step name (or job id); None when
    # the job has no parents.
    parent_results: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an execution ended. ``error`` follows ``domain.jobs.error_info``: kind + message."""

    ok: bool
    result: Any = None
    error: dict[str, Any] | None = None
    retryable: bool = True

    @classmethod
    def success(cls, result: Any = None) -> Outcome:
        return cls(True, result=result)

    @classmethod
    def failure(cls, kind: str, message: str, *, retryable: bool = True, **extra: Any) -> Outcome:
        return cls(False, error={"kind": kind, "message": message, **extra}, retryable=retryable)


@dataclass(frozen=True, slots=True)
class ExecutionContext:
    job: Assignment
    work_dir: Path
    on_output: OutputSink = lambda stream, chunk: None


@dataclass(frozen=True, slots=True)
class BackendHealth:
    ok: bool
    detail: str = ""
    capabilities: Mapping[str, Any] = field(default_factory=dict)


class Execution(abc.ABC):
    @abc.abstractmethod
    async def wait(self) -> Outcome:
        """Until the job ends; returns its outcome (never raises for a job's own failure)."""

    @abc.abstractmethod
    async def cancel(self) -> None:
        """Stop the job and everything it started; idempotent."""


class ExecutionBackend(abc.ABC):
    name: ClassVar[str]
    uses_work_dir: ClassVar[bool] = True
    """False for backends that never touch ``ctx.work_dir`` (the agent then skips making it)."""

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        self.options: Mapping[str, str] = dict(options or {})

    async def health(self) -> BackendHealth:
        return BackendHealth(ok=True)

    @abc.abstractmethod
    async def start(self, ctx: ExecutionContext) -> Execution:
        """Start the job; raise nothing for bad payloads: return an Execution whose wait()
        gives a non-retryable failure instead (see ``FinishedExecution``)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the backend holds (pools, warm VMs)."""


class FinishedExecution(Execution):
    """An execution that was over before it began (bad payload, nothing to run)."""

    def __init__(self, outcome: Outcome) -> None:
        self._outcome = outcome

    async def wait(self) -> Outcome:
        return self._outcome

    async def cancel(self) -> None:
        return None
