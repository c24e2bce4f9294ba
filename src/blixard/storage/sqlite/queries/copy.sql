-- Copying a database (blixard db copy): export in id order, import verbatim.

-- name: export_jobs
SELECT * FROM jobs WHERE (:after IS NULL OR id > :after) ORDER BY id LIMIT :limit;

-- name: export_attempts
SELECT job_id, attempt, worker_id, claimed_at, started_at, finished_at, outcome, error
FROM job_attempts WHERE job_id IN (SELECT value FROM json_each(?))
ORDER BY job_id, attempt;

-- name: import_job
INSERT INTO jobs (
    id, queue, tenant, payload, worker_types, req_cpu, req_memory_mb, req_gpu, req_labels,
    req_constraints, preferences, priority, run_at, max_attempts, backoff, timeout_s,
    idempotency_key, concurrency_key, concurrency_limit, group_id, step, schedule_id,
    depends_on, on_parent_failure, deps_pending, status, attempt, claimed_by, claimed_at,
    lease_expires_at, deadline_at, started_at, finished_at, result, error, created_at,
    updated_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
          ?, NULL, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING;

-- name: import_attempt
INSERT INTO job_attempts (
    job_id, attempt, worker_id, claimed_at, started_at, finished_at, outcome, error
) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING;

-- name: import_worker
INSERT INTO workers (
    id, worker_type, name, concurrency, cpu, memory_mb, gpu, labels, capabilities, host,
    pid, version, status, registered_at, last_seen_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING;

-- A copied job's link to its parent, when the parent was copied (parents come first in id
-- order).
-- name: import_dependency
INSERT INTO job_dependencies (job_id, parent_id)
SELECT ?, ? WHERE EXISTS (SELECT 1 FROM jobs WHERE id = ?)
ON CONFLICT DO NOTHING;

-- name: mark_has_dependants
UPDATE jobs SET has_dependants = 1 WHERE id = ?;
