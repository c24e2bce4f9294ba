"""The ``mock`` backend: jobs that pretend to run, in-process, for tests and benchmarks.

Payload (all optional; other fields are ignored):

- ``duration``: seconds the job "runs" (default 0: it is over as soon as it starts).
- ``fail``: fail every attempt (default false).
- ``fail_attempts``: fail while the attempt number is ``<= fail_attempts``, then succeed.
- ``retryable``: whether the failure is retryable (default true).
- ``result``: the result on success (any JSON; default ``{"ok": true}``).
- ``output``: a string written to the ``stdout`` output stream when the job starts.
- ``error_message``: the failure's message.

Failures have kind ``mock_failure`` (with ``attempt``); bad fields give a non-retryable
``invalid_payload``; a cancelled job ends with kind ``cancelled``. Each job costs a couple
of object allocations (plus one timer if it has a duration).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, ClassVar

from blixard.backends.base import (
    Execution,
    ExecutionBackend,
    ExecutionContext,
    FinishedExecution,
    Outcome,
)

_DEFAULT_RESULT: dict[str, Any] = {"ok": True}
_CANCELLED = Outcome.failure("cancelled", "cancelled while running")


def _invalid(field: str, reason: str) -> FinishedExecution:
    return FinishedExecution(
        Outcome.failure("invalid_payload", f"{field}: {reason}", retryable=False, field=field)
    )


class MockExecution(Execution):
    """Ends with ``outcome`` after ``duration`` seconds, or ``cancelled`` when cancelled."""

    def __init__(self, outcome: Outcome, duration: float) -> None:
        loop = asyncio.get_running_loop()
        self._done: asyncio.Future[Outcome] = loop.create_future()
        self._timer = loop.call_later(duration, self._finish, outcome)

    def _finish(self, outcome: Outcome) -> None:
        if not self._done.done():
            self._done.set_result(outcome)

    async def wait(self) -> Outcome:
        return await asyncio.shield(self._done)

    async def cancel(self) -> None:
        self._timer.cancel()
        self._finish(_CANCELLED)


def _number(payload: dict[str, Any], key: str) -> float | None:
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(key, f"must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise _Invalid(key, f"must be a finite number >= 0, got {value}")
    return value


def _flag(payload: dict[str, Any], key: str, default: bool) -> bool:
    value = payload.get(key, default)
    if not isinstance(value, bool):
        raise _Invalid(key, f"must be true or false, got {type(value).__name__}")
    return value


def _string(payload: dict[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if value is not None and not isinstance(value, str):
        raise _Invalid(key, f"must be a string, got {type(value).__name__}")
    return value


class _Invalid(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.field = field
        self.reason = reason


class MockBackend(ExecutionBackend):
    uses_work_dir = False
    name: ClassVar[str] = "mock"

    async def start(self, ctx: ExecutionContext) -> Execution:
        payload = ctx.job.payload
        if not payload:  # the common benchmark case: succeed at once
            return FinishedExecution(Outcome.success(dict(_DEFAULT_RESULT)))
        try:
            duration = _number(payload, "duration") or 0.0
            fail_attempts = payload.get("fail_attempts", 0)
            if isinstance(fail_attempts, bool) or not isinstance(fail_attempts, int):
                raise _Invalid(
                    "fail_attempts", f"must be an integer, got {type(fail_attempts).__name__}"
                )
            fail = _flag(payload, "fail", False) or ctx.job.attempt <= fail_attempts
            retryable = _flag(payload, "retryable", True)
            output = _string(payload, "output")
            error_message = _string(payload, "error_message")
        except _Invalid as exc:
            return _invalid(exc.field, exc.reason)

        if fail:
            outcome = Outcome.failure(
                "mock_failure",
                error_message or f"mock failure on attempt {ctx.job.attempt}",
                retryable=retryable,
                attempt=ctx.job.attempt,
            )
        else:
            result = payload["result"] if "result" in payload else dict(_DEFAULT_RESULT)
            outcome = Outcome.success(result)
        if output:
            ctx.on_output("stdout", output.encode())
        if duration <= 0:
            return FinishedExecution(outcome)
        return MockExecution(outcome, duration)
