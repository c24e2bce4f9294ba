"""The PostgreSQL store: several Blixard servers on one database."""

from blixard.storage.postgres.driver import PostgresStore, split_schema

__all__ = ["PostgresStore", "split_schema"]
