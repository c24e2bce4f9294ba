"""Options shared by commands; every flag has a BLIXARD_* environment variable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from blixard.client.core import DEFAULT_SERVER
from blixard.storage.urls import DEFAULT_DATABASE_URL

F = TypeVar("F", bound=Callable[..., Any])


def envvar(flag: str) -> str:
    """``--lease-ttl`` -> ``BLIXARD_LEASE_TTL``."""
    return "BLIXARD_" + flag.lstrip("-").split("/")[0].replace("-", "_").upper()


def option(*decls: str, **kwargs: Any) -> Callable[[F], F]:
    long = next(d for d in decls if d.startswith("--"))
    kwargs.setdefault("envvar", envvar(long))
    kwargs.setdefault("show_envvar", True)
    return click.option(*decls, **kwargs)


def server_option(f: F) -> F:
    return option(
        "--server", "-s", default=DEFAULT_SERVER, show_default=True, help="URL of a Blixard server."
    )(f)


def json_option(f: F) -> F:
    return option(
        "--json", "as_json", is_flag=True, help="Print the API's JSON instead of a table."
    )(f)


def database_option(f: F) -> F:
    return option(
        "--database",
        "-d",
        default=DEFAULT_DATABASE_URL,
        show_default=True,
        help="Database URL: sqlite:///path.db (relative), sqlite:////abs/path.db, or "
        "postgresql://user@host:5432/db (optionally ?schema=name).",
    )(f)


def parse_pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    """``("k=v", ...)`` to a dict; a clear usage error otherwise."""
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=what)
        out[key] = value
    return out
