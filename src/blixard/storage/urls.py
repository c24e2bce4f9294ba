"""Open a store from a database URL: ``sqlite:///path``, ``postgresql://...`` (optionally
``?schema=name``), ``memory://`` (a private in-memory SQLite database)."""

from __future__ import annotations

import random
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlparse, urlsplit

from blixard.errors import ConfigurationError
from blixard.storage.base import Store

DEFAULT_DATABASE_URL = "sqlite:///./blixard.db"


def sqlite_path(url: str) -> str:
    """``sqlite:///relative.db`` and ``sqlite:////abs/path.db`` (and ``sqlite:///:memory:``)."""
    path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else ""
    if not path:
        raise ConfigurationError(
            f"bad SQLite URL {url!r}: use sqlite:///relative/path.db or sqlite:////abs/path.db"
        )
    return path


def store_from_url(url: str, *, rng: random.Random | None = None) -> Store:
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        from blixard.storage.sqlite import SqliteStore

        path = sqlite_path(url)
        if path != ":memory:":
            parent = Path(path).expanduser().resolve().parent
            if not parent.is_dir():
                raise ConfigurationError(f"the directory of {url!r} does not exist: {parent}")
        return SqliteStore(path, rng=rng)
    if scheme in ("postgresql", "postgres"):
        from blixard.storage.postgres import PostgresStore, split_schema

        dsn, schema = split_schema(url)
        return PostgresStore(dsn, rng=rng, schema=schema)
    if scheme == "memory":
        from blixard.storage.sqlite import SqliteStore

        return SqliteStore(":memory:", rng=rng)
    raise ConfigurationError(
        f"unsupported database URL {url!r}: use sqlite:///path.db or "
        "postgresql://user@host:5432/database"
    )


def redact(url: str) -> str:
    """The URL with its password (in the authority or a ``password=`` parameter) as ***."""
    try:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        if parts.password is None and not any(key == "password" for key, _ in query):
            return url  # nothing to hide; geturl() would also mangle sqlite:/// paths
        if parts.password is not None:
            host = parts.netloc.rsplit("@", 1)[-1]
            parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
        query = parse_qsl(parts.query, keep_blank_values=True)
        if any(key == "password" for key, _ in query):
            masked = [(k, "***" if k == "password" else v) for k, v in query]
            parts = parts._replace(query=urlencode(masked, safe="*"))
        return parts.geturl()
    except ValueError:
        return "(unparsable URL)"
