"""PostgreSQL: the schedules part of the Store (a mixin of PostgresStore)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from blixard.storage.postgres.driver import Conn


class PostgresSchedules:
    if TYPE_CHECKING:  # provided by PostgresStore

        def _transaction(self) -> AbstractAsyncContextManager[Conn]: ...

        def _acquire(self) -> AbstractAsyncContextManager[Conn]: ...
