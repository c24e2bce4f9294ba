"""The CLI's limit arguments: --max-running N|none and --rate N/PERIOD|none."""

from __future__ import annotations

import click
import pytest

from blixard.cli.queues import parse_max_running, parse_rate, rate_text
from blixard.client.core import KEEP


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (None, KEEP),
        ("none", None),
        ("None", None),
        ("0", 0),
        ("12", 12),
    ],
)
def test_max_running(text: str | None, value: object) -> None:
    assert parse_max_running(text) == value


@pytest.mark.parametrize("text", ["-1", "lots", "1.5", ""])
def test_bad_max_running(text: str) -> None:
    with pytest.raises(click.BadParameter, match="whole number"):
        parse_max_running(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (None, KEEP),
        ("none", None),
        ("100/60s", (100, 60.0)),
        ("100/60", (100, 60.0)),
        ("10/m", (10, 60.0)),
        ("5/1.5h", (5, 5400.0)),
        ("1/d", (1, 86400.0)),
        ("20/500ms", (20, 0.5)),
        (" 3 / 2s ", (3, 2.0)),
    ],
)
def test_rate(text: str | None, value: object) -> None:
    assert parse_rate(text) == value


@pytest.mark.parametrize("text", ["100", "100/", "/60s", "0/60s", "10/0s", "ten/m", "5/60y"])
def test_bad_rate(text: str) -> None:
    with pytest.raises(click.BadParameter):
        parse_rate(text)


@pytest.mark.parametrize(
    ("rate", "text"),
    [
        (None, "-"),
        ({"limit": 100, "period_s": 60.0}, "100/1m"),
        ({"limit": 5, "period_s": 5400.0}, "5/90m"),
        ({"limit": 5, "period_s": 7200.0}, "5/2h"),
        ({"limit": 2, "period_s": 0.5}, "2/0.5s"),
    ],
)
def test_rate_text(rate: dict[str, float] | None, text: str) -> None:
    assert rate_text(rate) == text
