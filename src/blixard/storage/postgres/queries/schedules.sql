-- Cron schedules (PostgreSQL). ``job`` is jsonb (the pool's codec encodes and decodes it).

-- A (tenant, name) already taken inserts nothing and returns no row: the driver answers
-- Conflict.
-- name: insert_schedule
INSERT INTO schedules (
    id, tenant, name, cron, timezone, job, misfire, no_overlap, paused, next_fire_at,
    last_fired_at, last_job_id, created_at, updated_at
)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (tenant, name) DO NOTHING
RETURNING *;

-- name: get_schedule
SELECT * FROM schedules WHERE id = $1;

-- name: list_schedules
SELECT * FROM schedules
WHERE $1::text IS NULL OR tenant = $1
ORDER BY tenant, name;

-- name: set_schedule_paused
UPDATE schedules
SET paused = $2,
    next_fire_at = coalesce($3, next_fire_at),
    updated_at = $4
WHERE id = $1
RETURNING *;

-- name: delete_schedule
DELETE FROM schedules WHERE id = $1 RETURNING id;

-- Walks schedules_due (next_fire_at, partial on NOT paused); the last fired job's status
-- comes along (NULL when it fired none, or the job is gone).
-- name: due_schedules
SELECT s.*, j.status AS last_job_status
FROM schedules AS s
LEFT JOIN jobs AS j ON j.id = s.last_job_id
WHERE NOT s.paused AND s.next_fire_at <= $1
ORDER BY s.next_fire_at
LIMIT $2;

-- The compare-and-set of the scheduler loop: only from the next slot it planned from.
-- name: advance_schedule
UPDATE schedules
SET next_fire_at = $3,
    last_fired_at = coalesce($4, last_fired_at),
    last_job_id = coalesce($5, last_job_id),
    updated_at = $6
WHERE id = $1 AND next_fire_at = $2
RETURNING id;

-- Walks jobs_by_schedule (schedule_id, id) backwards: newest first.
-- name: schedule_jobs
SELECT * FROM jobs
WHERE schedule_id = $1
ORDER BY id DESC
LIMIT $2;
