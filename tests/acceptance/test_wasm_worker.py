"""A WebAssembly module end to end: ``blixard submit`` to a real server, run by a real
``blixard worker --type wasm``."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

pytest.importorskip("wasmtime")

from support.processes import ProcessGroup, describe_run, run_cli

pytestmark = pytest.mark.acceptance

HELLO = """
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from wasm\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 16))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""

LOOP = '(module (func (export "_start") (loop $l (br $l))))'


@pytest.fixture
def server_url(procs: ProcessGroup) -> str:
    server = procs.start_server()
    worker = procs.start_worker(server.url, "wasm", concurrency=2)
    assert worker.record() is not None
    return server.url


def submit(url: str, payload: dict[str, object], *flags: str) -> dict[str, object]:
    result = run_cli(
        "submit",
        "--wait",
        "--json",
        "--type",
        "wasm",
        *flags,
        json.dumps(payload),
        env={"BLIXARD_SERVER": url},
        timeout=60,
    )
    job: dict[str, object] = json.loads(result.stdout)
    assert isinstance(job, dict), describe_run(result)
    return job


def test_a_module_runs_on_a_wasm_worker(
    procs: ProcessGroup, server_url: str, tmp_path: Path
) -> None:
    payload = {"module_base64": base64.b64encode(HELLO.encode()).decode()}
    job = submit(server_url, payload)
    assert job["status"] == "completed", (job, procs.describe())
    result = job["result"]
    assert isinstance(result, dict)
    assert result["exit_code"] == 0
    assert result["stdout"] == "hello from wasm\n"

    # The same module from a file on the worker.
    path = tmp_path / "hello.wat"
    path.write_text(HELLO)
    job = submit(server_url, {"module_path": str(path)})
    assert job["status"] == "completed", (job, procs.describe())
    assert isinstance(job["result"], dict)
    assert job["result"]["stdout"] == "hello from wasm\n"


def test_a_module_out_of_fuel_fails_with_that_reason(procs: ProcessGroup, server_url: str) -> None:
    payload = {"module_base64": base64.b64encode(LOOP.encode()).decode(), "fuel": 10_000}
    job = submit(server_url, payload, "--max-attempts", "1")
    assert job["status"] == "failed", (job, procs.describe())
    assert isinstance(job["error"], dict), job
    assert job["error"]["kind"] == "out_of_fuel", job


def test_a_wasm_worker_without_wasmtime_fails_at_start_up(tmp_path: Path) -> None:
    # A ``wasmtime`` package that cannot be imported shadows the installed one.
    stub = tmp_path / "stub" / "wasmtime"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('wasmtime is missing (test stub)')\n")
    result = run_cli(
        "worker",
        "--type",
        "wasm",
        "--server",
        "http://127.0.0.1:9",
        env={"PYTHONPATH": str(stub.parent)},
        timeout=30,
    )
    assert result.returncode != 0, describe_run(result)
    assert "pip install 'blixard[wasm]'" in result.stderr, describe_run(result)
