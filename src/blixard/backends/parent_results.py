"""Parents' results for the subprocess-based backends (``process``, ``python``).

A job with parents (``depends_on``, the steps of a workflow) gets them written to
``parent_results.json`` in its work dir: a JSON object of each parent's result by its step
name, or by its job id when it has no step. The file's absolute path goes into the job's
environment as ``BLIXARD_PARENT_RESULTS`` (see ``subprocesses.job_environment``). A job
without parents gets neither.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Final

import orjson

from blixard.backends.base import ExecutionContext, FinishedExecution, Outcome

PARENT_RESULTS_FILE: Final = "parent_results.json"
PARENT_RESULTS_ENV: Final = "BLIXARD_PARENT_RESULTS"


class ParentResultsUnwritable(Exception):
    """The parents' results could not be written to the work dir (a retryable failure)."""

    def __init__(self, path: Path, exc: OSError) -> None:
        super().__init__(f"cannot write the parents' results to {path}: {exc.strerror or exc}")

    def execution(self) -> FinishedExecution:
        return FinishedExecution(Outcome.failure("spawn", str(self)))


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


async def write_parent_results(ctx: ExecutionContext) -> Path | None:
    """For a job with parents, write their results (JSON) to ``parent_results.json`` in the
    work dir, off the event loop, and return its absolute path; None for a job without.
    Raises ``ParentResultsUnwritable``."""
    results = ctx.job.parent_results
    if results is None:
        return None
    path = (ctx.work_dir / PARENT_RESULTS_FILE).absolute()
    data = orjson.dumps(dict(results))
    try:
        await asyncio.to_thread(_write_file, path, data)
    except OSError as exc:
        raise ParentResultsUnwritable(path, exc) from exc
    return path
