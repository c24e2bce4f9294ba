-- Schema bookkeeping (SQLite).

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS blixard_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at REAL NOT NULL
);

-- name: applied_versions
SELECT version FROM blixard_migrations ORDER BY version;

-- name: record_migration
INSERT INTO blixard_migrations (version, name, applied_at) VALUES (?, ?, ?);
