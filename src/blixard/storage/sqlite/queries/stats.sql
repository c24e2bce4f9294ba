-- Counts for the stats (SQLite), over every job or over one tenant's.

-- name: stats_by_queue
SELECT queue, status, count(*) FROM jobs INDEXED BY jobs_by_queue GROUP BY queue, status;

-- Every job has a tenant row (the insert path and copies create them).
-- name: stats_two_tenants
SELECT name FROM tenants LIMIT 2;

-- No index holds (tenant, status): this one reads every job.
-- name: stats_by_tenant
SELECT tenant, status, count(*) FROM jobs GROUP BY tenant, status;

-- name: stats_of_tenant_by_queue
SELECT queue, status, count(*) FROM jobs INDEXED BY jobs_by_tenant
WHERE tenant = ? GROUP BY queue, status;

-- name: stats_oldest_pending
SELECT created_at FROM jobs INDEXED BY jobs_by_status
WHERE status = 'pending' ORDER BY id LIMIT 1;

-- name: stats_oldest_pending_of_tenant
SELECT created_at FROM jobs
WHERE id = (SELECT min(id) FROM jobs INDEXED BY jobs_claimable
            WHERE tenant = ? AND status = 'pending');

-- name: stats_workers_by_status
SELECT status, count(*) FROM workers GROUP BY status;
