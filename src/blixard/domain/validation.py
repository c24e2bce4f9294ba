"""Validation of names and sizes with precise messages. Pure: no I/O."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import orjson

from blixard.errors import PayloadTooLarge, ValidationError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$")
LABEL_VALUE_MAX = 256
MAX_LABELS = 64
IDEMPOTENCY_KEY_MAX = 256
DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024


def check_name(field: str, value: str) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise ValidationError(
            field,
            f"{value!r} is not a valid name: 1-64 characters, letters, digits and _ . : / -, "
            "starting with a letter or digit",
        )
    return value


def check_labels(field: str, labels: Mapping[str, str]) -> dict[str, str]:
    if len(labels) > MAX_LABELS:
        raise ValidationError(field, f"at most {MAX_LABELS} labels")
    out: dict[str, str] = {}
    for key, value in labels.items():
        check_name(f"{field}.{key}", key)
        if not isinstance(value, str) or len(value) > LABEL_VALUE_MAX:
            raise ValidationError(
                f"{field}.{key}", f"label values are strings of at most {LABEL_VALUE_MAX} chars"
            )
        out[key] = value
    return out


def check_range(field: str, value: float, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ValidationError(field, "must be a number")
    if not low <= value <= high:
        raise ValidationError(field, f"must be between {low:g} and {high:g}, got {value:g}")
    return value


def encode_payload(payload: Any, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> str:
    """The payload as JSON text, after checking it is a JSON object within the size limit."""
    if not isinstance(payload, dict):
        raise ValidationError("payload", f"must be a JSON object, got {type(payload).__name__}")
    try:
        raw = orjson.dumps(payload)
    except TypeError as exc:
        raise ValidationError("payload", f"is not JSON-serialisable: {exc}") from exc
    if b"null" in raw and _has_non_finite(payload):  # orjson writes NaN/Infinity as null
        raise ValidationError("payload", "NaN and Infinity are not JSON numbers")
    if len(raw) > max_bytes:
        raise PayloadTooLarge(
            "payload", f"is {len(raw)} bytes, the limit is {max_bytes}", limit=max_bytes
        )
    return raw.decode()


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_non_finite(v) for v in value)
    return False
