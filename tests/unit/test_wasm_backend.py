"""The ``wasm`` backend with real wasmtime and small WAT modules written here."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("wasmtime")

from blixard.backends import wasm
from blixard.backends.base import Assignment, ExecutionContext, Outcome
from blixard.backends.registry import load_backend
from blixard.backends.wasm import WasmBackend

WAIT_S = 10.0

WASI = '(import "wasi_snapshot_preview1"'

HELLO = f"""
(module
  {WASI} "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello-wasm\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 11))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""

# Copies stdin to stdout (one read of up to 4096 bytes).
ECHO_STDIN = f"""
(module
  {WASI} "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  {WASI} "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 4096))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store (i32.const 4) (i32.load (i32.const 8)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""

# Writes its argv buffer (NUL-separated) to stdout and its environ buffer to stderr.
ARGS_ENV = f"""
(module
  {WASI} "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  {WASI} "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  {WASI} "args_get" (func $args_get (param i32 i32) (result i32)))
  {WASI} "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  {WASI} "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func $write (param $fd i32) (param $len i32)
    (i32.store (i32.const 0) (i32.const 4096))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start")
    (drop (call $args_sizes_get (i32.const 16) (i32.const 20)))
    (drop (call $args_get (i32.const 1024) (i32.const 4096)))
    (call $write (i32.const 1) (i32.load (i32.const 20)))
    (drop (call $environ_sizes_get (i32.const 16) (i32.const 20)))
    (drop (call $environ_get (i32.const 1024) (i32.const 4096)))
    (call $write (i32.const 2) (i32.load (i32.const 20)))))
"""

EXIT_3 = f"""
(module
  {WASI} "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $proc_exit (i32.const 3))))
"""

LOOP = """
(module
  (memory (export "memory") 1)
  (func (export "_start") (loop $l (br $l))))
"""

# Grows its memory a page at a time, like an allocator, and aborts when growth fails.
GROW = """
(module
  (memory (export "memory") 1)
  (func (export "_start")
    (loop $l
      (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
      (br $l))))
"""

BIG_MEMORY = """(module (memory (export "memory") 100) (func (export "_start")))"""

DIVIDE_BY_ZERO = """
(module
  (memory (export "memory") 1)
  (func (export "_start") (drop (i32.div_s (i32.const 1) (i32.const 0)))))
"""


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Recorder:
    def __init__(self) -> None:
        self.chunks: list[tuple[str, bytes]] = []

    def __call__(self, stream: str, chunk: bytes) -> None:
        self.chunks.append((stream, chunk))

    def text(self, stream: str) -> str:
        return b"".join(c for s, c in self.chunks if s == stream).decode()


def make_ctx(
    work_dir: Path,
    payload: dict[str, Any],
    *,
    timeout_s: float | None = None,
    sink: Recorder | None = None,
) -> ExecutionContext:
    job = Assignment(
        job_id="job-1",
        attempt=1,
        queue="default",
        tenant="default",
        payload=payload,
        timeout_s=timeout_s,
    )
    return ExecutionContext(job=job, work_dir=work_dir, on_output=sink or Recorder())


async def run(
    backend: WasmBackend,
    work_dir: Path,
    payload: dict[str, Any],
    *,
    timeout_s: float | None = None,
    sink: Recorder | None = None,
) -> Outcome:
    execution = await backend.start(make_ctx(work_dir, payload, timeout_s=timeout_s, sink=sink))
    return await asyncio.wait_for(execution.wait(), WAIT_S)


@pytest.fixture
def backend() -> WasmBackend:
    return WasmBackend({"max_fuel": str(10**15)})


def error_kind(outcome: Outcome) -> str:
    assert not outcome.ok, outcome
    assert outcome.error is not None
    return str(outcome.error["kind"])


async def test_hello_to_stdout(backend: WasmBackend, tmp_path: Path) -> None:
    sink = Recorder()
    outcome = await run(backend, tmp_path, {"module_base64": b64(HELLO)}, sink=sink)
    assert outcome.ok, outcome
    assert outcome.result["exit_code"] == 0
    assert outcome.result["stdout"] == "hello-wasm\n"
    assert outcome.result["stderr"] == ""
    assert outcome.result["truncated"] == {"stdout": False, "stderr": False}
    assert 0 < outcome.result["fuel_consumed"] < 1000
    await asyncio.sleep(0)  # output chunks are delivered on the loop
    assert sink.text("stdout") == "hello-wasm\n"
    assert (tmp_path / "stdout.txt").read_text() == "hello-wasm\n"


async def test_module_path_wat_and_wasm(backend: WasmBackend, tmp_path: Path) -> None:
    import wasmtime

    wat = tmp_path / "hello.wat"
    wat.write_text(HELLO)
    binary = tmp_path / "hello.wasm"
    binary.write_bytes(wasmtime.wat2wasm(HELLO))
    for path in (wat, binary):
        outcome = await run(backend, tmp_path / path.suffix[1:], {"module_path": str(path)})
        assert outcome.ok, outcome
        assert outcome.result["stdout"] == "hello-wasm\n"


async def test_stdin(backend: WasmBackend, tmp_path: Path) -> None:
    payload = {"module_base64": b64(ECHO_STDIN), "stdin": "from stdin\n"}
    outcome = await run(backend, tmp_path, payload)
    assert outcome.ok, outcome
    assert outcome.result["stdout"] == "from stdin\n"


async def test_args_and_env(backend: WasmBackend, tmp_path: Path) -> None:
    path = tmp_path / "args.wat"
    path.write_text(ARGS_ENV)
    payload = {"module_path": str(path), "args": ["a", "b c"], "env": {"GREETING": "hi"}}
    outcome = await run(backend, tmp_path / "work", payload)
    assert outcome.ok, outcome
    assert outcome.result["stdout"].split("\0") == ["args.wat", "a", "b c", ""]
    env = set(outcome.result["stderr"].split("\0")) - {""}
    assert env == {"GREETING=hi", "BLIXARD_JOB_ID=job-1", "BLIXARD_JOB_ATTEMPT=1"}


async def test_non_zero_exit(backend: WasmBackend, tmp_path: Path) -> None:
    outcome = await run(backend, tmp_path, {"module_base64": b64(EXIT_3)})
    assert error_kind(outcome) == "exit_code"
    assert outcome.error is not None
    assert outcome.error["exit_code"] == 3
    assert outcome.retryable


async def test_infinite_loop_runs_out_of_fuel(backend: WasmBackend, tmp_path: Path) -> None:
    outcome = await run(backend, tmp_path, {"module_base64": b64(LOOP), "fuel": 100_000})
    assert error_kind(outcome) == "out_of_fuel"
    assert outcome.error is not None
    assert outcome.error["fuel"] == 100_000
    assert not outcome.retryable


async def test_fuel_is_capped_by_the_worker(tmp_path: Path) -> None:
    backend = WasmBackend({"max_fuel": "5000"})
    started = time.monotonic()
    outcome = await run(backend, tmp_path, {"module_base64": b64(LOOP), "fuel": 10**15})
    assert error_kind(outcome) == "out_of_fuel"
    assert outcome.error is not None
    assert outcome.error["fuel"] == 5000
    assert time.monotonic() - started < 2


async def test_growing_memory_past_the_limit(backend: WasmBackend, tmp_path: Path) -> None:
    outcome = await run(backend, tmp_path, {"module_base64": b64(GROW), "memory_mb": 1})
    assert error_kind(outcome) == "memory_limit"
    assert outcome.error is not None
    assert outcome.error["memory_mb"] == 1
    assert not outcome.retryable


async def test_initial_memory_over_the_limit(backend: WasmBackend, tmp_path: Path) -> None:
    outcome = await run(backend, tmp_path, {"module_base64": b64(BIG_MEMORY), "memory_mb": 1})
    assert error_kind(outcome) == "memory_limit"


async def test_other_traps(backend: WasmBackend, tmp_path: Path) -> None:
    outcome = await run(backend, tmp_path, {"module_base64": b64(DIVIDE_BY_ZERO)})
    assert error_kind(outcome) == "trap"
    assert outcome.error is not None
    assert outcome.error["trap_code"] == "integer_division_by_zero"


async def test_wall_time_timeout_with_plenty_of_fuel(backend: WasmBackend, tmp_path: Path) -> None:
    started = time.monotonic()
    payload = {"module_base64": b64(LOOP), "fuel": 10**15}
    outcome = await run(backend, tmp_path, payload, timeout_s=0.3)
    elapsed = time.monotonic() - started
    assert error_kind(outcome) == "timeout"
    assert outcome.error is not None
    assert outcome.error["timeout_s"] == 0.3
    assert 0.25 < elapsed < 3, elapsed


async def test_cancel_interrupts_only_that_job(backend: WasmBackend, tmp_path: Path) -> None:
    payload = {"module_base64": b64(LOOP), "fuel": 10**15}
    doomed = await backend.start(make_ctx(tmp_path / "a", payload))
    other = await backend.start(make_ctx(tmp_path / "b", payload, timeout_s=1.0))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await doomed.cancel()
    outcome = await asyncio.wait_for(doomed.wait(), 1)
    assert time.monotonic() - started < 1
    assert error_kind(outcome) == "cancelled"
    await doomed.cancel()  # idempotent
    # The other job, on an engine of its own, kept running until its own timeout.
    assert error_kind(await asyncio.wait_for(other.wait(), WAIT_S)) == "timeout"


async def test_close_cancels_running_jobs(backend: WasmBackend, tmp_path: Path) -> None:
    payload = {"module_base64": b64(LOOP), "fuel": 10**15}
    execution = await backend.start(make_ctx(tmp_path, payload))
    await asyncio.sleep(0.05)
    await asyncio.wait_for(backend.close(), 2)
    assert error_kind(await execution.wait()) == "cancelled"


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("garbage", "does not compile"),
        ('(module (import "env" "f" (func)) (func (export "_start")))', "instantiated"),
        ('(module (func (export "main")))', "_start"),
    ],
)
async def test_invalid_module(
    backend: WasmBackend, tmp_path: Path, source: str, fragment: str
) -> None:
    outcome = await run(backend, tmp_path, {"module_base64": b64(source)})
    assert error_kind(outcome) == "invalid_module"
    assert outcome.error is not None
    assert fragment in outcome.error["message"]
    assert not outcome.retryable


async def test_missing_module_file(backend: WasmBackend, tmp_path: Path) -> None:
    outcome = await run(backend, tmp_path, {"module_path": str(tmp_path / "nope.wasm")})
    assert error_kind(outcome) == "invalid_module"
    assert outcome.retryable  # another worker may have the file


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "module_path"),
        ({"module_path": "/x.wasm", "module_base64": "AA=="}, "module_path"),
        ({"module_path": "/etc/passwd"}, "module_path"),
        ({"module_path": "blob:sha256:abc"}, "module_path"),
        ({"module_base64": "not base64!"}, "module_base64"),
        ({"module_base64": b64(HELLO), "args": "a b"}, "args"),
        ({"module_base64": b64(HELLO), "args": [1]}, "args[0]"),
        ({"module_base64": b64(HELLO), "env": {"A": 1}}, "env.A"),
        ({"module_base64": b64(HELLO), "stdin": 5}, "stdin"),
        ({"module_base64": b64(HELLO), "fuel": -1}, "fuel"),
        ({"module_base64": b64(HELLO), "memory_mb": "big"}, "memory_mb"),
    ],
)
async def test_invalid_payload(
    backend: WasmBackend, tmp_path: Path, payload: dict[str, Any], field: str
) -> None:
    outcome = await run(backend, tmp_path, payload)
    assert error_kind(outcome) == "invalid_payload"
    assert outcome.error is not None
    assert outcome.error["field"] == field
    assert not outcome.retryable


async def test_second_run_uses_the_compiled_module(backend: WasmBackend, tmp_path: Path) -> None:
    payload = {"module_base64": b64(HELLO)}
    for i in range(3):
        outcome = await run(backend, tmp_path / str(i), payload)
        assert outcome.ok, outcome
    assert backend.cache.compiles == 1
    assert (await run(backend, tmp_path / "other", {"module_base64": b64(ECHO_STDIN)})).ok
    assert backend.cache.compiles == 2


async def test_cache_is_bounded(tmp_path: Path) -> None:
    backend = WasmBackend({"cache_size": "1"})
    for i, source in enumerate((HELLO, ECHO_STDIN, HELLO)):
        assert (await run(backend, tmp_path / str(i), {"module_base64": b64(source)})).ok
    assert len(backend.cache) == 1
    assert backend.cache.compiles == 3  # HELLO was dropped when ECHO_STDIN came in


async def test_health_reports_the_wasmtime_version() -> None:
    health = await WasmBackend().health()
    assert health.ok, health
    assert health.capabilities["wasmtime"] == wasm._wasmtime_version()
    assert health.capabilities["wasmtime"] != "unknown"


async def test_health_without_wasmtime_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(wasm, "wasmtime", None)
    health = await WasmBackend().health()
    assert not health.ok
    assert "pip install 'blixard[wasm]'" in health.detail


def test_registered_by_name() -> None:
    assert isinstance(load_backend("wasm", {"tail_bytes": "10"}), WasmBackend)
