"""The curated public API: what the README and the issue promise users can import."""

from __future__ import annotations

import pytest

import blixard
from blixard.client import AsyncClient, Client


def test_clients_at_the_top_level() -> None:
    assert blixard.Client is Client
    assert blixard.AsyncClient is AsyncClient


def test_every_name_in_all_resolves() -> None:
    for name in blixard.__all__:
        assert getattr(blixard, name) is not None, name


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        blixard.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
