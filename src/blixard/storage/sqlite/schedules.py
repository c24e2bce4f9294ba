"""SQLite: the schedules part of the Store (a mixin of SqliteStore)."""

from __future__ import annotations

from blixard.storage.sqlite.connection import SqliteConnection


class SqliteSchedules:
    _db: SqliteConnection
