"""domain.cron: validation, aliases, seconds, and slots across DST changes (fixed times)."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from croniter.croniter import croniter

from blixard.domain.cron import Cron, cron
from blixard.errors import ValidationError

UTC = ZoneInfo("UTC")
PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def at(text: str, tz: ZoneInfo = UTC, fold: int = 0) -> float:
    """An instant from a local ISO time in ``tz`` (``fold=1``: the second 01:30 of a
    fall-back)."""
    return datetime.fromisoformat(text).replace(tzinfo=tz, fold=fold).timestamp()


def local(t: float, tz: ZoneInfo) -> str:
    """An instant as local ISO time with its offset, e.g. 2024-10-27T02:30:00+01:00."""
    return datetime.fromtimestamp(t, tz).isoformat()


def slots(c: Cron, start: float, n: int) -> list[float]:
    return c.upcoming(start, n)


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "* * * *",
        "* * * * * * *",
        "61 * * * *",
        "* 24 * * *",
        "* * 32 * *",
        "a b c d e",
        "@reboot",
        "@every 5m",
        "H * * * *",
        "x" * 201,
    ],
)
def test_bad_expressions_name_the_cron_field(expression: str) -> None:
    with pytest.raises(ValidationError) as err:
        Cron(expression, "UTC")
    assert err.value.field == "cron"


def test_an_expression_that_never_matches_is_rejected() -> None:
    with pytest.raises(ValidationError, match="never matches") as err:
        Cron("0 0 31 2 *", "UTC")
    assert err.value.field == "cron"


@pytest.mark.parametrize("zone", ["", "Nope/Zone", "utc", "../etc/passwd", "/etc/localtime"])
def test_bad_time_zones_name_the_timezone_field(zone: str) -> None:
    with pytest.raises(ValidationError) as err:
        Cron("* * * * *", zone)
    assert err.value.field == "timezone"
    assert "time zone" in err.value.message


@pytest.mark.parametrize(
    ("alias", "same_as"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@HOURLY", "0 * * * *"),
    ],
)
def test_aliases(alias: str, same_as: str) -> None:
    start = at("2024-02-27T13:14:15")
    assert slots(Cron(alias), start, 3) == slots(Cron(same_as), start, 3)


def test_standard_fields_names_and_day_or() -> None:
    c = Cron("30 9 * * mon-fri")
    assert [local(t, UTC) for t in slots(c, at("2024-03-08T12:00"), 3)] == [
        "2024-03-11T09:30:00+00:00",
        "2024-03-12T09:30:00+00:00",
        "2024-03-13T09:30:00+00:00",
    ]
    # both day fields restricted: either matches (the 13th, or a Friday)
    c = Cron("0 0 13 * fri")
    assert [local(t, UTC)[:10] for t in slots(c, at("2024-09-01T00:00"), 4)] == [
        "2024-09-06",
        "2024-09-13",
        "2024-09-20",
        "2024-09-27",
    ]


def test_six_fields_have_seconds_first() -> None:
    c = Cron("*/20 * * * * *")
    start = at("2024-01-01T00:00:05")
    assert slots(c, start, 4) == [start + 15, start + 35, start + 55, start + 75]
    assert Cron("30 0 12 * * *").next_after(at("2024-01-01T00:00")) == at("2024-01-01T12:00:30")


def test_next_after_is_strict_and_at_or_after_is_not() -> None:
    c = Cron("*/5 * * * *")
    t = at("2024-01-01T10:05")
    assert c.next_after(t) == at("2024-01-01T10:10")
    assert c.next_after(t - 0.5) == t
    assert c.at_or_after(t) == t
    assert c.at_or_after(t + 0.001) == at("2024-01-01T10:10")


def test_the_zone_moves_the_slots() -> None:
    assert Cron("0 9 * * *", "Asia/Kolkata").next_after(at("2024-01-01T00:00")) == at(
        "2024-01-01T03:30"
    )
    assert Cron("0 9 * * *", "Europe/Paris").next_after(at("2024-07-01T00:00")) == at(
        "2024-07-01T07:00"
    )


def test_cron_is_cached() -> None:
    assert cron("*/7 * * * *", "Europe/Paris") is cron("*/7 * * * *", "Europe/Paris")


# -- DST: specific hours fire once per local date-time ----------------------------------------


def test_paris_spring_forward_fires_a_skipped_time_at_the_end_of_the_gap() -> None:
    c = Cron("30 2 * * *", "Europe/Paris")  # 2024-03-31: 02:00 CET -> 03:00 CEST
    got = [local(t, PARIS) for t in slots(c, at("2024-03-29T12:00", PARIS), 4)]
    assert got == [
        "2024-03-30T02:30:00+01:00",
        "2024-03-31T03:00:00+02:00",
        "2024-04-01T02:30:00+02:00",
        "2024-04-02T02:30:00+02:00",
    ]


def test_several_skipped_slots_fire_once() -> None:
    c = Cron("*/15 2 * * *", "Europe/Paris")
    got = [local(t, PARIS) for t in slots(c, at("2024-03-30T12:00", PARIS), 2)]
    assert got == ["2024-03-31T03:00:00+02:00", "2024-04-01T02:00:00+02:00"]


def test_paris_fall_back_fires_a_repeated_time_once() -> None:
    c = Cron("30 2 * * *", "Europe/Paris")  # 2024-10-27: 03:00 CEST -> 02:00 CET
    got = [local(t, PARIS) for t in slots(c, at("2024-10-26T12:00", PARIS), 3)]
    assert got == [
        "2024-10-27T02:30:00+02:00",
        "2024-10-28T02:30:00+01:00",
        "2024-10-29T02:30:00+01:00",
    ]


def test_new_york_fall_back_from_the_second_pass() -> None:
    # 2024-11-03: 02:00 EDT -> 01:00 EST. Starting in the repeated hour's second pass, the
    # 01:30 already fired in the first pass.
    c = Cron("30 1 * * *", "America/New_York")
    start = at("2024-11-03T01:10", NEW_YORK, fold=1)
    assert local(c.next_after(start), NEW_YORK) == "2024-11-04T01:30:00-05:00"
    start = at("2024-11-03T01:10", NEW_YORK, fold=0)
    assert local(c.next_after(start), NEW_YORK) == "2024-11-03T01:30:00-04:00"


def test_new_york_spring_forward() -> None:
    c = Cron("30 2 * * *", "America/New_York")  # 2024-03-10: 02:00 EST -> 03:00 EDT
    got = [local(t, NEW_YORK) for t in slots(c, at("2024-03-09T12:00", NEW_YORK), 2)]
    assert got == ["2024-03-10T03:00:00-04:00", "2024-03-11T02:30:00-04:00"]


# -- DST: wildcard hours follow elapsed time ------------------------------------------------


def test_paris_fall_back_repeats_interval_slots_in_both_passes() -> None:
    c = Cron("*/30 * * * *", "Europe/Paris")
    start = at("2024-10-27T01:45", PARIS)
    got = slots(c, start, 6)
    assert [local(t, PARIS) for t in got] == [
        "2024-10-27T02:00:00+02:00",
        "2024-10-27T02:30:00+02:00",
        "2024-10-27T02:00:00+01:00",
        "2024-10-27T02:30:00+01:00",
        "2024-10-27T03:00:00+01:00",
        "2024-10-27T03:30:00+01:00",
    ]
    assert {b - a for a, b in pairwise(got)} == {1800}


def test_paris_spring_forward_skips_the_missing_hour_of_interval_slots() -> None:
    c = Cron("*/30 * * * *", "Europe/Paris")
    got = slots(c, at("2024-03-31T01:15", PARIS), 3)
    assert [local(t, PARIS) for t in got] == [
        "2024-03-31T01:30:00+01:00",
        "2024-03-31T03:00:00+02:00",
        "2024-03-31T03:30:00+02:00",
    ]
    assert {b - a for a, b in pairwise(got)} == {1800}


def test_hourly_in_new_york_through_the_fall_back() -> None:
    c = Cron("@hourly", "America/New_York")
    got = [local(t, NEW_YORK) for t in slots(c, at("2024-11-03T00:30", NEW_YORK), 4)]
    assert got == [
        "2024-11-03T01:00:00-04:00",
        "2024-11-03T01:00:00-05:00",
        "2024-11-03T02:00:00-05:00",
        "2024-11-03T03:00:00-05:00",
    ]


# -- against a brute-force reading of the rules ------------------------------------------------


def brute_force(expression: str, zone: str, start: float, end: float) -> list[float]:
    """Every slot in (start, end], minute by minute, straight from the documented rules."""
    c = Cron(expression, zone)
    tz = ZoneInfo(zone)
    out: list[float] = []
    x = (int(start) // 60 + 1) * 60
    previous = datetime.fromtimestamp(x - 60, tz)
    while x <= end:
        now = datetime.fromtimestamp(x, tz)
        wall = now.replace(tzinfo=None)
        gap_end = previous.replace(tzinfo=None) + timedelta(minutes=1)
        skipped = wall > gap_end  # local times [gap_end, wall) never showed
        if skipped and not c.elapsed_time:
            w = gap_end
            while w < wall and not croniter.match(c._expr, w):
                w += timedelta(minutes=1)
            if w < wall:
                out.append(x)
                previous, x = now, x + 60
                continue
        if croniter.match(c._expr, wall) and (c.elapsed_time or now.fold == 0):
            out.append(x)
        previous, x = now, x + 60
    return out


@pytest.mark.parametrize(
    ("expression", "zone", "day"),
    [
        ("*/20 * * * *", "Europe/Paris", "2024-10-26"),
        ("*/20 * * * *", "Europe/Paris", "2024-03-30"),
        ("*/10 2 * * *", "Europe/Paris", "2024-10-26"),
        ("*/10 2 * * *", "Europe/Paris", "2024-03-30"),
        ("0 0 * * *", "America/Sao_Paulo", "2018-11-02"),  # midnight skipped (gap at 00:00)
        ("*/15 * * * *", "Australia/Lord_Howe", "2024-04-06"),  # a 30-minute change
        ("45 1 * * *", "Australia/Lord_Howe", "2024-04-06"),
        ("0 12 * * *", "Pacific/Apia", "2011-12-28"),  # 30 December 2011 never happened
    ],
)
def test_agrees_with_brute_force(expression: str, zone: str, day: str) -> None:
    start = at(f"{day}T00:00", ZoneInfo(zone))
    end = start + 2.5 * 86_400
    c = Cron(expression, zone)
    fast: list[float] = []
    t = start
    while (t := c.next_after(t)) <= end:
        fast.append(t)
    assert fast == brute_force(expression, zone, start, end)
