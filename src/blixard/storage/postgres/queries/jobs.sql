-- Job queries (PostgreSQL). Batches travel as parallel arrays read with unnest(), so every
-- statement here is static text and a batch of any size is one statement. JSON values in
-- arrays travel as text and are cast to jsonb in SQL.

-- One statement for a whole batch. Idempotency is the unique index's job: a key already
-- used in the tenant (or being inserted by a concurrent transaction, which this one waits
-- for) is skipped; the ids actually inserted come back.
-- name: insert_jobs
INSERT INTO jobs (
    id, queue, tenant, payload, worker_types, req_cpu, req_memory_mb, req_gpu, req_labels,
    priority, run_at, max_attempts, backoff, timeout_s, idempotency_key, status, attempt,
    created_at, updated_at, req_constraints, preferences, concurrency_key, concurrency_limit,
    group_id, step, schedule_id, depends_on, on_parent_failure, deps_pending, error,
    finished_at
)
SELECT n.id, n.queue, n.tenant, n.payload::jsonb, n.worker_types::text[], n.req_cpu,
       n.req_memory_mb, n.req_gpu, n.req_labels::jsonb, n.priority, n.run_at, n.max_attempts,
       n.backoff::jsonb, n.timeout_s, n.idempotency_key, n.status, 0, n.created_at,
       n.created_at, n.req_constraints::jsonb, n.preferences::jsonb, n.concurrency_key,
       n.concurrency_limit, n.group_id, n.step, n.schedule_id, n.depends_on::text[],
       n.on_parent_failure, n.deps_pending, n.error::jsonb, n.finished_at
FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::double precision[],
    $7::bigint[], $8::integer[], $9::text[], $10::integer[], $11::double precision[],
    $12::integer[], $13::text[], $14::double precision[], $15::text[],
    $16::double precision[], $17::text[], $18::text[], $19::text[], $20::integer[],
    $21::text[], $22::text[], $23::text[], $24::text[], $25::text[], $26::text[],
    $27::integer[], $28::text[], $29::double precision[]
) AS n (
    id, queue, tenant, payload, worker_types, req_cpu, req_memory_mb, req_gpu, req_labels,
    priority, run_at, max_attempts, backoff, timeout_s, idempotency_key, created_at,
    req_constraints, preferences, concurrency_key, concurrency_limit, group_id, step,
    schedule_id, depends_on, on_parent_failure, status, deps_pending, error, finished_at
)
ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id;

-- name: find_idempotent
SELECT j.*
FROM unnest($1::text[], $2::text[]) AS k (tenant, idempotency_key)
JOIN jobs AS j ON j.tenant = k.tenant AND j.idempotency_key = k.idempotency_key
WHERE j.idempotency_key IS NOT NULL;

-- name: get_job
SELECT * FROM jobs WHERE id = $1;

-- name: get_job_for_update
SELECT * FROM jobs WHERE id = $1 FOR UPDATE;

-- name: get_jobs
SELECT * FROM jobs WHERE id = ANY ($1::text[]);

-- name: list_jobs
SELECT * FROM jobs
WHERE ($1::text[] IS NULL OR status = ANY ($1::text[]))
  AND ($2::text IS NULL OR queue = $2)
  AND ($3::text IS NULL OR tenant = $3)
  AND ($4::text IS NULL OR $4 = ANY (worker_types))
  AND ($5::text IS NULL OR id < $5)
  AND ($7::text IS NULL OR group_id = $7)
ORDER BY id DESC
LIMIT $6;

-- One status: walks jobs_by_status (status, id) backwards.
-- name: list_jobs_one_status
SELECT * FROM jobs
WHERE status = $1
  AND ($2::text IS NULL OR queue = $2)
  AND ($3::text IS NULL OR tenant = $3)
  AND ($4::text IS NULL OR $4 = ANY (worker_types))
  AND ($5::text IS NULL OR id < $5)
  AND ($7::text IS NULL OR group_id = $7)
ORDER BY id DESC
LIMIT $6;

-- name: job_attempts
SELECT job_id, attempt, worker_id, claimed_at, started_at, finished_at, outcome, error
FROM job_attempts WHERE job_id = $1 ORDER BY attempt;

-- name: insert_attempts
INSERT INTO job_attempts (
    job_id, attempt, worker_id, claimed_at, started_at, finished_at, outcome, error
)
SELECT a.job_id, a.attempt, a.worker_id, a.claimed_at, a.started_at, a.finished_at,
       a.outcome, a.error::jsonb
FROM unnest(
    $1::text[], $2::integer[], $3::text[], $4::double precision[], $5::double precision[],
    $6::double precision[], $7::text[], $8::text[]
) AS a (job_id, attempt, worker_id, claimed_at, started_at, finished_at, outcome, error);

-- The rows reports depend on, locked (in id order, so concurrent batches cannot deadlock)
-- until the plan made from them is applied.
-- name: report_state
SELECT id, status, claimed_by, attempt, max_attempts, backoff, claimed_at, started_at,
       has_dependants
FROM jobs WHERE id = ANY ($1::text[])
ORDER BY id
FOR UPDATE;

-- Each write kind is one statement over the whole plan; each row keeps its compare-and-set
-- guard (status, claiming worker, attempt).
-- name: start
UPDATE jobs AS j
SET status = 'in_progress', started_at = p.started_at, updated_at = $5
FROM unnest($1::text[], $2::double precision[], $3::text[], $4::integer[])
    AS p (id, started_at, worker_id, attempt)
WHERE j.id = p.id AND j.status = 'claimed'
  AND j.claimed_by = p.worker_id AND j.attempt = p.attempt;

-- name: complete
UPDATE jobs AS j
SET status = 'completed', result = p.result::jsonb, error = NULL, finished_at = $6,
    started_at = p.started_at, lease_expires_at = NULL, deadline_at = NULL, updated_at = $6
FROM unnest($1::text[], $2::text[], $3::double precision[], $4::text[], $5::integer[])
    AS p (id, result, started_at, worker_id, attempt)
WHERE j.id = p.id AND j.status IN ('claimed', 'in_progress')
  AND j.claimed_by = p.worker_id AND j.attempt = p.attempt;

-- name: requeue
UPDATE jobs AS j
SET status = 'pending', run_at = p.run_at, error = p.error::jsonb, claimed_by = NULL,
    claimed_at = NULL, started_at = NULL, lease_expires_at = NULL, deadline_at = NULL,
    updated_at = $6
FROM unnest($1::text[], $2::double precision[], $3::text[], $4::text[], $5::integer[])
    AS p (id, run_at, error, worker_id, attempt)
WHERE j.id = p.id AND j.status IN ('claimed', 'in_progress')
  AND j.claimed_by = p.worker_id AND j.attempt = p.attempt;

-- name: fail
UPDATE jobs AS j
SET status = 'failed', error = p.error::jsonb, finished_at = $5, lease_expires_at = NULL,
    deadline_at = NULL, updated_at = $5
FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[])
    AS p (id, error, worker_id, attempt)
WHERE j.id = p.id AND j.status IN ('claimed', 'in_progress')
  AND j.claimed_by = p.worker_id AND j.attempt = p.attempt;

-- name: cancel
UPDATE jobs
SET status = 'cancelled', error = $1::text::jsonb, finished_at = $2,
    lease_expires_at = NULL, deadline_at = NULL, updated_at = $2
WHERE id = $3 AND status IN ('blocked', 'pending', 'claimed', 'in_progress')
RETURNING *;

-- name: retry
UPDATE jobs
SET status = 'pending', run_at = $1, max_attempts = attempt + $2, finished_at = NULL,
    result = NULL, error = NULL, claimed_by = NULL, claimed_at = NULL, started_at = NULL,
    deps_pending = 0, updated_at = $1
WHERE id = $3 AND status IN ('failed', 'cancelled')
RETURNING *;

-- name: next_due
SELECT min(run_at) FROM jobs WHERE status = 'pending';

-- Expired leases, oldest first; rows another transaction holds (a report being applied)
-- are left for the next pass.
-- name: expired_leases
SELECT * FROM jobs
WHERE status IN ('claimed', 'in_progress') AND lease_expires_at < $1
ORDER BY lease_expires_at
LIMIT $2
FOR UPDATE SKIP LOCKED;

-- Statistics after a burst of submits (see PostgresStore._analyze_soon).
-- name: analyze_jobs
ANALYZE jobs;
