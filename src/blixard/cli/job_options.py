"""Values of the job options of ``blixard submit``: durations, times, labels, label
constraints and preferences. Each is a click parameter type, so a bad value is a usage
error (exit code 2) that names its flag."""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from blixard.domain import validation as v
from blixard.domain.constraints import parse_constraints, parse_preferences
from blixard.errors import ValidationError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ms|s|m|h|d))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h|d)")
_LABEL = r"[A-Za-z0-9][A-Za-z0-9_.:/-]*"
_RULE = re.compile(rf"\s*(?P<label>{_LABEL})\s*(?P<rest>.*?)\s*")
_SET_OP = re.compile(r"(?P<neg>not[ _]|!)?\s*in\s+(?P<values>.+)")
_EXISTS_OP = re.compile(r"(?P<neg>not[ _]|!)?\s*exists")


_FLAGS = (
    ("depends_on", "--after"),
    ("on_parent_failure", "--on-parent-failure"),
    ("queue", "--queue"),
    ("tenant", "--tenant"),
    ("group_id", "--group"),
    ("worker_types", "--type"),
    ("priority", "--priority"),
    ("run_at", "--run-at"),
    ("timeout_s", "--timeout"),
    ("idempotency_key", "--idempotency-key"),
    ("concurrency_key", "--concurrency-key"),
    ("concurrency_limit", "--concurrency-limit"),
    ("requirements.labels", "--label"),
    ("requirements.constraints", "--constraint"),
    ("preferences", "--prefer"),
)


def flag_error(exc: ValidationError) -> click.BadParameter | None:
    """The server's refusal of a submitted field as a usage error naming the flag that set
    it (``depends_on[0]`` -> ``--after``); None for a field no flag sets."""
    for prefix, flag in _FLAGS:
        if exc.field == prefix or exc.field.startswith((f"{prefix}[", f"{prefix}.")):
            return click.BadParameter(exc.message, param_hint=flag)
    return None


def _reason(exc: ValidationError) -> str:
    """The domain's message about one rule (field ``rule[0].weight``): ``weight: ...``."""
    where = exc.field.split(".", 1)[1] if "." in exc.field else ""
    reason = exc.message.split(": ", 1)[-1]
    return f"{where}: {reason}" if where else reason


def parse_duration(text: str) -> float:
    """Seconds from ``30``, ``30s``, ``500ms``, ``5m``, ``1h30m``, ``2d``; ValueError."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        if not _DURATION.fullmatch(text):
            raise ValueError(
                f"{text!r} is not a duration: seconds, or a number with a unit "
                "(ms, s, m, h, d), e.g. 30s, 5m, 1h30m"
            ) from None
        seconds = sum(float(n) * _UNITS[unit] for n, unit in _DURATION_PART.findall(text))
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"{text!r} is not a duration of zero or more seconds")
    return seconds


def parse_time(text: str) -> datetime:
    """An ISO 8601 time; without an offset it is local time. ValueError."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 time (e.g. 2030-01-31T08:00:00Z, or local time "
            "2030-01-31T08:00)"
        ) from None
    return when if when.tzinfo is not None else when.astimezone()


def parse_rule(text: str) -> dict[str, Any]:
    """A label constraint, as the API takes it, from ``zone=a``, ``zone != us``,
    ``zone in a,b``, ``zone not in a,b``, ``gpu exists`` or ``gpu not exists``."""
    matched = _RULE.fullmatch(text)
    if not matched:
        raise ValueError(f"{text!r}: expected LABEL OP [VALUES], e.g. 'zone in a,b'")
    label, rest = matched.group("label"), matched.group("rest")
    if rest.startswith(("!=", "=")):
        op, value = ("ne", rest[2:]) if rest.startswith("!=") else ("eq", rest.lstrip("="))
        if not value.strip():
            raise ValueError(f"{text!r}: a value is needed after the operator")
        rule: dict[str, Any] = {"label": label, "op": op, "values": [value.strip()]}
    elif found := _SET_OP.fullmatch(rest):
        values = [x.strip() for x in found.group("values").split(",") if x.strip()]
        rule = {"label": label, "op": "not_in" if found.group("neg") else "in", "values": values}
    elif found := _EXISTS_OP.fullmatch(rest):
        rule = {"label": label, "op": "not_exists" if found.group("neg") else "exists"}
    else:
        raise ValueError(
            f"{text!r}: the operator must be =, !=, in, not in, exists or not exists "
            "(e.g. 'zone in a,b', 'gpu exists', 'zone != us')"
        )
    try:
        (checked,) = parse_constraints("rule", [rule])
    except ValidationError as exc:
        raise ValueError(f"{text!r}: {_reason(exc)}") from None
    return checked.to_dict()


def parse_preference(text: str) -> dict[str, Any]:
    """A soft label preference from ``zone=a`` or ``zone=a,b:10`` (weight 1-1000,
    default 1)."""
    label, sep, values = text.partition("=")
    if not sep or not label.strip():
        raise ValueError(f"{text!r}: expected LABEL=VALUE[,VALUE...][:WEIGHT], e.g. zone=a:10")
    weight = 1
    head, colon, tail = values.rpartition(":")
    if colon and tail.strip().isdigit():
        values, weight = head, int(tail)
    rule = {
        "label": label.strip(),
        "values": [x.strip() for x in values.split(",") if x.strip()],
        "weight": weight,
    }
    try:
        (checked,) = parse_preferences("rule", [rule])
    except ValidationError as exc:
        raise ValueError(f"{text!r}: {_reason(exc)}") from None
    return checked.to_dict()


def parse_label(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` with a valid label name and value."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"{text!r} is not KEY=VALUE")
    try:
        v.check_labels("label", {key: value})
    except ValidationError as exc:
        raise ValueError(f"{text!r}: {_reason(exc)}") from None
    return key, value


if TYPE_CHECKING:
    _ParamType = click.ParamType[Any]  # generic from click 8.2; plain before
else:
    _ParamType = click.ParamType


class _Parsed(_ParamType):
    """A click type over one of the parsers above: ValueError becomes a usage error."""

    def __init__(self, name: str, parse: Any) -> None:
        self.name = name
        self._parse = parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value  # a default, already converted
        try:
            return self._parse(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = _Parsed("duration", parse_duration)
TIME = _Parsed("iso-time", parse_time)
RULE = _Parsed("rule", parse_rule)
PREFERENCE = _Parsed("label=values[:weight]", parse_preference)
LABEL = _Parsed("key=value", parse_label)
