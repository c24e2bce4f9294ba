"""The embedded SQLite store (the default)."""

from blixard.storage.sqlite.driver import SqliteStore

__all__ = ["SqliteStore"]
