-- Schema version 2 (SQLite): scheduling. Jobs gain concurrency keys, dependencies
-- (the new status 'blocked': waiting for parents), groups, DAG step names, label
-- constraints and preferences, and the schedule that fired them. New tables: queues and
-- tenants (created on first use; limits, pause, fairness), job_dependencies and schedules.
-- SQLite cannot change a CHECK constraint in place, so the jobs table is rebuilt (the
-- driver runs migrations with foreign keys off and checks them before committing).

CREATE TABLE jobs_v2 (
    id                TEXT PRIMARY KEY,
    queue             TEXT NOT NULL,
    tenant            TEXT NOT NULL,
    payload           TEXT NOT NULL,
    worker_types      TEXT NOT NULL DEFAULT '[]',
    req_cpu           REAL NOT NULL DEFAULT 0,
    req_memory_mb     INTEGER NOT NULL DEFAULT 0,
    req_gpu           INTEGER NOT NULL DEFAULT 0,
    req_labels        TEXT NOT NULL DEFAULT '{}',
    req_constraints   TEXT NOT NULL DEFAULT '[]',
    preferences       TEXT NOT NULL DEFAULT '[]',
    priority          INTEGER NOT NULL DEFAULT 0,
    run_at            REAL NOT NULL,
    max_attempts      INTEGER NOT NULL,
    backoff           TEXT NOT NULL,
    timeout_s         REAL,
    idempotency_key   TEXT,
    concurrency_key   TEXT,
    concurrency_limit INTEGER,
    group_id          TEXT,
    step              TEXT,
    schedule_id       TEXT,
    depends_on        TEXT NOT NULL DEFAULT '[]',
    on_parent_failure TEXT NOT NULL DEFAULT 'cancel',
    deps_pending      INTEGER NOT NULL DEFAULT 0,
    has_dependants    INTEGER NOT NULL DEFAULT 0,
    status            TEXT NOT NULL,
    attempt           INTEGER NOT NULL DEFAULT 0,
    claimed_by        TEXT,
    claimed_at        REAL,
    lease_expires_at  REAL,
    deadline_at       REAL,
    started_at        REAL,
    finished_at       REAL,
    result            TEXT,
    error             TEXT,
    created_at        REAL NOT NULL,
    updated_at        REAL NOT NULL,
    CHECK (status IN ('blocked', 'pending', 'claimed', 'in_progress', 'completed', 'failed',
                      'cancelled')),
    CHECK ((finished_at IS NOT NULL) = (status IN ('completed', 'failed', 'cancelled'))),
    CHECK ((lease_expires_at IS NOT NULL) = (status IN ('claimed', 'in_progress'))),
    CHECK ((claimed_by IS NOT NULL) OR (status NOT IN ('claimed', 'in_progress'))),
    CHECK (attempt >= 0 AND max_attempts >= 1),
    CHECK ((concurrency_key IS NULL) = (concurrency_limit IS NULL)),
    CHECK (concurrency_limit IS NULL OR concurrency_limit >= 1),
    CHECK (on_parent_failure IN ('cancel', 'run')),
    CHECK (deps_pending >= 0 AND ((deps_pending > 0) <= (status IN ('blocked', 'cancelled'))))
) WITHOUT ROWID;

INSERT INTO jobs_v2 (
    id, queue, tenant, payload, worker_types, req_cpu, req_memory_mb, req_gpu, req_labels,
    priority, run_at, max_attempts, backoff, timeout_s, idempotency_key, status, attempt,
    claimed_by, claimed_at, lease_expires_at, deadline_at, started_at, finished_at, result,
    error, created_at, updated_at
)
SELECT id, queue, tenant, payload, worker_types, req_cpu, req_memory_mb, req_gpu, req_labels,
       priority, run_at, max_attempts, backoff, timeout_s, idempotency_key, status, attempt,
       claimed_by, claimed_at, lease_expires_at, deadline_at, started_at, finished_at, result,
       error, created_at, updated_at
FROM jobs;

DROP TABLE jobs;
ALTER TABLE jobs_v2 RENAME TO jobs;

-- Claims walk one tenant at a time, in claim order (fairness between tenants).
CREATE INDEX jobs_claimable ON jobs (tenant, priority DESC, run_at, id) WHERE status = 'pending';
-- The claimable jobs with preferences, so a claim can put those a worker is preferred for
-- first even when many older jobs come before them.
CREATE INDEX jobs_preferring ON jobs (tenant, priority DESC, run_at, id)
    WHERE status = 'pending' AND preferences <> '[]';
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE status IN ('claimed', 'in_progress');
CREATE INDEX jobs_by_worker ON jobs (claimed_by) WHERE status IN ('claimed', 'in_progress');
CREATE INDEX jobs_by_status ON jobs (status, id);
CREATE INDEX jobs_by_queue ON jobs (queue, status);
CREATE INDEX jobs_by_tenant ON jobs (tenant, id);
CREATE UNIQUE INDEX jobs_idempotency ON jobs (tenant, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_pending_due ON jobs (run_at) WHERE status = 'pending';
-- Running jobs per tenant and queue (fair share, quotas, queue limits) and per concurrency
-- key (only jobs that carry a key enter this one).
CREATE INDEX jobs_active_by_tenant ON jobs (tenant, queue)
    WHERE status IN ('claimed', 'in_progress');
CREATE INDEX jobs_active_by_key ON jobs (concurrency_key)
    WHERE status IN ('claimed', 'in_progress') AND concurrency_key IS NOT NULL;
CREATE INDEX jobs_by_group ON jobs (group_id, id) WHERE group_id IS NOT NULL;
CREATE INDEX jobs_by_schedule ON jobs (schedule_id, id) WHERE schedule_id IS NOT NULL;

-- A job waits for each of its parents; the parent index finds the dependants of a job.
CREATE TABLE job_dependencies (
    job_id    TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    parent_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (job_id, parent_id)
) WITHOUT ROWID;
CREATE INDEX job_dependencies_parent ON job_dependencies (parent_id, job_id);

-- Queues exist from their first job on. A paused queue accepts jobs and hands none out.
-- max_running: jobs claimed or running at once across the fleet. The rate limit is a token
-- bucket holding up to rate_limit starts, refilled at rate_limit per rate_period_s.
CREATE TABLE queues (
    name            TEXT PRIMARY KEY,
    paused          INTEGER NOT NULL DEFAULT 0,
    max_running     INTEGER CHECK (max_running IS NULL OR max_running >= 0),
    rate_limit      INTEGER CHECK (rate_limit IS NULL OR rate_limit >= 1),
    rate_period_s   REAL CHECK (rate_period_s IS NULL OR rate_period_s > 0),
    rate_tokens     REAL NOT NULL DEFAULT 0,
    rate_updated_at REAL NOT NULL DEFAULT 0,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL,
    CHECK ((rate_limit IS NULL) = (rate_period_s IS NULL))
) WITHOUT ROWID;
INSERT INTO queues (name, created_at, updated_at)
SELECT queue, min(created_at), min(created_at) FROM jobs GROUP BY queue;

-- Tenants exist from their first job on. weight: share of the fleet under contention;
-- max_running: quota of jobs claimed or running at once; served_at: the last claim that
-- took one of its jobs while another tenant was waiting (round-robin tie-break).
CREATE TABLE tenants (
    name        TEXT PRIMARY KEY,
    weight      REAL NOT NULL DEFAULT 1 CHECK (weight > 0),
    max_running INTEGER CHECK (max_running IS NULL OR max_running >= 0),
    served_at   REAL NOT NULL DEFAULT 0,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
) WITHOUT ROWID;
INSERT INTO tenants (name, created_at, updated_at)
SELECT tenant, min(created_at), min(created_at) FROM jobs GROUP BY tenant;

-- Cron schedules. job: the template of the jobs it fires (a submission, as JSON).
-- next_fire_at: the next slot (epoch seconds); a slot fires once: the job it makes carries
-- the idempotency key "schedule:<id>:<slot>".
CREATE TABLE schedules (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    name          TEXT NOT NULL,
    cron          TEXT NOT NULL,
    timezone      TEXT NOT NULL,
    job           TEXT NOT NULL,
    misfire       TEXT NOT NULL CHECK (misfire IN ('skip', 'catch_up')),
    no_overlap    INTEGER NOT NULL DEFAULT 0,
    paused        INTEGER NOT NULL DEFAULT 0,
    next_fire_at  REAL NOT NULL,
    last_fired_at REAL,
    last_job_id   TEXT,
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL,
    UNIQUE (tenant, name)
) WITHOUT ROWID;
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE paused = 0;
