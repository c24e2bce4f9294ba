-- Cron schedules (SQLite). Every statement lists the schedule columns in the order
-- storage/sqlite/schedules.py reads them: id, tenant, name, cron, timezone, job, misfire,
-- no_overlap, paused, next_fire_at, last_fired_at, last_job_id, created_at, updated_at.

-- A (tenant, name) already taken inserts nothing: the driver answers Conflict.
-- name: insert_schedule
INSERT INTO schedules (
    id, tenant, name, cron, timezone, job, misfire, no_overlap, paused, next_fire_at,
    last_fired_at, last_job_id, created_at, updated_at
)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (tenant, name) DO NOTHING;

-- name: get_schedule
SELECT id, tenant, name, cron, timezone, job, misfire, no_overlap, paused, next_fire_at,
       last_fired_at, last_job_id, created_at, updated_at
FROM schedules
WHERE id = ?;

-- name: list_schedules
SELECT id, tenant, name, cron, timezone, job, misfire, no_overlap, paused, next_fire_at,
       last_fired_at, last_job_id, created_at, updated_at
FROM schedules
WHERE :tenant IS NULL OR tenant = :tenant
ORDER BY tenant, name;

-- name: set_schedule_paused
UPDATE schedules
SET paused = :paused,
    next_fire_at = coalesce(:next_fire_at, next_fire_at),
    updated_at = :now
WHERE id = :id
RETURNING id, tenant, name, cron, timezone, job, misfire, no_overlap, paused, next_fire_at,
          last_fired_at, last_job_id, created_at, updated_at;

-- name: delete_schedule
DELETE FROM schedules WHERE id = ?;

-- Walks schedules_due (next_fire_at, partial on paused = 0); the last fired job's status
-- comes along (NULL when it fired none, or the job is gone).
-- name: due_schedules
SELECT s.id, s.tenant, s.name, s.cron, s.timezone, s.job, s.misfire, s.no_overlap, s.paused,
       s.next_fire_at, s.last_fired_at, s.last_job_id, s.created_at, s.updated_at, j.status
FROM schedules AS s
LEFT JOIN jobs AS j ON j.id = s.last_job_id
WHERE s.paused = 0 AND s.next_fire_at <= :now
ORDER BY s.next_fire_at
LIMIT :limit;

-- The compare-and-set of the scheduler loop: only from the next slot it planned from.
-- name: advance_schedule
UPDATE schedules
SET next_fire_at = :next_fire_at,
    last_fired_at = coalesce(:last_fired_at, last_fired_at),
    last_job_id = coalesce(:last_job_id, last_job_id),
    updated_at = :now
WHERE id = :id AND next_fire_at = :expected;

-- Walks jobs_by_schedule (schedule_id, id) backwards: newest first.
-- name: schedule_jobs
SELECT * FROM jobs
WHERE schedule_id = ?
ORDER BY id DESC
LIMIT ?;
