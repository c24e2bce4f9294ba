-- Queues, tenants and groups: administration, and what the unschedulable diagnosis reads
-- (SQLite). Queues and tenants get a row from their first job on (the insert path) or
-- from their first configuration (here).

-- name: queue_rows
SELECT name, paused, max_running, rate_limit, rate_period_s, rate_tokens, rate_updated_at,
       created_at, updated_at
FROM queues ORDER BY name;

-- name: queue_row
SELECT name, paused, max_running, rate_limit, rate_period_s, rate_tokens, rate_updated_at,
       created_at, updated_at
FROM queues WHERE name = ?;

-- Jobs per queue and status: a walk of the covering index jobs_by_queue.
-- name: queue_job_counts
SELECT queue, status, count(*) FROM jobs INDEXED BY jobs_by_queue GROUP BY queue, status;

-- name: one_queue_job_counts
SELECT queue, status, count(*) FROM jobs INDEXED BY jobs_by_queue
WHERE queue = ? GROUP BY queue, status;

-- The oldest pending job of each queue is its first by id (ids are time-ordered): the
-- index entries carry the id, so only that job's row is read.
-- name: queue_oldest_pending
SELECT f.queue, j.created_at
FROM (SELECT queue, min(id) AS id FROM jobs INDEXED BY jobs_by_queue
      WHERE status = 'pending' GROUP BY queue) AS f
JOIN jobs AS j ON j.id = f.id;

-- name: one_queue_oldest_pending
SELECT f.queue, j.created_at
FROM (SELECT queue, min(id) AS id FROM jobs INDEXED BY jobs_by_queue
      WHERE queue = ? AND status = 'pending' GROUP BY queue) AS f
JOIN jobs AS j ON j.id = f.id;

-- name: create_queue_if_missing
INSERT INTO queues (name, created_at, updated_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING;

-- name: update_queue
UPDATE queues
SET paused = :paused, max_running = :max_running, rate_limit = :rate_limit,
    rate_period_s = :rate_period_s, rate_tokens = :rate_tokens,
    rate_updated_at = :rate_updated_at, updated_at = :now
WHERE name = :name;

-- name: tenant_rows
SELECT name, weight, max_running, served_at, created_at, updated_at FROM tenants ORDER BY name;

-- name: tenant_row
SELECT name, weight, max_running, served_at, created_at, updated_at FROM tenants WHERE name = ?;

-- Jobs per tenant and status. No index holds (tenant, status): this reads every job.
-- name: tenant_job_counts
SELECT tenant, status, count(*) FROM jobs GROUP BY tenant, status;

-- name: one_tenant_job_counts
SELECT tenant, status, count(*) FROM jobs INDEXED BY jobs_by_tenant
WHERE tenant = ? GROUP BY tenant, status;

-- Pending jobs are in jobs_claimable, whose first column is the tenant.
-- name: tenant_oldest_pending
SELECT f.tenant, j.created_at
FROM (SELECT tenant, min(id) AS id FROM jobs INDEXED BY jobs_claimable
      WHERE status = 'pending' GROUP BY tenant) AS f
JOIN jobs AS j ON j.id = f.id;

-- name: one_tenant_oldest_pending
SELECT f.tenant, j.created_at
FROM (SELECT tenant, min(id) AS id FROM jobs INDEXED BY jobs_claimable
      WHERE tenant = ? AND status = 'pending' GROUP BY tenant) AS f
JOIN jobs AS j ON j.id = f.id;

-- name: create_tenant_if_missing
INSERT INTO tenants (name, created_at, updated_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING;

-- name: update_tenant
UPDATE tenants SET weight = :weight, max_running = :max_running, updated_at = :now
WHERE name = :name;

-- A group's jobs by status, with the group's times.
-- name: group_counts
SELECT status, count(*), min(created_at), max(updated_at), max(finished_at)
FROM jobs INDEXED BY jobs_by_group
WHERE group_id = ?
GROUP BY status;

-- The attempt rows of the group's running jobs, written before they are cancelled.
-- name: group_cancel_attempts
INSERT INTO job_attempts (
    job_id, attempt, worker_id, claimed_at, started_at, finished_at, outcome, error
)
SELECT id, attempt, claimed_by, claimed_at, started_at, :now, 'cancelled', :error
FROM jobs INDEXED BY jobs_by_group
WHERE group_id = :group_id AND status IN ('claimed', 'in_progress');

-- name: group_cancel
UPDATE jobs
SET status = 'cancelled', error = :error, finished_at = :now, lease_expires_at = NULL,
    deadline_at = NULL, updated_at = :now
WHERE group_id = :group_id AND status IN ('blocked', 'pending', 'claimed', 'in_progress')
RETURNING *;

-- The distinct shapes of waiting jobs (of one tenant, or all), most common first.
-- name: pending_shapes
SELECT worker_types, req_cpu, req_memory_mb, req_gpu, req_labels, req_constraints, count(*)
FROM jobs INDEXED BY jobs_by_status
WHERE status IN ('pending', 'blocked') AND (:tenant IS NULL OR tenant = :tenant)
GROUP BY worker_types, req_cpu, req_memory_mb, req_gpu, req_labels, req_constraints
ORDER BY count(*) DESC
LIMIT :limit;

-- name: group_exists
SELECT 1 FROM jobs INDEXED BY jobs_by_group WHERE group_id = ? LIMIT 1;
