-- Worker queries (SQLite).

-- name: upsert_worker
INSERT INTO workers (
    id, worker_type, name, concurrency, cpu, memory_mb, gpu, labels, capabilities, host,
    pid, version, status, registered_at, last_seen_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'online', ?, ?)
ON CONFLICT (id) DO UPDATE SET
    worker_type = excluded.worker_type, name = excluded.name,
    concurrency = excluded.concurrency, cpu = excluded.cpu, memory_mb = excluded.memory_mb,
    gpu = excluded.gpu, labels = excluded.labels, capabilities = excluded.capabilities,
    host = excluded.host, pid = excluded.pid, version = excluded.version, status = 'online',
    last_seen_at = excluded.last_seen_at;

-- name: get_worker
SELECT * FROM workers WHERE id = ?;

-- name: list_workers
SELECT * FROM workers WHERE (:status IS NULL OR status = :status) ORDER BY registered_at, id;

-- name: touch_worker
UPDATE workers
SET last_seen_at = ?, status = CASE WHEN status = 'offline' THEN 'online' ELSE status END
WHERE id = ?;

-- name: set_worker_status
UPDATE workers SET status = ? WHERE id = ?;

-- name: mark_lost_workers
UPDATE workers SET status = 'offline'
WHERE status != 'offline' AND last_seen_at < ?
RETURNING *;
