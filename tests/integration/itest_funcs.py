"""Functions the python backend runs in a child interpreter during the agent tests."""

from __future__ import annotations

from typing import Any


def multiply(a: int, b: int, *, label: str = "") -> dict[str, Any]:
    print("multiplying", a, b)
    return {"product": a * b, "label": label}


def explode(message: str) -> None:
    raise RuntimeError(message)
