"""Cron expressions in a time zone: validation and the next slot, correct across DST.

Syntax (matched by ``croniter``): the standard 5 fields ``minute hour day-of-month month
day-of-week`` with ranges, lists, steps and names (``*/5 9-17 * * mon-fri``), ``L`` (last
day of the month) and ``#`` (``fri#2``: the second Friday); or 6 fields with **seconds
first** (``*/10 * * * * *``: every 10 seconds), as in Quartz and Spring; or one of the
aliases ``@yearly`` (= ``@annually``), ``@monthly``, ``@weekly``, ``@daily`` (=
``@midnight``) and ``@hourly``. When both day fields are restricted, a day matching either
one matches (as in cron). Slots are whole seconds.

Time zones are IANA names (``Europe/Paris``); the expression is read on that zone's local
clock. Daylight saving time follows Vixie cron:

- An expression whose **hour field is a wildcard** (``*`` or ``*/n``, so also ``@hourly``)
  runs on elapsed time: it fires whenever the local clock shows a matching time. Through
  the hour repeated when clocks go back it fires in both passes, and the hour skipped when
  they go forward never shows, so nothing in it fires. ``*/15 * * * *`` stays every 15
  minutes of real time all year.
- An expression with **specific hours** (``30 2 * * *``, ``@daily``) fires once for each
  matching local date and time: a time repeated when clocks go back fires at its first
  occurrence only, and a time skipped when they go forward fires once, at the end of the
  gap (``30 2 * * *`` fires at 03:00 on the day Paris jumps from 02:00 to 03:00).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter.croniter import CroniterBadDateError, CroniterError, croniter

from blixard.errors import ValidationError

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MAX_EXPRESSION_CHARS = 200
MAX_TIMEZONE_CHARS = 64

_NAIVE_EPOCH = datetime(1970, 1, 1)
_PROBE_S = 3 * 3600
"""Offsets are probed this far apart over a long span: zones change offset far less often."""
_MAX_STEPS = 100_000
"""Time zone changes (and repeated hours) crossed by one search before giving up."""


def check_timezone(name: str, field: str = "timezone") -> ZoneInfo:
    """The zone named ``name`` (IANA, e.g. ``Europe/Paris`` or ``UTC``); ValidationError."""
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_TIMEZONE_CHARS:
        raise ValidationError(field, f"must be an IANA time zone name of 1-{MAX_TIMEZONE_CHARS}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValidationError(
            field, f"unknown time zone {name!r} (use an IANA name such as Europe/Paris or UTC)"
        ) from exc


def _normalize(expression: str) -> str:
    """The expression as croniter reads it (aliases expanded); ValidationError("cron")."""
    if not isinstance(expression, str) or not 1 <= len(expression) <= MAX_EXPRESSION_CHARS:
        raise ValidationError("cron", f"must be a cron expression of 1-{MAX_EXPRESSION_CHARS}")
    fields = expression.split()
    if len(fields) == 1 and fields[0].startswith("@"):
        expanded = ALIASES.get(fields[0].lower())
        if expanded is None:
            raise ValidationError(
                "cron", f"unknown alias {fields[0]!r}; known: {', '.join(sorted(ALIASES))}"
            )
        return expanded
    if len(fields) not in (5, 6):
        raise ValidationError(
            "cron",
            f"{expression!r} has {len(fields)} field(s): give 5 (minute hour day-of-month "
            "month day-of-week), 6 with seconds first, or an alias such as @hourly",
        )
    return " ".join(fields)


class Cron:
    """A validated expression in a zone; ``next_after`` gives its slots (epoch seconds)."""

    __slots__ = ("_elapsed", "_expr", "_tz", "expression", "timezone")

    def __init__(self, expression: str, timezone: str = "UTC") -> None:
        self._expr = _normalize(expression)
        self._tz = check_timezone(timezone)
        self.expression = expression
        self.timezone = timezone
        fields = self._expr.split()
        self._elapsed = fields[len(fields) - 4].startswith("*")  # the hour field
        try:
            croniter(self._expr, _NAIVE_EPOCH, second_at_beginning=True).get_next(datetime)
        except CroniterBadDateError as exc:
            raise ValidationError("cron", f"{expression!r} never matches a date") from exc
        except (CroniterError, ValueError, KeyError, IndexError) as exc:
            raise ValidationError(
                "cron", f"{expression!r} is not a valid cron expression: {exc}"
            ) from exc

    def __repr__(self) -> str:
        return f"Cron({self.expression!r}, {self.timezone!r})"

    @property
    def elapsed_time(self) -> bool:
        """True when the hour field is a wildcard: DST changes follow elapsed time."""
        return self._elapsed

    def next_after(self, t: float) -> float:
        """The first slot strictly after instant ``t``."""
        return float(self._next(math.floor(t)))

    def at_or_after(self, t: float) -> float:
        """The first slot at or after instant ``t``."""
        return float(self._next(math.ceil(t) - 1))

    def upcoming(self, after: float, count: int) -> list[float]:
        """The next ``count`` slots after ``after``."""
        out: list[float] = []
        t = after
        for _ in range(count):
            t = self.next_after(t)
            out.append(t)
        return out

    # the search -------------------------------------------------------------------------
    def _next(self, k: int) -> int:
        """The first slot > ``k`` (integer epoch seconds). Walks spans of constant UTC
        offset: inside one, a local time w is the instant w - offset."""
        cur = k
        for _ in range(_MAX_STEPS):
            off = self._offset(cur + 1)
            slot = self._match_after(cur + off) - off
            change = self._first_change(cur + 1, slot, off)
            if change is None:
                if not self._elapsed and self._repeated(slot):
                    cur = self._end_of_repeat(slot) - 1  # fired in the first pass already
                    continue
                return slot
            # No slot before ``change``, where the offset moves from ``off`` to ``new``.
            new = self._offset(change)
            # Local times [change + off, change + new) are skipped by a jump forward: for
            # specific hours, one of them matching fires at the end of the gap, ``change``.
            if (
                not self._elapsed
                and new > off
                and self._match_after(change + off - 1) < change + new
            ):
                return change
            cur = change - 1
        raise ValidationError("cron", f"{self.expression!r}: no next slot found")

    def _offset(self, x: int) -> int:
        """The zone's UTC offset at instant ``x``, in seconds."""
        delta = datetime.fromtimestamp(x, self._tz).utcoffset()
        return 0 if delta is None else int(delta.total_seconds())

    def _match_after(self, wall: int) -> int:
        """The first matching local time strictly after local time ``wall`` (both as
        seconds since the naive epoch)."""
        start = _NAIVE_EPOCH + timedelta(seconds=wall)
        try:
            found = croniter(self._expr, start, second_at_beginning=True).get_next(datetime)
        except CroniterError as exc:
            raise ValidationError("cron", f"{self.expression!r}: no next slot: {exc}") from exc
        return int((found - _NAIVE_EPOCH).total_seconds())

    def _first_change(self, a: int, b: int, off: int) -> int | None:
        """The first instant in [a, b] whose offset is not ``off`` (``off`` is a's)."""
        lo = a
        while lo < b:
            hi = min(lo + _PROBE_S, b)
            if self._offset(hi) != off:
                return self._bisect(lo, hi, off)
            lo = hi
        return None

    def _bisect(self, lo: int, hi: int, off: int) -> int:
        """With offset(lo) == off != offset(hi): the first instant in (lo, hi] that moved."""
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._offset(mid) == off:
                lo = mid
            else:
                hi = mid
        return hi

    def _repeated(self, x: int) -> bool:
        """True when instant ``x`` shows a local time the clock already showed (the second
        pass through an hour repeated when clocks went back)."""
        return datetime.fromtimestamp(x, self._tz).fold == 1

    def _end_of_repeat(self, x: int) -> int:
        """The instant the repeated local times around ``x`` end (new local times begin)."""
        wall = datetime.fromtimestamp(x, self._tz).replace(tzinfo=None)
        first = math.floor(wall.replace(tzinfo=self._tz, fold=0).timestamp())
        change = self._bisect(first, x, self._offset(first))
        return change + (x - first)


@lru_cache(maxsize=1024)
def cron(expression: str, timezone: str = "UTC") -> Cron:
    """A ``Cron``, cached (schedules parse the same few expressions over and over)."""
    return Cron(expression, timezone)
