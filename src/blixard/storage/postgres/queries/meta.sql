-- Schema bookkeeping (PostgreSQL). Migrations run under a transaction-scoped advisory lock,
-- so several servers starting at once apply each migration exactly once.

-- name: migration_lock
SELECT pg_advisory_xact_lock($1);

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS blixard_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at double precision NOT NULL
);

-- name: applied_versions
SELECT version FROM blixard_migrations ORDER BY version;

-- name: record_migration
INSERT INTO blixard_migrations (version, name, applied_at) VALUES ($1, $2, $3);

-- Several changes to announce in one statement: pairs of (channel, payload).
-- name: notify
SELECT pg_notify(n.channel, n.payload)
FROM unnest($1::text[], $2::text[]) AS n (channel, payload);

-- name: try_lock
SELECT pg_try_advisory_lock($1);

-- name: ping
SELECT 1;
