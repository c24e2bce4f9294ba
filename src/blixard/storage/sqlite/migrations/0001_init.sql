-- Blixard schema, version 1 (SQLite). Times are Unix epoch seconds (REAL, UTC).
-- The CHECK constraints agree with domain/states.py: finished_at is set exactly when a job
-- is terminal, a lease exists exactly while it is claimed or in progress.

CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    queue            TEXT NOT NULL,
    tenant           TEXT NOT NULL,
    payload          TEXT NOT NULL,
    worker_types     TEXT NOT NULL DEFAULT '[]',
    req_cpu          REAL NOT NULL DEFAULT 0,
    req_memory_mb    INTEGER NOT NULL DEFAULT 0,
    req_gpu          INTEGER NOT NULL DEFAULT 0,
    req_labels       TEXT NOT NULL DEFAULT '{}',
    priority         INTEGER NOT NULL DEFAULT 0,
    run_at           REAL NOT NULL,
    max_attempts     INTEGER NOT NULL,
    backoff          TEXT NOT NULL,
    timeout_s        REAL,
    idempotency_key  TEXT,
    status           TEXT NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    claimed_by       TEXT,
    claimed_at       REAL,
    lease_expires_at REAL,
    deadline_at      REAL,
    started_at       REAL,
    finished_at      REAL,
    result           TEXT,
    error            TEXT,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL,
    CHECK (status IN ('pending', 'claimed', 'in_progress', 'completed', 'failed', 'cancelled')),
    CHECK ((finished_at IS NOT NULL) = (status IN ('completed', 'failed', 'cancelled'))),
    CHECK ((lease_expires_at IS NOT NULL) = (status IN ('claimed', 'in_progress'))),
    CHECK ((claimed_by IS NOT NULL) OR (status NOT IN ('claimed', 'in_progress'))),
    CHECK (attempt >= 0 AND max_attempts >= 1)
) WITHOUT ROWID;

-- The claim walks this index in order and stops after what it needs: no table scan.
CREATE INDEX jobs_claimable ON jobs (priority DESC, run_at, id) WHERE status = 'pending';
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE status IN ('claimed', 'in_progress');
CREATE INDEX jobs_by_worker ON jobs (claimed_by) WHERE status IN ('claimed', 'in_progress');
CREATE INDEX jobs_by_status ON jobs (status, id);
CREATE INDEX jobs_by_queue ON jobs (queue, status);
CREATE INDEX jobs_by_tenant ON jobs (tenant, id);
CREATE UNIQUE INDEX jobs_idempotency ON jobs (tenant, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE job_attempts (
    job_id      TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    worker_id   TEXT,
    claimed_at  REAL,
    started_at  REAL,
    finished_at REAL NOT NULL,
    outcome     TEXT NOT NULL,
    error       TEXT,
    PRIMARY KEY (job_id, attempt)
) WITHOUT ROWID;

CREATE TABLE workers (
    id            TEXT PRIMARY KEY,
    worker_type   TEXT NOT NULL,
    name          TEXT NOT NULL,
    concurrency   INTEGER NOT NULL,
    cpu           REAL NOT NULL,
    memory_mb     INTEGER NOT NULL,
    gpu           INTEGER NOT NULL,
    labels        TEXT NOT NULL,
    capabilities  TEXT NOT NULL,
    host          TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    version       TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('online', 'draining', 'offline')),
    registered_at REAL NOT NULL,
    last_seen_at  REAL NOT NULL
);
CREATE INDEX workers_seen ON workers (status, last_seen_at);

-- The earliest due time of pending work, for long-polls that wait for delayed jobs.
CREATE INDEX jobs_pending_due ON jobs (run_at) WHERE status = 'pending';
