-- Queues, tenants and dependencies as jobs arrive and end (SQLite).

-- name: ensure_queue
INSERT INTO queues (name, created_at, updated_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING;

-- name: ensure_tenant
INSERT INTO tenants (name, created_at, updated_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING;

-- The parents a new job names: their tenant and status; marks them as having dependants.
-- name: mark_parents
UPDATE jobs SET has_dependants = 1
WHERE id IN (SELECT value FROM json_each(?))
RETURNING id, tenant, status;

-- name: insert_dependency
INSERT INTO job_dependencies (job_id, parent_id) VALUES (?, ?);

-- Blocked jobs waiting on any of these parents.
-- name: dependants_of
SELECT d.job_id, d.parent_id, j.on_parent_failure
FROM job_dependencies AS d JOIN jobs AS j ON j.id = d.job_id
WHERE d.parent_id IN (SELECT value FROM json_each(?)) AND j.status = 'blocked';

-- name: release_dependant
UPDATE jobs
SET deps_pending = max(deps_pending - :ended, 0),
    status = CASE WHEN deps_pending - :ended <= 0 THEN 'pending' ELSE 'blocked' END,
    run_at = CASE WHEN deps_pending - :ended <= 0 THEN max(run_at, :now) ELSE run_at END,
    updated_at = :now
WHERE id = :id AND status = 'blocked'
RETURNING status;

-- name: cancel_dependant
UPDATE jobs
SET status = 'cancelled', error = :error, finished_at = :now, updated_at = :now
WHERE id = :id AND status = 'blocked'
RETURNING has_dependants;
