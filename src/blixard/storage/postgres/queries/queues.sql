-- Queues, tenants and groups: administration, and what the unschedulable diagnosis reads
-- (PostgreSQL). Queues and tenants get a row from their first job on (the insert path) or
-- from their first configuration (here).

-- name: queue_rows
SELECT name, paused, max_running, rate_limit, rate_period_s, rate_tokens, rate_updated_at,
       created_at, updated_at
FROM queues ORDER BY name;

-- name: queue_row
SELECT name, paused, max_running, rate_limit, rate_period_s, rate_tokens, rate_updated_at,
       created_at, updated_at
FROM queues WHERE name = $1;

-- name: queue_job_counts
SELECT queue, status, count(*)::integer FROM jobs GROUP BY queue, status;

-- name: one_queue_job_counts
SELECT queue, status, count(*)::integer FROM jobs WHERE queue = $1 GROUP BY queue, status;

-- name: queue_oldest_pending
SELECT queue, min(created_at) FROM jobs WHERE status = 'pending' GROUP BY queue;

-- name: one_queue_oldest_pending
SELECT queue, min(created_at) FROM jobs
WHERE queue = $1 AND status = 'pending' GROUP BY queue;

-- name: create_queue_if_missing
INSERT INTO queues (name, created_at, updated_at) VALUES ($1, $2, $2) ON CONFLICT DO NOTHING;

-- The row to change, locked until the change commits: two changes to one queue apply one
-- after the other, each to what the other left.
-- name: queue_row_for_update
SELECT name, paused, max_running, rate_limit, rate_period_s, rate_tokens, rate_updated_at,
       created_at, updated_at
FROM queues WHERE name = $1
FOR UPDATE;

-- name: update_queue
UPDATE queues
SET paused = $2, max_running = $3, rate_limit = $4, rate_period_s = $5, rate_tokens = $6,
    rate_updated_at = $7, updated_at = $8
WHERE name = $1;

-- name: tenant_rows
SELECT name, weight, max_running, served_at, created_at, updated_at FROM tenants ORDER BY name;

-- name: tenant_row
SELECT name, weight, max_running, served_at, created_at, updated_at FROM tenants WHERE name = $1;

-- name: tenant_job_counts
SELECT tenant, status, count(*)::integer FROM jobs GROUP BY tenant, status;

-- name: one_tenant_job_counts
SELECT tenant, status, count(*)::integer FROM jobs WHERE tenant = $1 GROUP BY tenant, status;

-- name: tenant_oldest_pending
SELECT tenant, min(created_at) FROM jobs WHERE status = 'pending' GROUP BY tenant;

-- name: one_tenant_oldest_pending
SELECT tenant, min(created_at) FROM jobs
WHERE tenant = $1 AND status = 'pending' GROUP BY tenant;

-- name: create_tenant_if_missing
INSERT INTO tenants (name, created_at, updated_at) VALUES ($1, $2, $2) ON CONFLICT DO NOTHING;

-- name: tenant_row_for_update
SELECT name, weight, max_running, served_at, created_at, updated_at FROM tenants
WHERE name = $1
FOR UPDATE;

-- name: update_tenant
UPDATE tenants SET weight = $2, max_running = $3, updated_at = $4 WHERE name = $1;

-- A group's jobs by status, with the group's times.
-- name: group_counts
SELECT status, count(*)::integer, min(created_at), max(updated_at), max(finished_at)
FROM jobs WHERE group_id = $1 GROUP BY status;

-- name: group_exists
SELECT EXISTS (SELECT 1 FROM jobs WHERE group_id = $1);

-- The group's unfinished jobs, locked in id order (like report batches lock theirs) so
-- their statuses hold until they are cancelled.
-- name: lock_group
SELECT id, status FROM jobs
WHERE group_id = $1 AND status IN ('blocked', 'pending', 'claimed', 'in_progress')
ORDER BY id
FOR UPDATE;

-- The attempt rows of the group's running jobs, written before they are cancelled.
-- name: group_cancel_attempts
INSERT INTO job_attempts (
    job_id, attempt, worker_id, claimed_at, started_at, finished_at, outcome, error
)
SELECT id, attempt, claimed_by, claimed_at, started_at, $2, 'cancelled', $3::text::jsonb
FROM jobs
WHERE group_id = $1 AND status IN ('claimed', 'in_progress');

-- name: group_cancel
UPDATE jobs
SET status = 'cancelled', error = $3::text::jsonb, finished_at = $2, lease_expires_at = NULL,
    deadline_at = NULL, updated_at = $2
WHERE group_id = $1 AND status IN ('blocked', 'pending', 'claimed', 'in_progress')
RETURNING *;

-- The distinct shapes of waiting jobs (of one tenant, or all), most common first.
-- name: pending_shapes
SELECT worker_types, req_cpu, req_memory_mb, req_gpu, req_labels, req_constraints,
       count(*)::integer AS jobs
FROM jobs
WHERE status IN ('pending', 'blocked') AND ($1::text IS NULL OR tenant = $1)
GROUP BY worker_types, req_cpu, req_memory_mb, req_gpu, req_labels, req_constraints
ORDER BY jobs DESC
LIMIT $2;
