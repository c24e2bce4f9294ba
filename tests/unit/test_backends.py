"""The built-in execution backends and the registry, with real child processes."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from blixard.backends.base import (
    Assignment,
    Execution,
    ExecutionBackend,
    ExecutionContext,
    Outcome,
)
from blixard.backends.mock import MockBackend
from blixard.backends.process import ProcessBackend
from blixard.backends.python import PythonBackend
from blixard.backends.registry import (
    available_backends,
    load_backend,
    register_backend,
    unregister_backend,
)
from blixard.errors import BackendError, BackendNotFound

HERE = Path(__file__).resolve().parent
WAIT_S = 5.0


class Recorder:
    """An OutputSink that keeps every chunk, in order."""

    def __init__(self) -> None:
        self.chunks: list[tuple[str, bytes]] = []

    def __call__(self, stream: str, chunk: bytes) -> None:
        self.chunks.append((stream, chunk))

    def text(self, stream: str) -> str:
        return b"".join(c for s, c in self.chunks if s == stream).decode()


def make_ctx(
    work_dir: Path, payload: dict[str, Any], *, attempt: int = 1, sink: Recorder | None = None
) -> ExecutionContext:
    job = Assignment(
        job_id="job-1", attempt=attempt, queue="default", tenant="default", payload=payload
    )
    return ExecutionContext(job=job, work_dir=work_dir, on_output=sink or Recorder())


async def run(
    backend: ExecutionBackend,
    work_dir: Path,
    payload: dict[str, Any],
    *,
    attempt: int = 1,
    sink: Recorder | None = None,
) -> Outcome:
    execution = await backend.start(make_ctx(work_dir, payload, attempt=attempt, sink=sink))
    return await asyncio.wait_for(execution.wait(), WAIT_S)


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie nobody reaps counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat[stat.rfind(")") + 2] not in "ZX"


async def eventually(predicate: Any, within: float = WAIT_S) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate}")
        await asyncio.sleep(0.01)


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


# -- process ------------------------------------------------------------------------------------


async def test_process_argv_command(tmp_path: Path) -> None:
    outcome = await run(ProcessBackend(), tmp_path, {"command": ["echo", "hello", "$HOME"]})
    assert outcome.ok
    assert outcome.result == {
        "exit_code": 0,
        "stdout": "hello $HOME\n",
        "stderr": "",
        "truncated": {"stdout": False, "stderr": False},
    }


async def test_process_shell_command(tmp_path: Path) -> None:
    outcome = await run(ProcessBackend(), tmp_path, {"command": "echo $((1 + 2)); echo oops >&2"})
    assert outcome.ok
    assert outcome.result["stdout"] == "3\n"
    assert outcome.result["stderr"] == "oops\n"


async def test_process_env_is_merged_over_the_worker_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BLIXARD_TEST_INHERITED", "from-worker")
    payload = {
        "command": 'echo "$FOO|$BLIXARD_TEST_INHERITED|$BLIXARD_JOB_ID|$BLIXARD_JOB_ATTEMPT"',
        "env": {"FOO": "bar baz"},
    }
    outcome = await run(ProcessBackend(), tmp_path, payload, attempt=2)
    assert outcome.result["stdout"] == "bar baz|from-worker|job-1|2\n"


async def test_process_env_without_inheritance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BLIXARD_TEST_INHERITED", "from-worker")
    code = "import os; print(os.environ.get('BLIXARD_TEST_INHERITED'), os.environ['FOO'])"
    backend = ProcessBackend({"inherit_env": "false"})
    outcome = await run(backend, tmp_path, {"command": py(code), "env": {"FOO": "1"}})
    assert outcome.result["stdout"] == "None 1\n"


async def test_process_cwd_defaults_to_work_dir(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    outcome = await run(ProcessBackend(), tmp_path, {"command": ["pwd"]})
    assert Path(outcome.result["stdout"].strip()) == tmp_path
    outcome = await run(ProcessBackend(), tmp_path, {"command": ["pwd"], "cwd": "sub"})
    assert Path(outcome.result["stdout"].strip()) == tmp_path / "sub"
    absolute = str(tmp_path / "sub")
    outcome = await run(
        ProcessBackend(), tmp_path / "elsewhere", {"command": "pwd", "cwd": absolute}
    )
    assert outcome.result["stdout"].strip() == absolute


async def test_process_stdin(tmp_path: Path) -> None:
    text = "line one\nhéllo ✓\n" * 1000
    sink = Recorder()
    outcome = await run(ProcessBackend(), tmp_path, {"command": ["cat"], "stdin": text}, sink=sink)
    assert outcome.ok
    complete = sink.text("stdout") == text  # not `==` in the assert: no giant diff on failure
    assert complete
    tail = outcome.result["stdout"]
    assert text.endswith(tail)
    assert 16384 - 3 <= len(tail.encode()) <= 16384  # a cut multi-byte character is dropped
    assert outcome.result["truncated"]["stdout"]
    outcome = await run(ProcessBackend(), tmp_path, {"command": ["cat"]})
    assert outcome.result["stdout"] == ""  # no stdin: /dev/null, not the worker's


async def test_process_stdin_not_read(tmp_path: Path) -> None:
    payload = {"command": ["true"], "stdin": "x" * 1_000_000}
    outcome = await run(ProcessBackend(), tmp_path, payload)
    assert outcome.ok


async def test_process_nonzero_exit(tmp_path: Path) -> None:
    outcome = await run(ProcessBackend(), tmp_path, {"command": "echo partial; exit 7"})
    assert not outcome.ok
    assert outcome.retryable
    assert outcome.error is not None
    assert outcome.error["kind"] == "exit_code"
    assert outcome.error["message"] == "exited with code 7"
    assert outcome.error["exit_code"] == 7
    assert outcome.error["stdout"] == "partial\n"


async def test_process_killed_by_signal(tmp_path: Path) -> None:
    outcome = await run(ProcessBackend(), tmp_path, {"command": "kill -KILL $$"})
    assert outcome.error is not None
    assert outcome.error["kind"] == "signal"
    assert outcome.error["signal"] == "SIGKILL"
    assert "SIGKILL" in outcome.error["message"]


async def test_process_command_not_found(tmp_path: Path) -> None:
    outcome = await run(ProcessBackend(), tmp_path, {"command": ["/no/such/program", "x"]})
    assert outcome.error is not None
    assert outcome.error["kind"] == "spawn"
    assert "/no/such/program" in outcome.error["message"]
    assert not outcome.retryable


async def test_process_command_not_executable(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    outcome = await run(ProcessBackend(), tmp_path, {"command": [str(script)]})
    assert outcome.error is not None
    assert outcome.error["kind"] == "spawn"
    assert not outcome.retryable


async def test_process_missing_cwd(tmp_path: Path) -> None:
    outcome = await run(ProcessBackend(), tmp_path, {"command": ["pwd"], "cwd": "missing"})
    assert outcome.error is not None
    assert outcome.error["kind"] == "spawn"
    assert "missing" in outcome.error["message"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "command"),
        ({"command": 5}, "command"),
        ({"command": ""}, "command"),
        ({"command": []}, "command"),
        ({"command": ["echo", 1]}, "command[1]"),
        ({"command": ["echo", "a\x00b"]}, "command[1]"),
        ({"command": ["echo"], "env": ["A=1"]}, "env"),
        ({"command": ["echo"], "env": {"A": 1}}, "env.A"),
        ({"command": ["echo"], "env": {"A=B": "1"}}, "env"),
        ({"command": ["echo"], "cwd": 3}, "cwd"),
        ({"command": ["echo"], "stdin": {"a": 1}}, "stdin"),
    ],
)
async def test_process_invalid_payload(tmp_path: Path, payload: dict[str, Any], field: str) -> None:
    outcome = await run(ProcessBackend(), tmp_path, payload)
    assert outcome.error is not None
    assert outcome.error["kind"] == "invalid_payload"
    assert outcome.error["message"].startswith(f"{field}: ")
    assert not outcome.retryable


async def test_process_output_tail_is_bounded(tmp_path: Path) -> None:
    total = 5 * 1024 * 1024
    code = (
        "import sys\n"
        f"sys.stdout.buffer.write(b'x' * ({total} - 4) + b'END\\n')\n"
        "sys.stderr.write('small\\n')\n"
    )
    seen = {"stdout": 0, "stderr": 0}

    def count(stream: str, chunk: bytes) -> None:
        seen[stream] += len(chunk)

    backend = ProcessBackend({"tail_bytes": "1024"})
    job = make_ctx(tmp_path, {"command": py(code)}).job
    execution = await backend.start(ExecutionContext(job, tmp_path, on_output=count))
    outcome = await asyncio.wait_for(execution.wait(), WAIT_S)
    assert outcome.ok
    assert seen == {"stdout": total, "stderr": 6}
    assert len(outcome.result["stdout"]) == 1024
    assert outcome.result["stdout"].endswith("xxxEND\n")
    assert outcome.result["stderr"] == "small\n"
    assert outcome.result["truncated"] == {"stdout": True, "stderr": False}


async def test_process_output_streams_in_order(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "for i in range(5):\n"
        "    print(f'out {i}', flush=True)\n"
        "    print(f'err {i}', file=sys.stderr, flush=True)\n"
        "    time.sleep(0.05)\n"
    )
    sink = Recorder()
    backend = ProcessBackend()
    execution = await backend.start(make_ctx(tmp_path, {"command": py(code)}, sink=sink))
    await eventually(lambda: sink.text("stdout").startswith("out 0\n"))
    assert not sink.text("stdout").endswith("out 4\n")  # streamed, not delivered at exit
    outcome = await asyncio.wait_for(execution.wait(), WAIT_S)
    assert outcome.ok
    assert sink.text("stdout") == "".join(f"out {i}\n" for i in range(5))
    assert sink.text("stderr") == "".join(f"err {i}\n" for i in range(5))
    assert len(sink.chunks) >= 2


async def test_process_cancel_kills_the_process_group(tmp_path: Path) -> None:
    sink = Recorder()
    backend = ProcessBackend()
    execution = await backend.start(
        make_ctx(tmp_path, {"command": "sleep 100 & echo $!; sleep 100"}, sink=sink)
    )
    await eventually(lambda: sink.text("stdout").endswith("\n"))
    grandchild = int(sink.text("stdout"))
    assert alive(grandchild)
    started = time.monotonic()
    await asyncio.gather(execution.cancel(), execution.cancel())
    outcome = await asyncio.wait_for(execution.wait(), WAIT_S)
    assert time.monotonic() - started < 2
    assert outcome.error is not None
    assert outcome.error["kind"] == "cancelled"
    await eventually(lambda: not alive(grandchild), within=2)
    await execution.cancel()  # idempotent, also after the end
    assert await execution.wait() == outcome


async def test_process_cancel_escalates_to_sigkill(tmp_path: Path) -> None:
    sink = Recorder()
    backend = ProcessBackend({"kill_grace_s": "0.3"})
    command = "trap '' TERM; sleep 100 & echo $!; sleep 100"
    execution = await backend.start(make_ctx(tmp_path, {"command": command}, sink=sink))
    await eventually(lambda: sink.text("stdout").endswith("\n"))
    grandchild = int(sink.text("stdout"))
    started = time.monotonic()
    await execution.cancel()
    outcome = await asyncio.wait_for(execution.wait(), WAIT_S)
    assert 0.3 <= time.monotonic() - started < 3
    assert outcome.error is not None
    assert outcome.error["kind"] == "cancelled"
    await eventually(lambda: not alive(grandchild), within=2)


async def test_process_leftovers_are_killed_when_the_job_exits(tmp_path: Path) -> None:
    payload = {"command": "sleep 100 >/dev/null 2>&1 & echo $!"}
    outcome = await run(ProcessBackend(), tmp_path, payload)
    assert outcome.ok
    await eventually(lambda: not alive(int(outcome.result["stdout"])), within=2)


async def test_process_cancel_after_exit_keeps_the_outcome(tmp_path: Path) -> None:
    execution = await ProcessBackend().start(make_ctx(tmp_path, {"command": ["true"]}))
    outcome = await asyncio.wait_for(execution.wait(), WAIT_S)
    await execution.cancel()
    assert await execution.wait() == outcome
    assert outcome.ok


async def test_process_close_cancels_running_jobs(tmp_path: Path) -> None:
    backend = ProcessBackend()
    execution = await backend.start(make_ctx(tmp_path, {"command": ["sleep", "100"]}))
    await backend.close()
    outcome = await asyncio.wait_for(execution.wait(), WAIT_S)
    assert outcome.error is not None
    assert outcome.error["kind"] == "cancelled"


async def test_process_health_and_bad_options() -> None:
    health = await ProcessBackend().health()
    assert health.ok
    assert health.capabilities == {"shell": True}
    for options in ({"inherit_env": "maybe"}, {"tail_bytes": "-1"}, {"kill_grace_s": "soon"}):
        with pytest.raises(BackendError, match=next(iter(options))):
            ProcessBackend(options)


# -- python -------------------------------------------------------------------------------------


@pytest.fixture
def python_backend() -> PythonBackend:
    return PythonBackend({"path": str(HERE)})


async def test_python_success(tmp_path: Path, python_backend: PythonBackend) -> None:
    sink = Recorder()
    payload = {"function": "backend_funcs:add", "args": [2, 3], "kwargs": {"scale": 10}}
    outcome = await run(python_backend, tmp_path, payload, sink=sink)
    assert outcome == Outcome.success({"sum": 50, "cwd": str(tmp_path)})
    assert sink.text("stdout") == "adding 2 3\n"
    assert sink.text("stderr") == "to stderr\n"


async def test_python_exception(tmp_path: Path, python_backend: PythonBackend) -> None:
    payload = {"function": "backend_funcs:boom", "args": ["it broke"]}
    outcome = await run(python_backend, tmp_path, payload)
    assert outcome.error is not None
    assert outcome.error["kind"] == "exception"
    assert outcome.error["message"] == "it broke"
    assert outcome.error["type"] == "backend_funcs.ThingFailed"
    assert "in boom" in outcome.error["traceback"]
    assert "python_runner" not in outcome.error["traceback"]
    assert outcome.retryable


async def test_python_crash_with_os_exit(tmp_path: Path, python_backend: PythonBackend) -> None:
    outcome = await run(
        python_backend, tmp_path, {"function": "backend_funcs:hard_exit", "args": [3]}
    )
    assert outcome.error is not None
    assert outcome.error["kind"] == "crashed"
    assert outcome.error["exit_code"] == 3
    assert outcome.error["stdout"] == "about to exit\n"


async def test_python_crash_with_sys_exit(tmp_path: Path, python_backend: PythonBackend) -> None:
    outcome = await run(
        python_backend, tmp_path, {"function": "backend_funcs:soft_exit", "args": [0]}
    )
    assert outcome.error is not None
    assert outcome.error["kind"] == "crashed"
    assert outcome.error["exit_code"] == 0


async def test_python_crash_with_segfault(tmp_path: Path, python_backend: PythonBackend) -> None:
    outcome = await run(python_backend, tmp_path, {"function": "backend_funcs:segfault"})
    assert outcome.error is not None
    assert outcome.error["kind"] == "crashed"
    assert outcome.error["signal"] == "SIGSEGV"
    assert "Fatal Python error" in outcome.error["stderr"]  # faulthandler's traceback


async def test_python_hang_then_cancel(tmp_path: Path) -> None:
    backend = PythonBackend({"path": str(HERE), "kill_grace_s": "1"})
    pid_file = tmp_path / "pid"
    execution = await backend.start(
        make_ctx(tmp_path, {"function": "backend_funcs:hang", "args": [str(pid_file)]})
    )
    await eventually(lambda: pid_file.exists() and pid_file.read_text() != "")
    pid = int(pid_file.read_text())
    assert alive(pid)
    await execution.cancel()
    outcome = await asyncio.wait_for(execution.wait(), 2)
    assert outcome.error is not None
    assert outcome.error["kind"] == "cancelled"
    assert outcome.error["stdout"] == "hanging\n"
    await eventually(lambda: not alive(pid), within=2)


async def test_python_async_function(tmp_path: Path, python_backend: PythonBackend) -> None:
    outcome = await run(
        python_backend,
        tmp_path,
        {"function": "backend_funcs:async_mul", "kwargs": {"a": 6, "b": 7}},
    )
    assert outcome == Outcome.success(42)
    outcome = await run(python_backend, tmp_path, {"function": "backend_funcs:async_boom"})
    assert outcome.error is not None
    assert outcome.error["kind"] == "exception"
    assert outcome.error["type"] == "ValueError"
    assert "async_boom" in outcome.error["traceback"]


async def test_python_result_not_json(tmp_path: Path, python_backend: PythonBackend) -> None:
    outcome = await run(python_backend, tmp_path, {"function": "backend_funcs:not_json"})
    assert outcome.error is not None
    assert outcome.error["kind"] == "result_not_json"
    assert "set" in outcome.error["message"]
    assert not outcome.retryable


@pytest.mark.parametrize(
    "function",
    ["no_such_module_for_blixard:f", "backend_funcs:missing", "backend_funcs:NOT_CALLABLE"],
)
async def test_python_import_errors(
    tmp_path: Path, python_backend: PythonBackend, function: str
) -> None:
    outcome = await run(python_backend, tmp_path, {"function": function})
    assert outcome.error is not None
    assert outcome.error["kind"] == "import"
    assert not outcome.retryable


async def test_python_imports_from_the_job_cwd(tmp_path: Path) -> None:
    (tmp_path / "job_local_mod.py").write_text("def f(x):\n    return [x, x]\n")
    outcome = await run(PythonBackend(), tmp_path, {"function": "job_local_mod:f", "args": ["a"]})
    assert outcome == Outcome.success(["a", "a"])


async def test_python_prints_many_lines(tmp_path: Path, python_backend: PythonBackend) -> None:
    sink = Recorder()
    outcome = await run(
        python_backend,
        tmp_path,
        {"function": "backend_funcs:print_lots", "args": [20000]},
        sink=sink,
    )
    assert outcome == Outcome.success(20000)
    assert sink.text("stdout").splitlines()[-1] == "line 19999"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "function"),
        ({"function": 3}, "function"),
        ({"function": "no_colon"}, "function"),
        ({"function": "mod:"}, "function"),
        ({"function": "bad-name:f"}, "function"),
        ({"function": "m:f", "args": {"a": 1}}, "args"),
        ({"function": "m:f", "kwargs": [1]}, "kwargs"),
        ({"function": "m:f", "cwd": 1}, "cwd"),
    ],
)
async def test_python_invalid_payload(tmp_path: Path, payload: dict[str, Any], field: str) -> None:
    outcome = await run(PythonBackend(), tmp_path, payload)
    assert outcome.error is not None
    assert outcome.error["kind"] == "invalid_payload"
    assert outcome.error["message"].startswith(f"{field}: ")
    assert not outcome.retryable


async def test_python_health() -> None:
    health = await PythonBackend().health()
    assert health.ok
    assert health.capabilities["python"].startswith(f"{sys.version_info[0]}.")
    assert not (await PythonBackend({"python": "/no/such/python"}).health()).ok


# -- mock ---------------------------------------------------------------------------------------


async def test_mock_default_success(tmp_path: Path) -> None:
    assert await run(MockBackend(), tmp_path, {}) == Outcome.success({"ok": True})
    outcome = await run(MockBackend(), tmp_path, {"result": [1, "two"], "duration": 0.01})
    assert outcome == Outcome.success([1, "two"])


async def test_mock_fail_attempts(tmp_path: Path) -> None:
    payload = {"fail_attempts": 2, "result": "finally"}
    for attempt in (1, 2):
        outcome = await run(MockBackend(), tmp_path, payload, attempt=attempt)
        assert outcome.error is not None
        assert outcome.error["kind"] == "mock_failure"
        assert outcome.error["attempt"] == attempt
        assert outcome.retryable
    assert await run(MockBackend(), tmp_path, payload, attempt=3) == Outcome.success("finally")


async def test_mock_fail_not_retryable(tmp_path: Path) -> None:
    payload = {"fail": True, "retryable": False, "error_message": "nope"}
    outcome = await run(MockBackend(), tmp_path, payload, attempt=5)
    assert outcome.error == {"kind": "mock_failure", "message": "nope", "attempt": 5}
    assert not outcome.retryable


async def test_mock_output(tmp_path: Path) -> None:
    sink = Recorder()
    await run(MockBackend(), tmp_path, {"output": "hello\n"}, sink=sink)
    assert sink.chunks == [("stdout", b"hello\n")]


async def test_mock_cancel(tmp_path: Path) -> None:
    execution = await MockBackend().start(make_ctx(tmp_path, {"duration": 100}))
    waiter = asyncio.ensure_future(execution.wait())
    await asyncio.sleep(0)
    await execution.cancel()
    outcome = await asyncio.wait_for(waiter, 1)
    assert outcome.error is not None
    assert outcome.error["kind"] == "cancelled"
    await execution.cancel()
    assert await execution.wait() == outcome


async def test_mock_wait_survives_a_cancelled_waiter(tmp_path: Path) -> None:
    execution = await MockBackend().start(make_ctx(tmp_path, {"duration": 0.05}))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(execution.wait(), 0.001)
    assert (await asyncio.wait_for(execution.wait(), 1)).ok


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"duration": "1"}, "duration"),
        ({"duration": -1}, "duration"),
        ({"fail": "yes"}, "fail"),
        ({"fail_attempts": 1.5}, "fail_attempts"),
        ({"retryable": 0}, "retryable"),
        ({"output": 3}, "output"),
        ({"error_message": ["x"]}, "error_message"),
    ],
)
async def test_mock_invalid_payload(tmp_path: Path, payload: dict[str, Any], field: str) -> None:
    outcome = await run(MockBackend(), tmp_path, payload)
    assert outcome.error is not None
    assert outcome.error["kind"] == "invalid_payload"
    assert outcome.error["message"].startswith(f"{field}: ")
    assert not outcome.retryable


async def test_mock_is_cheap(tmp_path: Path) -> None:
    backend = MockBackend()
    payloads = [{}, {"result": 1}, {"fail_attempts": 1}]
    started = time.monotonic()
    for i in range(10_000):
        execution: Execution = await backend.start(make_ctx(tmp_path, payloads[i % 3]))
        await execution.wait()
    assert time.monotonic() - started < 2


# -- registry -----------------------------------------------------------------------------------


class _CustomBackend(MockBackend):
    name = "custom"


@pytest.fixture
def custom_backend() -> Iterator[None]:
    register_backend("custom", _CustomBackend)
    yield
    unregister_backend("custom")


def test_registry_builtins() -> None:
    backends = available_backends()
    assert backends["process"] is ProcessBackend
    assert backends["python"] is PythonBackend
    assert backends["mock"] is MockBackend
    backend = load_backend("process", {"tail_bytes": "10"})
    assert isinstance(backend, ProcessBackend)
    assert backend.tail_bytes == 10


def test_registry_unknown_backend() -> None:
    with pytest.raises(BackendNotFound) as info:
        load_backend("firecracker")
    message = str(info.value)
    assert "'firecracker'" in message
    assert "container, mock, process, python, sandbox, wasm" in message
    assert info.value.details["available"] == [
        "container",
        "mock",
        "process",
        "python",
        "sandbox",
        "wasm",
    ]


@pytest.mark.usefixtures("custom_backend")
def test_registry_runtime_registration() -> None:
    assert available_backends()["custom"] is _CustomBackend
    assert isinstance(load_backend("custom"), _CustomBackend)
    unregister_backend("custom")
    with pytest.raises(BackendNotFound, match="custom"):
        load_backend("custom")


def test_registry_rejects_bad_registrations_and_options() -> None:
    with pytest.raises(BackendError):
        register_backend("bad", dict)  # type: ignore[arg-type]
    with pytest.raises(BackendError, match="tail_bytes"):
        load_backend("process", {"tail_bytes": "lots"})


# -- under uvloop, the loop blixard server/worker really run on ---------------------------


def test_subprocess_backends_run_under_uvloop(tmp_path: Path) -> None:
    """uvloop's transports differ from asyncio's (stdin once went unwritten under it)."""
    import uvloop

    from blixard.backends.process import ProcessBackend
    from blixard.backends.python import PythonBackend

    async def scenario() -> tuple[Outcome, Outcome]:
        proc = ProcessBackend()
        ctx = ExecutionContext(
            job=Assignment("j1", 1, "default", "default", {"command": ["cat"], "stdin": "hi"}),
            work_dir=tmp_path,
        )
        cat = await (await proc.start(ctx)).wait()
        py = PythonBackend()
        ctx2 = ExecutionContext(
            job=Assignment("j2", 1, "default", "default", {"function": "os:getcwd"}),
            work_dir=tmp_path,
        )
        cwd = await asyncio.wait_for((await py.start(ctx2)).wait(), 20)
        return cat, cwd

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        cat, cwd = runner.run(scenario())
    assert cat.ok, cat.error
    assert cat.result["stdout"] == "hi"
    assert cwd.ok, cwd.error
    assert cwd.result == str(tmp_path)
