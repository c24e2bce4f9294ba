"""Parents' results reach the jobs of the process and python backends (real children)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from blixard.backends.base import Assignment, ExecutionBackend, ExecutionContext, Outcome
from blixard.backends.parent_results import PARENT_RESULTS_ENV, PARENT_RESULTS_FILE
from blixard.backends.process import ProcessBackend
from blixard.backends.python import PythonBackend

WAIT_S = 10.0
PARENTS = {"build": {"exit_code": 0, "stdout": "v1.2\n"}, "fetch": [1, 2, 3]}

MODULE = """
import json, os

def with_parents(x, parents=None):
    return {"x": x, "parents": parents}

def keyword_only(*, parents):
    return parents

def without_parameter():
    path = os.environ.get("BLIXARD_PARENT_RESULTS")
    return None if path is None else json.load(open(path))

def accepts_anything(**kwargs):
    return sorted(kwargs)

async def coroutine(parents):
    return list(parents)
"""


async def run(
    backend: ExecutionBackend,
    work_dir: Path,
    payload: dict[str, Any],
    parents: dict[str, Any] | None,
) -> Outcome:
    job = Assignment(
        job_id="job-1",
        attempt=1,
        queue="default",
        tenant="default",
        payload=payload,
        parent_results=parents,
    )
    execution = await backend.start(ExecutionContext(job=job, work_dir=work_dir))
    return await asyncio.wait_for(execution.wait(), WAIT_S)


async def test_a_process_job_reads_its_parents_results_from_the_file(tmp_path: Path) -> None:
    work = tmp_path / "work"
    payload = {
        "command": ["sh", "-c", f'echo "${PARENT_RESULTS_ENV}"; cat "${PARENT_RESULTS_ENV}"']
    }
    outcome = await run(ProcessBackend(), work, payload, PARENTS)
    assert outcome.ok, outcome
    path, content = outcome.result["stdout"].split("\n", 1)
    assert path == str((work / PARENT_RESULTS_FILE).absolute())
    assert json.loads(content) == PARENTS


async def test_a_relative_work_dir_still_gives_an_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    payload = {"command": ["sh", "-c", f'cd /; cat "${PARENT_RESULTS_ENV}"'], "cwd": "."}
    outcome = await run(ProcessBackend(), Path("rel"), payload, {"a": 1})
    assert outcome.ok, outcome
    assert json.loads(outcome.result["stdout"]) == {"a": 1}


async def test_a_job_without_parents_has_no_file_nor_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PARENT_RESULTS_ENV, "/stale/from/the/worker")
    payload = {"command": ["sh", "-c", f'echo "[${{{PARENT_RESULTS_ENV}-unset}}]"; ls']}
    outcome = await run(ProcessBackend(), tmp_path, payload, None)
    assert outcome.result["stdout"] == "[unset]\n", outcome


async def test_parents_with_no_results_give_an_empty_object(tmp_path: Path) -> None:
    payload = {"command": ["sh", "-c", f'cat "${PARENT_RESULTS_ENV}"']}
    outcome = await run(ProcessBackend(), tmp_path, payload, {})
    assert outcome.result["stdout"] == "{}", outcome


@pytest.fixture
def python_dir(tmp_path: Path) -> Path:
    (tmp_path / "parents_mod.py").write_text(MODULE)
    return tmp_path


@pytest.mark.parametrize(
    ("payload", "result"),
    [
        ({"function": "parents_mod:with_parents", "args": [1]}, {"x": 1, "parents": PARENTS}),
        ({"function": "parents_mod:keyword_only"}, PARENTS),
        ({"function": "parents_mod:without_parameter"}, PARENTS),
        ({"function": "parents_mod:accepts_anything", "kwargs": {"a": 1}}, ["a"]),
        ({"function": "parents_mod:coroutine"}, ["build", "fetch"]),
        # Arguments the payload gives win over the parents.
        (
            {"function": "parents_mod:with_parents", "args": [1, "given"]},
            {"x": 1, "parents": "given"},
        ),
        (
            {"function": "parents_mod:with_parents", "kwargs": {"x": 2, "parents": None}},
            {"x": 2, "parents": None},
        ),
    ],
)
async def test_a_python_function_gets_its_parents_results(
    python_dir: Path, payload: dict[str, Any], result: Any
) -> None:
    outcome = await run(PythonBackend(), python_dir, payload, PARENTS)
    assert outcome == Outcome.success(result)


async def test_a_python_job_without_parents_gets_none(python_dir: Path) -> None:
    payload = {"function": "parents_mod:with_parents", "args": [3]}
    outcome = await run(PythonBackend(), python_dir, payload, None)
    assert outcome == Outcome.success({"x": 3, "parents": None})
    outcome = await run(
        PythonBackend(), python_dir, {"function": "parents_mod:without_parameter"}, None
    )
    assert outcome == Outcome.success(None)


async def test_an_unwritable_work_dir_is_a_retryable_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    payload = {"command": ["true"], "cwd": "."}
    outcome = await run(ProcessBackend(), blocker / "work", payload, PARENTS)
    assert not outcome.ok
    assert outcome.retryable
    assert outcome.error is not None
    assert outcome.error["kind"] == "spawn"
    assert "parents' results" in outcome.error["message"]
