"""The child side of the ``python`` backend: call one function, write its result as JSON.

Run as ``python -m blixard.backends.python_runner RESULT_PATH`` (the backend loads this file
by path instead, so that it works whether or not ``blixard`` is importable in the child and
without importing the package). The call comes as JSON on stdin::

    {"function": "package.module:function", "args": [...], "kwargs": {...},
     "sys_path": ["extra", "entries"], "parents": {...} | null}

``parents`` (the job's parents' results, null for a job without parents) is passed as the
keyword argument ``parents`` when the function has a parameter of that name (not
positional-only) that ``args`` and ``kwargs`` leave unfilled.

and the report is written to RESULT_PATH (through a temporary file and a rename, so the
parent sees all of it or nothing), never to stdout, which belongs to the function::

    {"ok": true, "result": <the return value>}
    {"ok": false, "kind": "exception" | "import" | "result_not_json",
     "message": "...", "retryable": bool, "details": {...}}

A function that kills the process (``os._exit``, ``sys.exit``, a segfault) leaves no
report; the parent turns that into a ``crashed`` failure.

Standard library only: this runs in whatever interpreter the backend is told to use.
"""

from __future__ import annotations

import asyncio
import faulthandler
import importlib
import inspect
import json
import os
import sys
import traceback
from types import TracebackType
from typing import Any

TRACEBACK_TAIL_CHARS = 8192


def _qualified_name(cls: type) -> str:
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _traceback_tail(exc: BaseException) -> str:
    """The formatted traceback without this runner's (and asyncio.run's) frames, cut to its
    last ``TRACEBACK_TAIL_CHARS`` characters."""
    skip_prefix = os.path.dirname(asyncio.__file__) + os.sep
    tb: TracebackType | None = exc.__traceback__
    while tb is not None and (
        tb.tb_frame.f_code.co_filename == _call.__code__.co_filename
        or tb.tb_frame.f_code.co_filename.startswith(skip_prefix)
    ):
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    if len(text) > TRACEBACK_TAIL_CHARS:
        text = "..." + text[-TRACEBACK_TAIL_CHARS:]
    return text


def _failure(kind: str, message: str, *, retryable: bool, **details: Any) -> dict[str, Any]:
    return {
        "ok": False,
        "kind": kind,
        "message": message,
        "retryable": retryable,
        "details": details,
    }


def _resolve(path: str) -> Any:
    module_name, _, attr_path = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise _ImportFailure(
            f"cannot import {module_name!r}: {_qualified_name(type(exc))}: {exc}",
            traceback=_traceback_tail(exc),
        ) from exc
    for attr in attr_path.split("."):
        try:
            target = getattr(target, attr)
        except AttributeError:
            raise _ImportFailure(f"{path!r}: {attr!r} not found") from None
    if not callable(target):
        raise _ImportFailure(f"{path!r} is not callable (it is a {type(target).__name__})")
    return target


class _ImportFailure(Exception):
    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


def _with_parents(
    function: Any, args: list[Any], kwargs: dict[str, Any], parents: Any
) -> dict[str, Any]:
    """``kwargs`` plus ``parents=parents`` when the function takes it and nothing else
    gives it (a signature that cannot be read gets nothing added)."""
    if parents is None or "parents" in kwargs:
        return kwargs
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return kwargs
    param = signature.parameters.get("parents")
    if param is None or param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
        return kwargs
    try:
        bound = signature.bind_partial(*args, **kwargs)
    except TypeError:
        return kwargs  # the call fails the same way without it, with the function's message
    if "parents" in bound.arguments:
        return kwargs
    return {**kwargs, "parents": parents}


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _call(request: dict[str, Any]) -> dict[str, Any]:
    try:
        function = _resolve(request["function"])
    except _ImportFailure as exc:
        return _failure("import", str(exc), retryable=False, **exc.details)
    args = request.get("args", [])
    kwargs = _with_parents(function, args, request.get("kwargs", {}), request.get("parents"))
    try:
        value = function(*args, **kwargs)
        if inspect.isawaitable(value):
            value = asyncio.run(_await(value))
    except Exception as exc:
        return _failure(
            "exception",
            str(exc) or _qualified_name(type(exc)),
            retryable=True,
            type=_qualified_name(type(exc)),
            traceback=_traceback_tail(exc),
        )
    return {"ok": True, "result": value}


def _encode(report: dict[str, Any]) -> str:
    try:
        return json.dumps(report, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        value = report.get("result")
        return json.dumps(
            _failure(
                "result_not_json",
                f"return value of type {type(value).__name__} is not JSON-serialisable: {exc}",
                retryable=False,
                type=_qualified_name(type(value)),
            )
        )


def _write(path: str, text: str) -> None:
    partial = path + ".partial"
    with open(partial, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(partial, path)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m blixard.backends.python_runner RESULT_PATH", file=sys.stderr)
        return 2
    faulthandler.enable()  # a segfault leaves a Python traceback on stderr
    request = json.loads(sys.stdin.buffer.read())
    for entry in reversed(request.get("sys_path", [])):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    report = _call(request)
    sys.stdout.flush()
    sys.stderr.flush()
    _write(args[0], _encode(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
