"""Functions the python backend tests call in a child interpreter (by ``module:function``)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any


def add(a: int, b: int, *, scale: int = 1) -> dict[str, Any]:
    print("adding", a, b)
    print("to stderr", file=sys.stderr)
    return {"sum": (a + b) * scale, "cwd": os.getcwd()}


class ThingFailed(Exception):
    pass


def boom(message: str) -> None:
    raise ThingFailed(message)


def hard_exit(code: int) -> None:
    print("about to exit", flush=True)
    os._exit(code)


def soft_exit(code: int) -> None:
    sys.exit(code)


def segfault() -> None:
    import ctypes

    ctypes.string_at(0)


def hang(pid_file: str) -> None:
    with open(pid_file, "w") as f:
        f.write(str(os.getpid()))
    print("hanging", flush=True)
    time.sleep(100)


async def async_mul(a: int, b: int) -> int:
    await asyncio.sleep(0.01)
    return a * b


async def async_boom() -> None:
    await asyncio.sleep(0)
    raise ValueError("async trouble")


def not_json() -> object:
    return {1, 2, 3}


def print_lots(n: int) -> int:
    for i in range(n):
        print(f"line {i}")
    return n


NOT_CALLABLE = 42
