-- Counts for the stats (PostgreSQL), over every job or over one tenant's.

-- name: stats_by_queue_and_tenant
SELECT queue, tenant, status, count(*)::integer FROM jobs GROUP BY queue, tenant, status;

-- name: stats_of_tenant_by_queue
SELECT queue, status, count(*)::integer FROM jobs WHERE tenant = $1 GROUP BY queue, status;

-- name: stats_oldest_pending
SELECT created_at FROM jobs WHERE status = 'pending' ORDER BY id LIMIT 1;

-- The tenant's first pending job by id (ids are time-ordered), found in jobs_claimable.
-- name: stats_oldest_pending_of_tenant
SELECT created_at FROM jobs
WHERE id = (SELECT min(id) FROM jobs WHERE tenant = $1 AND status = 'pending');

-- name: stats_workers_by_status
SELECT status, count(*)::integer FROM workers GROUP BY status;
