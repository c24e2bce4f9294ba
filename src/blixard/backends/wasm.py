"""The ``wasm`` backend: run a WebAssembly (WASI preview 1) module in-process with wasmtime.

Needs the ``wasmtime`` package (``pip install 'blixard[wasm]'``); without it the backend's
``health`` fails, so ``blixard worker --type wasm`` stops at start-up saying what to install.

Payload (other fields are ignored):

- the module, exactly one of:

  - ``module_path``: a ``.wasm`` (binary) or ``.wat`` (text) file on the worker; a relative
    path is relative to the worker's working directory;
  - ``module_base64``: the module's bytes (binary or text format), base64-encoded.

  Blob references (``blob:sha256:...``) are not supported yet: the blob store does not
  exist.
- ``args``: a list of strings, the module's arguments; ``argv[0]`` is the module's name
  (the file name of ``module_path``, ``module.wasm`` for ``module_base64``).
- ``env``: an object of strings, the module's whole environment, plus ``BLIXARD_JOB_ID``
  and ``BLIXARD_JOB_ATTEMPT`` (nothing is inherited from the worker).
- ``stdin``: a string the module reads on stdin (default: empty).
- ``fuel``: instructions the module may execute (default: backend option ``default_fuel``,
  1e9), capped at backend option ``max_fuel`` (1e10).
- ``memory_mb``: the limit on the module's linear memory (default: option
  ``default_memory_mb``, 256), capped at option ``max_memory_mb`` (4096).

Wall time is the job's ``timeout_s``: a watchdog interrupts the module (epoch interruption)
when it is up. The module gets no files, directories or network (no preopens), so a job's
parents' results are not passed to it.

stdout and stderr go to ``stdout.txt`` / ``stderr.txt`` in the job's work dir; once the
module has ended they are sent to the job's output stream (not live) and their tails
(backend option ``tail_bytes``, default 16384) are in the result and in failures.

Result on exit code 0 (``_start`` returning counts as 0): ``{"exit_code": 0, "stdout":
tail, "stderr": tail, "truncated": {"stdout": bool, "stderr": bool}, "fuel_consumed": n}``.
Errors (kind): ``out_of_fuel`` (with ``fuel``; not retryable), ``memory_limit`` (with
``memory_mb``; not retryable), ``timeout`` (with ``timeout_s``), ``exit_code`` (non-zero
``proc_exit``, with ``exit_code``), ``trap`` (any other trap, with ``trap_code`` when known),
``cancelled``, ``invalid_module`` (does not compile, needs imports other than WASI, has no
``_start``; not retryable, except a ``module_path`` that cannot be read on this worker) and
``invalid_payload`` (not retryable). All but the last two carry the output tails.

``memory_limit`` is exact when the module's initial memory is over the limit. A
``memory.grow`` past the limit returns -1 to the module (wasmtime's Python API cannot make it
trap), so a module that then traps or exits non-zero is reported as ``memory_limit`` when its
exported memory is within one 64 KiB page of the limit; a single grow request much larger than
what is left is reported by how the module ended (``trap`` / ``exit_code``).

Each job runs in a thread of its own, off the event loop, with an ``Engine`` of its own (so
interrupting one job's epoch leaves the others running). Modules are compiled once per
worker: the compiled code is kept by the SHA-256 of the module's bytes in a bounded LRU
(backend option ``cache_size``, default 64 modules) and loaded into each job's engine
without compiling (``Module.deserialize``, about 0.05 ms).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final

from blixard.backends.base import (
    BackendHealth,
    Execution,
    ExecutionBackend,
    ExecutionContext,
    FinishedExecution,
    Outcome,
)
from blixard.backends.subprocesses import (
    DEFAULT_TAIL_BYTES,
    PayloadInvalid,
    Tail,
    check_env,
    check_text,
    option_int,
)

try:
    import wasmtime
except ImportError:  # pragma: no cover - depends on the installation
    wasmtime = None  # type: ignore[assignment]

INSTALL_HINT: Final = "pip install 'blixard[wasm]'"
PAGE: Final = 64 * 1024
MIB: Final = 1024 * 1024
DEFAULT_FUEL: Final = 1_000_000_000
DEFAULT_MAX_FUEL: Final = 10_000_000_000
DEFAULT_MEMORY_MB: Final = 256
DEFAULT_MAX_MEMORY_MB: Final = 4096
DEFAULT_CACHE_SIZE: Final = 64
MODULE_SUFFIXES: Final = (".wasm", ".wat")
OUTPUT_CHUNK: Final = 64 * 1024
CANCEL_WAIT_S: Final = 5.0

_CANCELLED = "cancelled"
_TIMEOUT = "timeout"


def _config() -> wasmtime.Config:
    """The one engine configuration: compiled code moves between engines made from it."""
    config = wasmtime.Config()
    config.consume_fuel = True
    config.epoch_interruption = True
    return config


def _invalid_module(message: str, *, retryable: bool = False) -> Outcome:
    return Outcome.failure("invalid_module", message, retryable=retryable)


@dataclass(frozen=True, slots=True)
class WasmJob:
    """A checked payload."""

    name: str
    module_path: Path | None
    module_bytes: bytes | None
    args: list[str]
    env: dict[str, str]
    stdin: bytes
    fuel: int
    memory_mb: int
    timeout_s: float | None


def _limit(payload: Mapping[str, Any], key: str, default: int, maximum: int) -> int:
    value = payload.get(key)
    if value is None:
        return min(default, maximum)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadInvalid(key, f"must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 1:
        raise PayloadInvalid(key, f"must be a finite number >= 1, got {value}")
    return min(int(value), maximum)


class WasmCache:
    """Compiled modules by the SHA-256 of their bytes, least recently used dropped first.

    Thread-safe. ``compiles`` counts actual compilations (for tests and stats)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.compiles = 0
        self._engine = wasmtime.Engine(_config())
        self._compiled: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._compiled)

    def load(self, engine: wasmtime.Engine, source: bytes) -> wasmtime.Module:
        """``source`` (binary or text format) as a module of ``engine``; raises
        ``wasmtime.WasmtimeError`` when it does not compile."""
        digest = hashlib.sha256(source).hexdigest()
        with self._lock:
            compiled = self._compiled.get(digest)
            if compiled is not None:
                self._compiled.move_to_end(digest)
        if compiled is None:
            compiled = bytes(wasmtime.Module(self._engine, source).serialize())
            with self._lock:
                self.compiles += 1
                if self.size > 0:
                    self._compiled[digest] = compiled
                    while len(self._compiled) > self.size:
                        self._compiled.popitem(last=False)
        return wasmtime.Module.deserialize(engine, compiled)


class WasmExecution(Execution):
    """One module run in a thread; ``cancel`` and the wall-time watchdog interrupt it by
    bumping the epoch of the job's own engine."""

    def __init__(
        self,
        backend: WasmBackend,
        ctx: ExecutionContext,
        job: WasmJob,
    ) -> None:
        self._backend = backend
        self._ctx = ctx
        self._job = job
        self._engine = wasmtime.Engine(_config())
        self._reason: str | None = None  # why the module was interrupted
        self._lock = threading.Lock()
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[Outcome] = asyncio.ensure_future(asyncio.to_thread(self._run))

    def _interrupt(self, reason: str) -> None:
        with self._lock:
            if self._reason is None:
                self._reason = reason
        self._engine.increment_epoch()

    def _interrupted(self) -> str | None:
        with self._lock:
            return self._reason

    def add_done_callback(self, callback: Callable[[], object]) -> None:
        self._task.add_done_callback(lambda _: callback())

    async def wait(self) -> Outcome:
        return await asyncio.shield(self._task)

    async def cancel(self) -> None:
        if self._task.done():
            return
        self._interrupt(_CANCELLED)
        # An interrupt ends a module promptly; do not hang the agent if it somehow does not.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._task), CANCEL_WAIT_S)

    # -- in the job's thread ------------------------------------------------------------------

    def _run(self) -> Outcome:
        job = self._job
        work_dir = self._ctx.work_dir
        try:
            source = job.module_bytes
            if source is None:
                assert job.module_path is not None
                try:
                    source = job.module_path.read_bytes()
                except OSError as exc:
                    return _invalid_module(
                        f"cannot read module_path {str(job.module_path)!r}: {exc.strerror or exc}",
                        retryable=True,
                    )
            try:
                module = self._backend.cache.load(self._engine, source)
            except wasmtime.WasmtimeError as exc:
                return _invalid_module(f"the module does not compile: {exc}")

            work_dir.mkdir(parents=True, exist_ok=True)
            stdout_path = work_dir / "stdout.txt"
            stderr_path = work_dir / "stderr.txt"
            stdin_path = work_dir / "stdin.txt"
            stdin_path.write_bytes(job.stdin)
            wasi = wasmtime.WasiConfig()
            wasi.argv = [job.name, *job.args]
            wasi.env = list(job.env.items())
            wasi.stdin_file = str(stdin_path)
            wasi.stdout_file = str(stdout_path)
            wasi.stderr_file = str(stderr_path)

            store = wasmtime.Store(self._engine)
            store.set_wasi(wasi)
            store.set_limits(memory_size=job.memory_mb * MIB)
            store.set_fuel(job.fuel)
            store.set_epoch_deadline(1)
            linker = wasmtime.Linker(self._engine)
            linker.define_wasi()
            # Set before this check, the deadline trips on any later interrupt.
            if self._interrupted() is not None:
                return self._failure_interrupted(stdout_path, stderr_path)

            timer: threading.Timer | None = None
            if job.timeout_s is not None:
                timer = threading.Timer(job.timeout_s, self._interrupt, (_TIMEOUT,))
                timer.daemon = True
                timer.start()
            try:
                return self._instantiate_and_run(store, linker, module, stdout_path, stderr_path)
            finally:
                if timer is not None:
                    timer.cancel()
        except OSError as exc:
            return Outcome.failure("spawn", f"cannot prepare the job: {exc.strerror or exc}")

    def _instantiate_and_run(
        self,
        store: wasmtime.Store,
        linker: wasmtime.Linker,
        module: wasmtime.Module,
        stdout_path: Path,
        stderr_path: Path,
    ) -> Outcome:
        job = self._job
        try:
            instance = linker.instantiate(store, module)
        except wasmtime.WasmtimeError as exc:
            message = str(exc)
            if "exceeds memory limits" in message:
                return Outcome.failure(
                    "memory_limit",
                    f"the module needs more than {job.memory_mb} MiB of memory: {message}",
                    retryable=False,
                    memory_mb=job.memory_mb,
                )
            return _invalid_module(f"the module cannot be instantiated: {message}")
        except wasmtime.Trap as exc:  # a start function that traps
            return self._failure(store, None, exc, stdout_path, stderr_path)
        exports = instance.exports(store)
        start = exports.get("_start")
        if not isinstance(start, wasmtime.Func):
            return _invalid_module("the module has no _start function (not a WASI command)")
        try:
            start(store)
        except wasmtime.ExitTrap as exc:
            if exc.code == 0:
                return self._success(store, stdout_path, stderr_path)
            return self._failure(store, instance, exc, stdout_path, stderr_path)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            return self._failure(store, instance, exc, stdout_path, stderr_path)
        return self._success(store, stdout_path, stderr_path)

    def _fuel_consumed(self, store: wasmtime.Store) -> int:
        try:
            return self._job.fuel - store.get_fuel()
        except wasmtime.WasmtimeError:  # pragma: no cover
            return self._job.fuel

    def _success(self, store: wasmtime.Store, stdout_path: Path, stderr_path: Path) -> Outcome:
        tails = self._emit_output(stdout_path, stderr_path)
        return Outcome.success(
            {"exit_code": 0, **tails, "fuel_consumed": self._fuel_consumed(store)}
        )

    def _failure_interrupted(self, stdout_path: Path, stderr_path: Path) -> Outcome:
        tails = self._emit_output(stdout_path, stderr_path)
        if self._interrupted() == _TIMEOUT:
            timeout_s = self._job.timeout_s
            return Outcome.failure(
                "timeout", f"timed out after {timeout_s:g}s", timeout_s=timeout_s, **tails
            )
        return Outcome.failure("cancelled", "cancelled while running", **tails)

    def _at_memory_limit(self, store: wasmtime.Store, instance: wasmtime.Instance | None) -> bool:
        if instance is None:
            return False
        limit = self._job.memory_mb * MIB
        for _, item in instance.exports(store).items():
            if isinstance(item, wasmtime.Memory) and item.data_len(store) + PAGE > limit:
                return True
        return False

    def _failure(
        self,
        store: wasmtime.Store,
        instance: wasmtime.Instance | None,
        exc: Exception,
        stdout_path: Path,
        stderr_path: Path,
    ) -> Outcome:
        job = self._job
        trap_code = exc.trap_code if isinstance(exc, wasmtime.Trap) else None
        if trap_code == wasmtime.TrapCode.INTERRUPT or (
            trap_code is None and self._interrupted() is not None
        ):
            return self._failure_interrupted(stdout_path, stderr_path)
        tails = self._emit_output(stdout_path, stderr_path)
        if trap_code == wasmtime.TrapCode.OUT_OF_FUEL:
            return Outcome.failure(
                "out_of_fuel",
                f"the module used up its fuel ({job.fuel} instructions)",
                retryable=False,
                fuel=job.fuel,
                **tails,
            )
        exit_code = exc.code if isinstance(exc, wasmtime.ExitTrap) else None
        if self._at_memory_limit(store, instance):
            return Outcome.failure(
                "memory_limit",
                f"the module reached its memory limit ({job.memory_mb} MiB) and "
                + (f"exited with code {exit_code}" if exit_code is not None else "trapped"),
                retryable=False,
                memory_mb=job.memory_mb,
                **({"exit_code": exit_code} if exit_code is not None else {}),
                **tails,
                fuel_consumed=self._fuel_consumed(store),
            )
        if exit_code is not None:
            return Outcome.failure(
                "exit_code",
                f"the module exited with code {exit_code}",
                exit_code=exit_code,
                **tails,
                fuel_consumed=self._fuel_consumed(store),
            )
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Outcome.failure(
            "trap",
            f"the module trapped: {message}",
            trap_code=trap_code.name.lower() if trap_code is not None else None,
            **tails,
            fuel_consumed=self._fuel_consumed(store),
        )

    def _emit_output(self, stdout_path: Path, stderr_path: Path) -> dict[str, Any]:
        """Send both files to the job's output stream; their tails, for the outcome."""
        tails: dict[str, Tail] = {}
        for stream, path in (("stdout", stdout_path), ("stderr", stderr_path)):
            tail = tails[stream] = Tail(self._backend.tail_bytes)
            try:
                with path.open("rb") as f:
                    while chunk := f.read(OUTPUT_CHUNK):
                        tail.add(chunk)
                        self._loop.call_soon_threadsafe(self._send, stream, chunk)
            except FileNotFoundError:
                pass
        return {
            "stdout": tails["stdout"].text(),
            "stderr": tails["stderr"].text(),
            "truncated": {s: t.truncated for s, t in tails.items()},
        }

    def _send(self, stream: str, chunk: bytes) -> None:
        with contextlib.suppress(Exception):  # a broken sink must not break the job
            self._ctx.on_output(stream, chunk)


class WasmBackend(ExecutionBackend):
    name: ClassVar[str] = "wasm"

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        super().__init__(options)
        self.tail_bytes = option_int(self.options, "tail_bytes", DEFAULT_TAIL_BYTES)
        self.max_fuel = option_int(self.options, "max_fuel", DEFAULT_MAX_FUEL, minimum=1)
        self.default_fuel = option_int(self.options, "default_fuel", DEFAULT_FUEL, minimum=1)
        self.max_memory_mb = option_int(
            self.options, "max_memory_mb", DEFAULT_MAX_MEMORY_MB, minimum=1
        )
        self.default_memory_mb = option_int(
            self.options, "default_memory_mb", DEFAULT_MEMORY_MB, minimum=1
        )
        self.cache_size = option_int(self.options, "cache_size", DEFAULT_CACHE_SIZE)
        self._cache: WasmCache | None = None
        self._running: set[WasmExecution] = set()

    @property
    def cache(self) -> WasmCache:
        if self._cache is None:
            self._cache = WasmCache(self.cache_size)
        return self._cache

    async def health(self) -> BackendHealth:
        if wasmtime is None:
            return BackendHealth(
                ok=False,
                detail=f"the wasmtime package is not installed; install it with {INSTALL_HINT}",
            )
        return BackendHealth(
            ok=True,
            capabilities={
                "wasmtime": _wasmtime_version(),
                "wasi": "preview1",
                "max_fuel": self.max_fuel,
                "max_memory_mb": self.max_memory_mb,
            },
        )

    def _check(self, ctx: ExecutionContext) -> WasmJob:
        payload = ctx.job.payload
        path_value = payload.get("module_path")
        b64_value = payload.get("module_base64")
        if (path_value is None) == (b64_value is None):
            raise PayloadInvalid("module_path", "exactly one of module_path, module_base64")
        module_path: Path | None = None
        module_bytes: bytes | None = None
        if path_value is not None:
            text = check_text("module_path", path_value)
            if not text.startswith("blob:") and not text.endswith(MODULE_SUFFIXES):
                raise PayloadInvalid("module_path", "must name a .wasm or .wat file")
            if text.startswith("blob:"):
                raise PayloadInvalid("module_path", "blob references are not supported yet")
            module_path = Path(text)
            name = module_path.name
        else:
            text = check_text("module_base64", b64_value)
            try:
                module_bytes = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise PayloadInvalid("module_base64", f"is not valid base64: {exc}") from None
            if not module_bytes:
                raise PayloadInvalid("module_base64", "must not be empty")
            name = "module.wasm"
        raw_args = payload.get("args", [])
        if not isinstance(raw_args, list):
            raise PayloadInvalid(
                "args", f"must be a list of strings, got {type(raw_args).__name__}"
            )
        args = [check_text(f"args[{i}]", arg) for i, arg in enumerate(raw_args)]
        env = {
            "BLIXARD_JOB_ID": ctx.job.job_id,
            "BLIXARD_JOB_ATTEMPT": str(ctx.job.attempt),
            **check_env("env", payload.get("env")),
        }
        stdin = payload.get("stdin")
        data = b"" if stdin is None else check_text("stdin", stdin).encode()
        return WasmJob(
            name=name,
            module_path=module_path,
            module_bytes=module_bytes,
            args=args,
            env=env,
            stdin=data,
            fuel=_limit(payload, "fuel", self.default_fuel, self.max_fuel),
            memory_mb=_limit(payload, "memory_mb", self.default_memory_mb, self.max_memory_mb),
            timeout_s=ctx.job.timeout_s,
        )

    async def start(self, ctx: ExecutionContext) -> Execution:
        try:
            job = self._check(ctx)
        except PayloadInvalid as exc:
            return exc.execution()
        if wasmtime is None:  # health() stops the worker first; this is for direct use
            return FinishedExecution(
                Outcome.failure("spawn", f"wasmtime is not installed ({INSTALL_HINT})")
            )
        execution = WasmExecution(self, ctx, job)
        self._running.add(execution)
        execution.add_done_callback(lambda: self._running.discard(execution))
        return execution

    async def close(self) -> None:
        """Cancel whatever is still running."""
        running = list(self._running)
        if running:
            await asyncio.gather(*(e.cancel() for e in running), return_exceptions=True)


def _wasmtime_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("wasmtime")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"
