"""Advisory lock keys: the same in every process and Python version."""

from __future__ import annotations

import hashlib


def stable_key(*parts: str) -> int:
    """A signed 64-bit advisory lock key."""
    digest = hashlib.blake2b(":".join(("blixard", *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
