-- Worker queries (PostgreSQL). Every worker row comes back with its usage (running jobs
-- and the resources they hold), computed through jobs_by_worker in the same statement.

-- name: upsert_worker
WITH w AS (
    INSERT INTO workers (
        id, worker_type, name, concurrency, cpu, memory_mb, gpu, labels, capabilities, host,
        pid, version, status, registered_at, last_seen_at
    ) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'online', $13, $13)
    ON CONFLICT (id) DO UPDATE SET
        worker_type = excluded.worker_type, name = excluded.name,
        concurrency = excluded.concurrency, cpu = excluded.cpu,
        memory_mb = excluded.memory_mb, gpu = excluded.gpu, labels = excluded.labels,
        capabilities = excluded.capabilities, host = excluded.host, pid = excluded.pid,
        version = excluded.version, status = 'online', last_seen_at = excluded.last_seen_at
    RETURNING *
)
SELECT w.*, u.*
FROM w CROSS JOIN LATERAL (
    SELECT count(*)::integer AS running,
           coalesce(sum(j.req_cpu), 0)::double precision AS used_cpu,
           coalesce(sum(j.req_memory_mb), 0)::bigint AS used_memory_mb,
           coalesce(sum(j.req_gpu), 0)::bigint AS used_gpu
    FROM jobs AS j
    WHERE j.claimed_by = w.id AND j.status IN ('claimed', 'in_progress')
) AS u;

-- name: get_worker
SELECT w.*, u.*
FROM workers AS w CROSS JOIN LATERAL (
    SELECT count(*)::integer AS running,
           coalesce(sum(j.req_cpu), 0)::double precision AS used_cpu,
           coalesce(sum(j.req_memory_mb), 0)::bigint AS used_memory_mb,
           coalesce(sum(j.req_gpu), 0)::bigint AS used_gpu
    FROM jobs AS j
    WHERE j.claimed_by = w.id AND j.status IN ('claimed', 'in_progress')
) AS u
WHERE w.id = $1;

-- name: list_workers
SELECT w.*, u.*
FROM workers AS w CROSS JOIN LATERAL (
    SELECT count(*)::integer AS running,
           coalesce(sum(j.req_cpu), 0)::double precision AS used_cpu,
           coalesce(sum(j.req_memory_mb), 0)::bigint AS used_memory_mb,
           coalesce(sum(j.req_gpu), 0)::bigint AS used_gpu
    FROM jobs AS j
    WHERE j.claimed_by = w.id AND j.status IN ('claimed', 'in_progress')
) AS u
WHERE ($1::text IS NULL OR w.status = $1)
ORDER BY w.registered_at, w.id;

-- The heartbeat in one statement: touch the worker (a lost worker comes back online), renew
-- the leases of the listed (job, attempt) pairs it still holds (capped by each job's
-- deadline), and return the worker with its usage and the renewed pairs. No row: unknown
-- worker, and nothing renewed. The job rows are locked in id order first, like reports
-- lock theirs, so a heartbeat and a report batch of one worker cannot deadlock.
-- name: heartbeat
WITH w AS (
    UPDATE workers
    SET last_seen_at = $2,
        status = CASE WHEN status = 'offline' THEN 'online' ELSE status END
    WHERE id = $1
    RETURNING *
), held AS MATERIALIZED (
    SELECT j.id FROM jobs AS j
    WHERE j.id = ANY ($3::text[]) AND j.claimed_by = $1
      AND j.status IN ('claimed', 'in_progress')
    ORDER BY j.id
    FOR UPDATE
), renewed AS (
    UPDATE jobs AS j
    SET lease_expires_at = least($5::double precision,
                                 coalesce(j.deadline_at, $5::double precision))
    FROM held AS h, unnest($3::text[], $4::integer[]) AS r (id, attempt)
    WHERE j.id = h.id AND j.id = r.id AND j.attempt = r.attempt AND j.claimed_by = $1
      AND j.status IN ('claimed', 'in_progress')
      AND EXISTS (SELECT 1 FROM w)
    RETURNING j.id, j.attempt
)
SELECT w.*, u.*,
       (SELECT coalesce(jsonb_agg(jsonb_build_array(r.id, r.attempt)), '[]'::jsonb)
        FROM renewed AS r) AS renewed
FROM w CROSS JOIN LATERAL (
    SELECT count(*)::integer AS running,
           coalesce(sum(j.req_cpu), 0)::double precision AS used_cpu,
           coalesce(sum(j.req_memory_mb), 0)::bigint AS used_memory_mb,
           coalesce(sum(j.req_gpu), 0)::bigint AS used_gpu
    FROM jobs AS j
    WHERE j.claimed_by = w.id AND j.status IN ('claimed', 'in_progress')
) AS u;

-- name: set_worker_status
WITH w AS (
    UPDATE workers SET status = $2 WHERE id = $1 RETURNING *
)
SELECT w.*, u.*
FROM w CROSS JOIN LATERAL (
    SELECT count(*)::integer AS running,
           coalesce(sum(j.req_cpu), 0)::double precision AS used_cpu,
           coalesce(sum(j.req_memory_mb), 0)::bigint AS used_memory_mb,
           coalesce(sum(j.req_gpu), 0)::bigint AS used_gpu
    FROM jobs AS j
    WHERE j.claimed_by = w.id AND j.status IN ('claimed', 'in_progress')
) AS u;

-- name: mark_lost_workers
WITH w AS (
    UPDATE workers SET status = 'offline'
    WHERE status <> 'offline' AND last_seen_at < $1
    RETURNING *
)
SELECT w.*, u.*
FROM w CROSS JOIN LATERAL (
    SELECT count(*)::integer AS running,
           coalesce(sum(j.req_cpu), 0)::double precision AS used_cpu,
           coalesce(sum(j.req_memory_mb), 0)::bigint AS used_memory_mb,
           coalesce(sum(j.req_gpu), 0)::bigint AS used_gpu
    FROM jobs AS j
    WHERE j.claimed_by = w.id AND j.status IN ('claimed', 'in_progress')
) AS u
ORDER BY w.registered_at, w.id;
