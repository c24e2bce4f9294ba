-- The claim (SQLite). The single writer serialises claims, so the counts read here are
-- exact until the claim commits. domain.admission decides; these statements feed it.

-- name: worker_usage
SELECT count(*), coalesce(sum(req_cpu), 0), coalesce(sum(req_memory_mb), 0),
       coalesce(sum(req_gpu), 0)
FROM jobs INDEXED BY jobs_by_worker
WHERE claimed_by = ? AND status IN ('claimed', 'in_progress');

-- name: all_worker_usage
SELECT claimed_by, count(*), coalesce(sum(req_cpu), 0), coalesce(sum(req_memory_mb), 0),
       coalesce(sum(req_gpu), 0)
FROM jobs INDEXED BY jobs_by_worker
WHERE status IN ('claimed', 'in_progress')
GROUP BY claimed_by;

-- Queues a claim must look at: paused, capped or rate-limited.
-- name: restricted_queues
SELECT name, paused, max_running, rate_limit, rate_period_s, rate_tokens, rate_updated_at
FROM queues
WHERE paused OR max_running IS NOT NULL OR rate_limit IS NOT NULL;

-- The tenants with pending jobs, found by skipping from tenant to tenant through
-- jobs_claimable (one index probe per such tenant, however many ever existed), with their
-- settings.
-- name: pending_tenants
WITH RECURSIVE pending (tenant) AS (
    SELECT min(tenant) FROM jobs INDEXED BY jobs_claimable WHERE status = 'pending'
    UNION ALL
    SELECT (SELECT min(j.tenant) FROM jobs AS j INDEXED BY jobs_claimable
             WHERE j.status = 'pending' AND j.tenant > p.tenant)
    FROM pending AS p
    WHERE p.tenant IS NOT NULL
)
SELECT p.tenant, coalesce(t.weight, 1.0), t.max_running, coalesce(t.served_at, 0)
FROM pending AS p LEFT JOIN tenants AS t ON t.name = p.tenant
WHERE p.tenant IS NOT NULL
ORDER BY p.tenant;

-- Running jobs per tenant and queue.
-- name: active_by_tenant_queue
SELECT tenant, queue, count(*) FROM jobs INDEXED BY jobs_active_by_tenant
WHERE status IN ('claimed', 'in_progress')
GROUP BY tenant, queue;

-- name: active_by_key
SELECT concurrency_key, count(*) FROM jobs INDEXED BY jobs_active_by_key
WHERE status IN ('claimed', 'in_progress') AND concurrency_key IS NOT NULL
  AND concurrency_key IN (SELECT value FROM json_each(?))
GROUP BY concurrency_key;

-- One tenant's claimable jobs for this worker, in claim order, after the keyset position
-- (:after_*), skipping blocked queues, full concurrency keys and exact labels the worker
-- lacks: walks jobs_claimable (jobs_preferring for :preferring = 1: only jobs with
-- preferences).
-- name: claim_candidates
SELECT id, tenant, queue, priority, run_at, req_cpu, req_memory_mb, req_gpu, req_labels,
       req_constraints, preferences, concurrency_key, concurrency_limit
FROM jobs INDEXED BY jobs_claimable
WHERE tenant = :tenant
  AND status = 'pending'
  AND run_at <= :now
  AND (worker_types = '[]'
       OR EXISTS (SELECT 1 FROM json_each(jobs.worker_types) WHERE value = :worker_type))
  AND req_cpu <= :cpu AND req_memory_mb <= :memory_mb AND req_gpu <= :gpu
  AND (req_labels = '{}'
       OR NOT EXISTS (SELECT 1 FROM json_each(jobs.req_labels) AS l
                      WHERE json_extract(:labels, '$."' || l.key || '"') IS NOT l.value))
  AND (:blocked_queues = '[]'
       OR queue NOT IN (SELECT value FROM json_each(:blocked_queues)))
  AND (concurrency_key IS NULL OR :busy_keys = '{}'
       OR NOT EXISTS (SELECT 1 FROM json_each(:busy_keys) AS b
                      WHERE b.key = jobs.concurrency_key
                        AND b.value >= jobs.concurrency_limit))
  AND (:after_id IS NULL
       OR priority < :after_priority
       OR (priority = :after_priority
           AND (run_at > :after_run_at OR (run_at = :after_run_at AND id > :after_id))))
ORDER BY priority DESC, run_at, id
LIMIT :scan;

-- The same, among the jobs with a preference this worker's labels meet.
-- name: claim_preferring
SELECT id, tenant, queue, priority, run_at, req_cpu, req_memory_mb, req_gpu, req_labels,
       req_constraints, preferences, concurrency_key, concurrency_limit
FROM jobs INDEXED BY jobs_preferring
WHERE tenant = :tenant
  AND status = 'pending'
  AND preferences <> '[]'
  AND EXISTS (SELECT 1 FROM json_each(jobs.preferences) AS p, json_each(p.value, '$.values') AS v
              WHERE v.value = json_extract(:labels,
                                           '$."' || json_extract(p.value, '$.label') || '"'))
  AND run_at <= :now
  AND (worker_types = '[]'
       OR EXISTS (SELECT 1 FROM json_each(jobs.worker_types) WHERE value = :worker_type))
  AND req_cpu <= :cpu AND req_memory_mb <= :memory_mb AND req_gpu <= :gpu
  AND (req_labels = '{}'
       OR NOT EXISTS (SELECT 1 FROM json_each(jobs.req_labels) AS l
                      WHERE json_extract(:labels, '$."' || l.key || '"') IS NOT l.value))
  AND (:blocked_queues = '[]'
       OR queue NOT IN (SELECT value FROM json_each(:blocked_queues)))
  AND (concurrency_key IS NULL OR :busy_keys = '{}'
       OR NOT EXISTS (SELECT 1 FROM json_each(:busy_keys) AS b
                      WHERE b.key = jobs.concurrency_key
                        AND b.value >= jobs.concurrency_limit))
ORDER BY priority DESC, run_at, id
LIMIT :scan;

-- name: claim
UPDATE jobs
SET status = 'claimed',
    attempt = attempt + 1,
    claimed_by = :worker_id,
    claimed_at = :now,
    lease_expires_at = :now + :ttl,
    deadline_at = CASE WHEN timeout_s IS NULL THEN NULL ELSE :now + timeout_s + :ttl END,
    started_at = NULL,
    updated_at = :now
WHERE id IN (SELECT value FROM json_each(:ids)) AND status = 'pending'
RETURNING *;

-- name: spend_tokens
UPDATE queues SET rate_tokens = ?, rate_updated_at = ? WHERE name = ?;

-- name: mark_served
UPDATE tenants SET served_at = ? WHERE name IN (SELECT value FROM json_each(?));

-- The results of the parents of claimed jobs, for steps that read them.
-- name: parent_results
SELECT d.job_id, p.id, p.step, p.result
FROM job_dependencies AS d JOIN jobs AS p ON p.id = d.parent_id
WHERE d.job_id IN (SELECT value FROM json_each(?));

-- Rate-limited queues with due jobs waiting: when does each get its next token?
-- name: rate_limited_waiting
SELECT q.rate_limit, q.rate_period_s, q.rate_tokens, q.rate_updated_at
FROM queues AS q
WHERE q.rate_limit IS NOT NULL AND NOT q.paused
  AND EXISTS (SELECT 1 FROM jobs AS j
              WHERE j.queue = q.name AND j.status = 'pending' AND j.run_at <= ?);

-- Running jobs per concurrency key (a hint read without locks, to skip in SQL the jobs
-- whose key already reaches their limit; a key that frees up meanwhile waits for the next
-- claim).
-- name: busy_keys
SELECT concurrency_key, count(*) FROM jobs INDEXED BY jobs_active_by_key
WHERE status IN ('claimed', 'in_progress') AND concurrency_key IS NOT NULL
GROUP BY concurrency_key;
