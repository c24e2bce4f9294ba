-- Copying a database (blixard db copy): export in id order, import verbatim, each import
-- kind one statement over unnest()ed arrays; records whose key exists are left alone.

-- name: export_jobs
SELECT * FROM jobs WHERE ($1::text IS NULL OR id > $1) ORDER BY id LIMIT $2;

-- name: export_attempts
SELECT job_id, attempt, worker_id, claimed_at, started_at, finished_at, outcome, error
FROM job_attempts WHERE job_id = ANY ($1::text[])
ORDER BY job_id, attempt;

-- Every column but the private deadline (a copied running job is reaped by its lease).
-- name: import_jobs
INSERT INTO jobs (
    id, queue, tenant, payload, worker_types, req_cpu, req_memory_mb, req_gpu, req_labels,
    priority, run_at, max_attempts, backoff, timeout_s, idempotency_key, status, attempt,
    claimed_by, claimed_at, lease_expires_at, deadline_at, started_at, finished_at, result,
    error, created_at, updated_at, req_constraints, preferences, concurrency_key,
    concurrency_limit, group_id, step, schedule_id, depends_on, on_parent_failure,
    deps_pending
)
SELECT n.id, n.queue, n.tenant, n.payload::jsonb, n.worker_types::text[], n.req_cpu,
       n.req_memory_mb, n.req_gpu, n.req_labels::jsonb, n.priority, n.run_at, n.max_attempts,
       n.backoff::jsonb, n.timeout_s, n.idempotency_key, n.status, n.attempt, n.claimed_by,
       n.claimed_at, n.lease_expires_at, NULL, n.started_at, n.finished_at, n.result::jsonb,
       n.error::jsonb, n.created_at, n.updated_at, n.req_constraints::jsonb,
       n.preferences::jsonb, n.concurrency_key, n.concurrency_limit, n.group_id, n.step,
       n.schedule_id, n.depends_on::text[], n.on_parent_failure, n.deps_pending
FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::double precision[],
    $7::bigint[], $8::integer[], $9::text[], $10::integer[], $11::double precision[],
    $12::integer[], $13::text[], $14::double precision[], $15::text[], $16::text[],
    $17::integer[], $18::text[], $19::double precision[], $20::double precision[],
    $21::double precision[], $22::double precision[], $23::text[], $24::text[],
    $25::double precision[], $26::double precision[], $27::text[], $28::text[], $29::text[],
    $30::integer[], $31::text[], $32::text[], $33::text[], $34::text[], $35::text[],
    $36::integer[]
) AS n (
    id, queue, tenant, payload, worker_types, req_cpu, req_memory_mb, req_gpu, req_labels,
    priority, run_at, max_attempts, backoff, timeout_s, idempotency_key, status, attempt,
    claimed_by, claimed_at, lease_expires_at, started_at, finished_at, result, error,
    created_at, updated_at, req_constraints, preferences, concurrency_key, concurrency_limit,
    group_id, step, schedule_id, depends_on, on_parent_failure, deps_pending
)
ON CONFLICT DO NOTHING;

-- Attempts of jobs the target does not have (skipped above) are skipped too.
-- name: import_attempts
INSERT INTO job_attempts (
    job_id, attempt, worker_id, claimed_at, started_at, finished_at, outcome, error
)
SELECT a.job_id, a.attempt, a.worker_id, a.claimed_at, a.started_at, a.finished_at,
       a.outcome, a.error::jsonb
FROM unnest(
    $1::text[], $2::integer[], $3::text[], $4::double precision[], $5::double precision[],
    $6::double precision[], $7::text[], $8::text[]
) AS a (job_id, attempt, worker_id, claimed_at, started_at, finished_at, outcome, error)
WHERE EXISTS (SELECT 1 FROM jobs AS j WHERE j.id = a.job_id)
ON CONFLICT DO NOTHING;

-- name: import_workers
INSERT INTO workers (
    id, worker_type, name, concurrency, cpu, memory_mb, gpu, labels, capabilities, host,
    pid, version, status, registered_at, last_seen_at
)
SELECT w.id, w.worker_type, w.name, w.concurrency, w.cpu, w.memory_mb, w.gpu,
       w.labels::jsonb, w.capabilities::jsonb, w.host, w.pid, w.version, w.status,
       w.registered_at, w.last_seen_at
FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::integer[], $5::double precision[],
    $6::bigint[], $7::integer[], $8::text[], $9::text[], $10::text[], $11::integer[],
    $12::text[], $13::text[], $14::double precision[], $15::double precision[]
) AS w (
    id, worker_type, name, concurrency, cpu, memory_mb, gpu, labels, capabilities, host,
    pid, version, status, registered_at, last_seen_at
)
ON CONFLICT DO NOTHING;

-- Links of copied jobs to copied parents, and the queues and tenants they name.
-- name: import_links
WITH links AS (
    INSERT INTO job_dependencies (job_id, parent_id)
    SELECT j.id, p.parent_id
    FROM jobs AS j CROSS JOIN LATERAL unnest(j.depends_on) AS p (parent_id)
    WHERE j.id = ANY ($1::text[])
      AND EXISTS (SELECT 1 FROM jobs AS x WHERE x.id = p.parent_id)
    ON CONFLICT DO NOTHING
    RETURNING parent_id
), marked AS (
    UPDATE jobs SET has_dependants = true WHERE id IN (SELECT parent_id FROM links)
), q AS (
    INSERT INTO queues (name, created_at, updated_at)
    SELECT DISTINCT queue, $2::double precision, $2::double precision FROM jobs
    WHERE id = ANY ($1::text[])
    ON CONFLICT DO NOTHING
)
INSERT INTO tenants (name, created_at, updated_at)
SELECT DISTINCT tenant, $2::double precision, $2::double precision FROM jobs
WHERE id = ANY ($1::text[])
ON CONFLICT DO NOTHING;
