"""The value parsers of ``blixard submit``'s job options (cli/job_options.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import click
import pytest
from click.testing import CliRunner

from blixard.cli.job_options import (
    DURATION,
    parse_duration,
    parse_label,
    parse_preference,
    parse_rule,
    parse_time,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 30.0),
        ("2.5", 2.5),
        ("30s", 30.0),
        ("500ms", 0.5),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("2d", 172_800.0),
        (" 0s ", 0.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "5 m", "-5", "5x", "m", "nan", "inf", "1h-5m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_times() -> None:
    assert parse_time("2030-01-31T08:00:00Z") == datetime(2030, 1, 31, 8, tzinfo=UTC)
    local = parse_time("2030-01-31T08:00")
    assert local.tzinfo is not None
    assert local.replace(tzinfo=None) == datetime(2030, 1, 31, 8)
    offset = parse_time("2030-01-31T08:00:00+02:00")
    assert offset.utcoffset() == timedelta(hours=2)
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_time("tomorrow")


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("zone=a", {"label": "zone", "op": "eq", "values": ["a"]}),
        ("zone == a", {"label": "zone", "op": "eq", "values": ["a"]}),
        ("zone != us", {"label": "zone", "op": "ne", "values": ["us"]}),
        ("zone!=us", {"label": "zone", "op": "ne", "values": ["us"]}),
        ("zone in a,b", {"label": "zone", "op": "in", "values": ["a", "b"]}),
        ("zone in a, b ,a", {"label": "zone", "op": "in", "values": ["a", "b"]}),
        ("zone not in c", {"label": "zone", "op": "not_in", "values": ["c"]}),
        ("zone not_in c,d", {"label": "zone", "op": "not_in", "values": ["c", "d"]}),
        ("gpu exists", {"label": "gpu", "op": "exists"}),
        ("gpu not exists", {"label": "gpu", "op": "not_exists"}),
        ("gpu !exists", {"label": "gpu", "op": "not_exists"}),
        ("k8s.io/arch in amd64", {"label": "k8s.io/arch", "op": "in", "values": ["amd64"]}),
    ],
)
def test_constraints(text: str, rule: dict[str, Any]) -> None:
    assert parse_rule(text) == rule


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("zone", "operator"),
        ("zone like a", "operator"),
        ("zone in", "operator"),
        ("zone in ,", "values"),
        ("zone =", "value is needed"),
        ("gpu exists now", "operator"),
        ("", "expected LABEL OP"),
        ("zone in " + ",".join(f"v{i}" for i in range(65)), "values"),
    ],
)
def test_bad_constraints(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rule(text)


def test_preferences() -> None:
    assert parse_preference("zone=a") == {"label": "zone", "values": ["a"], "weight": 1}
    assert parse_preference("zone=a,b:10") == {"label": "zone", "values": ["a", "b"], "weight": 10}
    assert parse_preference("host=db:5432:2") == {
        "label": "host",
        "values": ["db:5432"],
        "weight": 2,
    }
    for bad, message in (("zone", "LABEL=VALUE"), ("zone=a:0", "weight"), ("zone=:5", "value")):
        with pytest.raises(ValueError, match=message):
            parse_preference(bad)


def test_labels() -> None:
    assert parse_label("gpu=a100") == ("gpu", "a100")
    assert parse_label("empty=") == ("empty", "")
    for bad in ("gpu", "=x", "bad key=x"):
        with pytest.raises(ValueError, match=bad.split("=")[0] or "KEY=VALUE"):
            parse_label(bad)


def test_the_click_type_names_the_flag() -> None:
    @click.command()
    @click.option("--delay", type=DURATION)
    def cmd(delay: float | None) -> None:
        click.echo(repr(delay))

    ok = CliRunner().invoke(cmd, ["--delay", "1m"])
    assert ok.output == "60.0\n"
    bad = CliRunner().invoke(cmd, ["--delay", "later"])
    assert bad.exit_code == 2
    assert "Invalid value for '--delay'" in bad.output
