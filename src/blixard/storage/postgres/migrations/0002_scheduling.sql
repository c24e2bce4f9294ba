-- Schema version 2 (PostgreSQL): scheduling. Jobs gain concurrency keys, dependencies
-- (the new status 'blocked': waiting for parents), groups, DAG step names, label
-- constraints and preferences, and the schedule that fired them. New tables: queues and
-- tenants (created on first use; limits, pause, fairness), job_dependencies and schedules.
-- The claim moves from the blixard_claim function to the driver (fairness and limits are
-- decided by domain.admission), so the function goes.

DROP FUNCTION blixard_claim(text, integer, double precision, double precision);

ALTER TABLE jobs
    ADD COLUMN req_constraints   jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN preferences       jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN concurrency_key   text,
    ADD COLUMN concurrency_limit integer,
    ADD COLUMN group_id          text,
    ADD COLUMN step              text,
    ADD COLUMN schedule_id       text,
    ADD COLUMN depends_on        text[] NOT NULL DEFAULT '{}',
    ADD COLUMN on_parent_failure text NOT NULL DEFAULT 'cancel',
    ADD COLUMN deps_pending      integer NOT NULL DEFAULT 0,
    ADD COLUMN has_dependants    boolean NOT NULL DEFAULT false,
    DROP CONSTRAINT jobs_status_known,
    ADD CONSTRAINT jobs_status_known CHECK (
        status IN ('blocked', 'pending', 'claimed', 'in_progress', 'completed', 'failed',
                   'cancelled')
    ),
    ADD CONSTRAINT jobs_concurrency_pair CHECK (
        (concurrency_key IS NULL) = (concurrency_limit IS NULL)
    ),
    ADD CONSTRAINT jobs_concurrency_limit_valid CHECK (
        concurrency_limit IS NULL OR concurrency_limit >= 1
    ),
    ADD CONSTRAINT jobs_on_parent_failure_known CHECK (on_parent_failure IN ('cancel', 'run')),
    ADD CONSTRAINT jobs_deps_only_while_waiting CHECK (
        deps_pending >= 0
        AND (deps_pending = 0 OR status IN ('blocked', 'cancelled'))
    );

-- Claims walk one tenant at a time, in claim order (fairness between tenants).
DROP INDEX jobs_claimable;
CREATE INDEX jobs_claimable ON jobs (tenant, priority DESC, run_at, id) WHERE status = 'pending';
-- The claimable jobs with preferences, so a claim can put those a worker is preferred for
-- first even when many older jobs come before them.
CREATE INDEX jobs_preferring ON jobs (tenant, priority DESC, run_at, id)
    WHERE status = 'pending' AND preferences <> '[]';
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
    job_id    text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    parent_id text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (job_id, parent_id)
);
CREATE INDEX job_dependencies_parent ON job_dependencies (parent_id, job_id);

-- Queues exist from their first job on. A paused queue accepts jobs and hands none out.
-- max_running: jobs claimed or running at once across the fleet. The rate limit is a token
-- bucket holding up to rate_limit starts, refilled at rate_limit per rate_period_s.
CREATE TABLE queues (
    name            text PRIMARY KEY,
    paused          boolean NOT NULL DEFAULT false,
    max_running     integer CHECK (max_running IS NULL OR max_running >= 0),
    rate_limit      integer CHECK (rate_limit IS NULL OR rate_limit >= 1),
    rate_period_s   double precision CHECK (rate_period_s IS NULL OR rate_period_s > 0),
    rate_tokens     double precision NOT NULL DEFAULT 0,
    rate_updated_at double precision NOT NULL DEFAULT 0,
    created_at      double precision NOT NULL,
    updated_at      double precision NOT NULL,
    CHECK ((rate_limit IS NULL) = (rate_period_s IS NULL))
);
INSERT INTO queues (name, created_at, updated_at)
SELECT queue, min(created_at), min(created_at) FROM jobs GROUP BY queue;

-- Tenants exist from their first job on. weight: share of the fleet under contention;
-- max_running: quota of jobs claimed or running at once; served_at: the last claim that
-- took one of its jobs while another tenant was waiting (round-robin tie-break).
CREATE TABLE tenants (
    name        text PRIMARY KEY,
    weight      double precision NOT NULL DEFAULT 1 CHECK (weight > 0),
    max_running integer CHECK (max_running IS NULL OR max_running >= 0),
    served_at   double precision NOT NULL DEFAULT 0,
    created_at  double precision NOT NULL,
    updated_at  double precision NOT NULL
);
INSERT INTO tenants (name, created_at, updated_at)
SELECT tenant, min(created_at), min(created_at) FROM jobs GROUP BY tenant;

-- Cron schedules. job: the template of the jobs it fires (a submission, as JSON).
-- next_fire_at: the next slot (epoch seconds); a slot fires once: the job it makes carries
-- the idempotency key "schedule:<id>:<slot>".
CREATE TABLE schedules (
    id            text PRIMARY KEY,
    tenant        text NOT NULL,
    name          text NOT NULL,
    cron          text NOT NULL,
    timezone      text NOT NULL,
    job           jsonb NOT NULL,
    misfire       text NOT NULL CHECK (misfire IN ('skip', 'catch_up')),
    no_overlap    boolean NOT NULL DEFAULT false,
    paused        boolean NOT NULL DEFAULT false,
    next_fire_at  double precision NOT NULL,
    last_fired_at double precision,
    last_job_id   text,
    created_at    double precision NOT NULL,
    updated_at    double precision NOT NULL,
    UNIQUE (tenant, name)
);
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE NOT paused;

-- The first step of a claim, in one round trip: lock the worker row (a worker's claims run
-- one after the other, so its free capacity is never counted twice), then the capped or
-- rate-limited queues and the tenants with a quota, by name; then read the context: the
-- worker's usage, the limits, the tenants with pending jobs (a skip scan through
-- jobs_claimable: one probe per such tenant), running jobs by tenant and queue and by
-- concurrency key, and whether any pending job has preferences. The context is read by a
-- statement after the locks (each statement of a volatile function takes a new snapshot),
-- so it sees every claim that committed before them. NULL for an unknown worker.
CREATE FUNCTION blixard_claim_context(p_worker text) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    v_worker jsonb;
    v_ctx    jsonb;
BEGIN
    SELECT to_jsonb(wk) INTO v_worker FROM workers AS wk WHERE wk.id = p_worker FOR UPDATE;
    IF v_worker IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM count(*) FROM (
        SELECT 1 FROM queues AS q
         WHERE q.max_running IS NOT NULL OR q.rate_limit IS NOT NULL
         ORDER BY q.name FOR UPDATE
    ) AS locked_queues;
    PERFORM count(*) FROM (
        SELECT 1 FROM tenants AS t WHERE t.max_running IS NOT NULL
         ORDER BY t.name FOR UPDATE
    ) AS locked_tenants;
    SELECT to_jsonb(c) INTO v_ctx FROM (
        WITH RECURSIVE pending (tenant) AS (
            (SELECT j.tenant FROM jobs AS j WHERE j.status = 'pending' ORDER BY j.tenant LIMIT 1)
            UNION ALL
            SELECT (SELECT j.tenant FROM jobs AS j
                     WHERE j.status = 'pending' AND j.tenant > p.tenant
                     ORDER BY j.tenant LIMIT 1)
            FROM pending AS p
            WHERE p.tenant IS NOT NULL
        )
        SELECT
            u.running, u.used_cpu, u.used_memory_mb, u.used_gpu,
            (SELECT coalesce(jsonb_agg(jsonb_build_array(
                        q.name, q.paused, q.max_running, q.rate_limit, q.rate_period_s,
                        q.rate_tokens, q.rate_updated_at)), '[]')
               FROM queues AS q
              WHERE q.paused OR q.max_running IS NOT NULL OR q.rate_limit IS NOT NULL) AS queues,
            (SELECT coalesce(jsonb_agg(jsonb_build_array(
                        p.tenant, coalesce(t.weight, 1), t.max_running, coalesce(t.served_at, 0))
                        ORDER BY p.tenant), '[]')
               FROM pending AS p LEFT JOIN tenants AS t ON t.name = p.tenant
              WHERE p.tenant IS NOT NULL) AS tenants,
            (SELECT coalesce(jsonb_agg(jsonb_build_array(c.tenant, c.queue, c.n)), '[]')
               FROM (SELECT a.tenant, a.queue, count(*) AS n FROM jobs AS a
                      WHERE a.status IN ('claimed', 'in_progress')
                      GROUP BY a.tenant, a.queue) AS c) AS active,
            -- Running jobs per concurrency key: a hint read without locks, to skip in SQL the jobs
            -- whose key already reaches their limit (a key that frees up meanwhile waits for the
            -- next claim).
            (SELECT coalesce(jsonb_agg(jsonb_build_array(k.key, k.n)), '[]')
               FROM (SELECT a.concurrency_key AS key, count(*) AS n FROM jobs AS a
                      WHERE a.status IN ('claimed', 'in_progress') AND a.concurrency_key IS NOT NULL
                      GROUP BY a.concurrency_key) AS k) AS busy_keys,
            -- Whether any pending job has preferences (they are fetched apart).
            EXISTS (SELECT 1 FROM jobs AS j
                     WHERE j.status = 'pending' AND j.preferences <> '[]') AS any_preferring
        FROM (SELECT count(*)::integer AS running,
                     coalesce(sum(a.req_cpu), 0)::double precision AS used_cpu,
                     coalesce(sum(a.req_memory_mb), 0)::bigint AS used_memory_mb,
                     coalesce(sum(a.req_gpu), 0)::bigint AS used_gpu
              FROM jobs AS a
              WHERE a.claimed_by = p_worker AND a.status IN ('claimed', 'in_progress')) AS u
    ) AS c;
    RETURN jsonb_build_object('worker', v_worker, 'context', v_ctx);
END;
$$;
