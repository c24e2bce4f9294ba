-- Queues, tenants and dependencies as jobs arrive and end (PostgreSQL).

-- name: ensure_names
WITH q AS (
    INSERT INTO queues (name, created_at, updated_at)
    SELECT name, $3, $3 FROM unnest($1::text[]) AS n (name)
    ON CONFLICT DO NOTHING
)
INSERT INTO tenants (name, created_at, updated_at)
SELECT name, $3, $3 FROM unnest($2::text[]) AS n (name)
ON CONFLICT DO NOTHING;

-- The parents new jobs name: marked as having dependants (the row lock this takes orders
-- the insert against a parent's end: whichever commits second sees the other), with their
-- tenant and status as of now.
-- name: mark_parents
UPDATE jobs SET has_dependants = true
WHERE id IN (SELECT id FROM unnest($1::text[]) AS p (id) ORDER BY id)
RETURNING id, tenant, status;

-- name: insert_dependencies
INSERT INTO job_dependencies (job_id, parent_id)
SELECT job_id, parent_id FROM unnest($1::text[], $2::text[]) AS d (job_id, parent_id);

-- Blocked jobs waiting on any of these parents, locked.
-- name: dependants_of
SELECT d.job_id, d.parent_id, j.on_parent_failure
FROM job_dependencies AS d JOIN jobs AS j ON j.id = d.job_id
WHERE d.parent_id = ANY ($1::text[]) AND j.status = 'blocked'
ORDER BY d.job_id
FOR UPDATE OF j;

-- name: release_dependants
UPDATE jobs AS j
SET deps_pending = greatest(j.deps_pending - r.ended, 0),
    status = CASE WHEN j.deps_pending - r.ended <= 0 THEN 'pending' ELSE 'blocked' END,
    run_at = CASE WHEN j.deps_pending - r.ended <= 0 THEN greatest(j.run_at, $3)
                  ELSE j.run_at END,
    updated_at = $3
FROM unnest($1::text[], $2::integer[]) AS r (id, ended)
WHERE j.id = r.id AND j.status = 'blocked'
RETURNING j.id, j.status;

-- name: cancel_dependants
UPDATE jobs AS j
SET status = 'cancelled', error = c.error::jsonb, finished_at = $3, updated_at = $3
FROM unnest($1::text[], $2::text[]) AS c (id, error)
WHERE j.id = c.id AND j.status = 'blocked'
RETURNING j.id, j.has_dependants;
