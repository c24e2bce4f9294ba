"""Globally unique, time-ordered identifiers (UUIDv7, RFC 9562).

The first 48 bits are the Unix time in milliseconds, so ids sort by creation time on every
server without coordination; the rest is random (with a monotonic counter inside one
process and millisecond, which keeps a bulk submission in its submitted order).
"""

from __future__ import annotations

import uuid_utils


def new_id() -> str:
    return str(uuid_utils.uuid7())


def new_ids(n: int) -> list[str]:
    return [str(uuid_utils.uuid7()) for _ in range(n)]
