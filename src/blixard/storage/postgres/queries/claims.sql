-- The claim (PostgreSQL), in a READ COMMITTED transaction. Locks come first, always in
-- this order, so claims never deadlock: the worker row (a worker's claims run one after
-- the other: its free capacity is never counted twice), the capped or rate-limited queues
-- and the tenants with a quota (by name), then the concurrency keys met (advisory locks,
-- in key order). Each count is read by a statement after the locks that guard it, so it
-- sees every claim that committed before. Jobs are locked with SKIP LOCKED: two claims
-- never take the same job and never wait for each other's candidates.

-- The worker row, locked, and the claim's context read after the locks (see
-- blixard_claim_context in migration 0002): one round trip. NULL for an unknown worker.
-- name: claim_context
SELECT blixard_claim_context($1);

-- Each tenant's claimable jobs for this worker, in claim order, after the tenant's keyset
-- position, skipping blocked queues and full keys: one index walk per tenant.
-- name: claim_candidates
SELECT c.*
FROM unnest($1::text[], $2::integer[], $3::double precision[], $4::text[])
     AS t (tenant, after_priority, after_run_at, after_id)
CROSS JOIN LATERAL (
    SELECT j.id, j.tenant, j.queue, j.priority, j.run_at, j.req_cpu, j.req_memory_mb,
           j.req_gpu, j.req_constraints::text, j.preferences::text, j.concurrency_key,
           j.concurrency_limit
    FROM jobs AS j
    WHERE j.tenant = t.tenant
      AND j.status = 'pending'
      AND j.run_at <= $5
      AND (j.worker_types = '{}' OR $6 = ANY (j.worker_types))
      AND (j.req_labels = '{}' OR $7::jsonb @> j.req_labels)
      AND j.req_cpu <= $8 AND j.req_memory_mb <= $9 AND j.req_gpu <= $10
      AND j.queue <> ALL ($11::text[])
      AND (j.concurrency_key IS NULL
           OR NOT EXISTS (SELECT 1 FROM unnest($12::text[], $14::integer[]) AS b (key, n)
                          WHERE b.key = j.concurrency_key AND b.n >= j.concurrency_limit))
      AND (t.after_id IS NULL
           OR j.priority < t.after_priority
           OR (j.priority = t.after_priority
               AND (j.run_at > t.after_run_at
                    OR (j.run_at = t.after_run_at AND j.id > t.after_id))))
    ORDER BY j.priority DESC, j.run_at, j.id
    LIMIT $13
    FOR UPDATE OF j SKIP LOCKED
) AS c;

-- The same, among the jobs with a preference this worker's labels meet (jobs_preferring).
-- name: claim_preferring
SELECT c.*
FROM unnest($1::text[]) AS t (tenant)
CROSS JOIN LATERAL (
    SELECT j.id, j.tenant, j.queue, j.priority, j.run_at, j.req_cpu, j.req_memory_mb,
           j.req_gpu, j.req_constraints::text, j.preferences::text, j.concurrency_key,
           j.concurrency_limit
    FROM jobs AS j
    WHERE j.tenant = t.tenant
      AND j.status = 'pending'
      AND j.preferences <> '[]'
      AND EXISTS (SELECT 1 FROM jsonb_array_elements(j.preferences) AS p (pref)
                  WHERE p.pref -> 'values' ? ($4::jsonb ->> (p.pref ->> 'label')))
      AND j.run_at <= $2
      AND (j.worker_types = '{}' OR $3 = ANY (j.worker_types))
      AND (j.req_labels = '{}' OR $4::jsonb @> j.req_labels)
      AND j.req_cpu <= $5 AND j.req_memory_mb <= $6 AND j.req_gpu <= $7
      AND j.queue <> ALL ($8::text[])
      AND (j.concurrency_key IS NULL
           OR NOT EXISTS (SELECT 1 FROM unnest($9::text[], $11::integer[]) AS b (key, n)
                          WHERE b.key = j.concurrency_key AND b.n >= j.concurrency_limit))
    ORDER BY j.priority DESC, j.run_at, j.id
    LIMIT $10
    FOR UPDATE OF j SKIP LOCKED
) AS c;

-- name: lock_keys
SELECT count(pg_advisory_xact_lock(k.key))
FROM (SELECT key FROM unnest($1::bigint[]) AS u (key) ORDER BY key) AS k;

-- name: try_lock_keys
SELECT k.key, pg_try_advisory_xact_lock(k.key)
FROM (SELECT key FROM unnest($1::bigint[]) AS u (key) ORDER BY key) AS k;

-- name: active_by_key
SELECT concurrency_key, count(*)::integer FROM jobs
WHERE status IN ('claimed', 'in_progress') AND concurrency_key = ANY ($1::text[])
GROUP BY concurrency_key;

-- Mark the chosen jobs claimed.
-- name: claim
UPDATE jobs AS t
SET status = 'claimed',
    attempt = t.attempt + 1,
    claimed_by = $2,
    claimed_at = $4::double precision,
    lease_expires_at = $4::double precision + $3::double precision,
    deadline_at = CASE WHEN t.timeout_s IS NULL THEN NULL ELSE $4 + t.timeout_s + $3 END,
    started_at = NULL,
    updated_at = $4
WHERE t.id = ANY ($1::text[]) AND t.status = 'pending'
RETURNING t.*;

-- Mark the chosen jobs claimed, spend rate tokens, and move the served tenants to the back
-- of the round robin (a tenant row another claim holds is left alone: never wait there).
-- name: claim_and_account
WITH spent AS (
    UPDATE queues AS q SET rate_tokens = s.tokens, rate_updated_at = $4
    FROM unnest($5::text[], $6::double precision[]) AS s (name, tokens)
    WHERE q.name = s.name
), served AS (
    UPDATE tenants AS t SET served_at = $4
    WHERE t.name IN (SELECT name FROM tenants WHERE name = ANY ($7::text[])
                     FOR UPDATE SKIP LOCKED)
)
UPDATE jobs AS t
SET status = 'claimed',
    attempt = t.attempt + 1,
    claimed_by = $2,
    claimed_at = $4,
    lease_expires_at = $4 + $3,
    deadline_at = CASE WHEN t.timeout_s IS NULL THEN NULL ELSE $4 + t.timeout_s + $3 END,
    started_at = NULL,
    updated_at = $4
WHERE t.id = ANY ($1::text[]) AND t.status = 'pending'
RETURNING t.*;

-- name: parent_results
SELECT d.job_id, p.id, p.step, p.result
FROM job_dependencies AS d JOIN jobs AS p ON p.id = d.parent_id
WHERE d.job_id = ANY ($1::text[]);

-- Rate-limited queues with due jobs waiting: when does each get its next token?
-- name: rate_limited_waiting
SELECT q.rate_limit, q.rate_period_s, q.rate_tokens, q.rate_updated_at
FROM queues AS q
WHERE q.rate_limit IS NOT NULL AND NOT q.paused
  AND EXISTS (SELECT 1 FROM jobs AS j
              WHERE j.queue = q.name AND j.status = 'pending' AND j.run_at <= $1);
