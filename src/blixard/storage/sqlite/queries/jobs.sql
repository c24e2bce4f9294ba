-- Job queries (SQLite). Lists of ids are passed as one JSON array and read with json_each,
-- so every statement here is static text.

-- name: insert_job
INSERT INTO jobs (
    id, queue, tenant, payload, worker_types, req_cpu, req_memory_mb, req_gpu, req_labels,
    req_constraints, preferences, priority, run_at, max_attempts, backoff, timeout_s,
    idempotency_key, concurrency_key, concurrency_limit, group_id, step, schedule_id,
    depends_on, on_parent_failure, deps_pending, status, finished_at, error, created_at,
    updated_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
          ?, ?);

-- name: find_idempotent
SELECT * FROM jobs WHERE tenant = ? AND idempotency_key = ?;

-- name: get_job
SELECT * FROM jobs WHERE id = ?;

-- name: get_jobs
SELECT * FROM jobs WHERE id IN (SELECT value FROM json_each(?));

-- name: list_jobs
SELECT * FROM jobs
WHERE (:status IS NULL OR status IN (SELECT value FROM json_each(:status)))
  AND (:queue IS NULL OR queue = :queue)
  AND (:tenant IS NULL OR tenant = :tenant)
  AND (:worker_type IS NULL
       OR EXISTS (SELECT 1 FROM json_each(jobs.worker_types) WHERE value = :worker_type))
  AND (:group_id IS NULL OR group_id = :group_id)
  AND (:before IS NULL OR id < :before)
ORDER BY id DESC
LIMIT :limit;

-- name: list_jobs_one_status
SELECT * FROM jobs INDEXED BY jobs_by_status
WHERE status = :one_status
  AND (:queue IS NULL OR queue = :queue)
  AND (:tenant IS NULL OR tenant = :tenant)
  AND (:worker_type IS NULL
       OR EXISTS (SELECT 1 FROM json_each(jobs.worker_types) WHERE value = :worker_type))
  AND (:group_id IS NULL OR group_id = :group_id)
  AND (:before IS NULL OR id < :before)
ORDER BY id DESC
LIMIT :limit;

-- name: job_attempts
SELECT job_id, attempt, worker_id, claimed_at, started_at, finished_at, outcome, error
FROM job_attempts WHERE job_id = ? ORDER BY attempt;

-- name: insert_attempt
INSERT INTO job_attempts (
    job_id, attempt, worker_id, claimed_at, started_at, finished_at, outcome, error
) VALUES (?, ?, ?, ?, ?, ?, ?, ?);

-- name: report_state
SELECT id, status, claimed_by, attempt, max_attempts, backoff, claimed_at, started_at,
       has_dependants
FROM jobs WHERE id IN (SELECT value FROM json_each(?));

-- name: start
UPDATE jobs SET status = 'in_progress', started_at = ?, updated_at = ?
WHERE id = ? AND status = 'claimed' AND claimed_by = ? AND attempt = ?;

-- name: complete
UPDATE jobs
SET status = 'completed', result = ?, error = NULL, finished_at = ?, started_at = ?,
    lease_expires_at = NULL, deadline_at = NULL, updated_at = ?
WHERE id = ? AND status IN ('claimed', 'in_progress') AND claimed_by = ? AND attempt = ?;

-- name: requeue
UPDATE jobs
SET status = 'pending', run_at = ?, error = ?, claimed_by = NULL, claimed_at = NULL,
    started_at = NULL, lease_expires_at = NULL, deadline_at = NULL, updated_at = ?
WHERE id = ? AND status IN ('claimed', 'in_progress') AND claimed_by = ? AND attempt = ?;

-- name: fail
UPDATE jobs
SET status = 'failed', error = ?, finished_at = ?, lease_expires_at = NULL,
    deadline_at = NULL, updated_at = ?
WHERE id = ? AND status IN ('claimed', 'in_progress') AND claimed_by = ? AND attempt = ?;

-- name: cancel
UPDATE jobs
SET status = 'cancelled', error = ?, finished_at = ?, lease_expires_at = NULL,
    deadline_at = NULL, updated_at = ?
WHERE id = ? AND status IN ('blocked', 'pending', 'claimed', 'in_progress')
RETURNING *;

-- name: retry
UPDATE jobs
SET status = 'pending', run_at = ?, max_attempts = attempt + ?, finished_at = NULL,
    result = NULL, error = NULL, claimed_by = NULL, claimed_at = NULL, started_at = NULL,
    deps_pending = 0, updated_at = ?
WHERE id = ? AND status IN ('failed', 'cancelled')
RETURNING *;

-- name: next_due
SELECT min(run_at) FROM jobs INDEXED BY jobs_pending_due WHERE status = 'pending';

-- name: expired_leases
SELECT * FROM jobs INDEXED BY jobs_leases
WHERE status IN ('claimed', 'in_progress') AND lease_expires_at < ?
ORDER BY lease_expires_at
LIMIT ?;

-- name: heartbeat_state
SELECT id, status, claimed_by, attempt FROM jobs
WHERE id IN (SELECT value FROM json_each(?));

-- name: renew_leases
UPDATE jobs SET lease_expires_at = min(:lease, coalesce(deadline_at, :lease))
WHERE id IN (SELECT value FROM json_each(:ids))
  AND status IN ('claimed', 'in_progress') AND claimed_by = :worker_id;
