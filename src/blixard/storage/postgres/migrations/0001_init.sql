-- Blixard schema, version 1 (PostgreSQL). Times are Unix epoch seconds (double precision,
-- UTC), like the SQLite schema: the domain works in floats. JSON values are jsonb.
-- The CHECK constraints agree with domain/states.py: finished_at is set exactly when a job
-- is terminal, a lease exists exactly while it is claimed or in progress.
-- Objects are created unqualified: they land in the store's schema (its search_path).

CREATE TABLE jobs (
    id               text PRIMARY KEY,
    queue            text NOT NULL,
    tenant           text NOT NULL,
    payload          jsonb NOT NULL,
    worker_types     text[] NOT NULL DEFAULT '{}',
    req_cpu          double precision NOT NULL DEFAULT 0,
    req_memory_mb    bigint NOT NULL DEFAULT 0,
    req_gpu          integer NOT NULL DEFAULT 0,
    req_labels       jsonb NOT NULL DEFAULT '{}',
    priority         integer NOT NULL DEFAULT 0,
    run_at           double precision NOT NULL,
    max_attempts     integer NOT NULL,
    backoff          jsonb NOT NULL,
    timeout_s        double precision,
    idempotency_key  text,
    status           text NOT NULL,
    attempt          integer NOT NULL DEFAULT 0,
    claimed_by       text,
    claimed_at       double precision,
    lease_expires_at double precision,
    deadline_at      double precision,
    started_at       double precision,
    finished_at      double precision,
    result           jsonb,
    error            jsonb,
    created_at       double precision NOT NULL,
    updated_at       double precision NOT NULL,
    CONSTRAINT jobs_status_known CHECK (
        status IN ('pending', 'claimed', 'in_progress', 'completed', 'failed', 'cancelled')
    ),
    CONSTRAINT jobs_finished_iff_terminal CHECK (
        (finished_at IS NOT NULL) = (status IN ('completed', 'failed', 'cancelled'))
    ),
    CONSTRAINT jobs_lease_iff_active CHECK (
        (lease_expires_at IS NOT NULL) = (status IN ('claimed', 'in_progress'))
    ),
    CONSTRAINT jobs_active_has_worker CHECK (
        (claimed_by IS NOT NULL) OR (status NOT IN ('claimed', 'in_progress'))
    ),
    CONSTRAINT jobs_attempts_valid CHECK (attempt >= 0 AND max_attempts >= 1)
);

-- A queue table churns: every job is inserted, updated a few times and finished. Vacuum and
-- analyse it after 2% of its rows changed (the default waits for 20%).
ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0.02,
                      autovacuum_analyze_scale_factor = 0.02);

-- The claim walks this index in order and stops after what it needs: no table scan.
CREATE INDEX jobs_claimable ON jobs (priority DESC, run_at, id) WHERE status = 'pending';
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE status IN ('claimed', 'in_progress');
CREATE INDEX jobs_by_worker ON jobs (claimed_by) WHERE status IN ('claimed', 'in_progress');
CREATE INDEX jobs_by_status ON jobs (status, id);
CREATE INDEX jobs_by_queue ON jobs (queue, status);
CREATE INDEX jobs_by_tenant ON jobs (tenant, id);
CREATE UNIQUE INDEX jobs_idempotency ON jobs (tenant, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- The earliest due time of pending work, for long-polls that wait for delayed jobs.
CREATE INDEX jobs_pending_due ON jobs (run_at) WHERE status = 'pending';

CREATE TABLE job_attempts (
    job_id      text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    worker_id   text,
    claimed_at  double precision,
    started_at  double precision,
    finished_at double precision NOT NULL,
    outcome     text NOT NULL,
    error       jsonb,
    PRIMARY KEY (job_id, attempt)
);

CREATE TABLE workers (
    id            text PRIMARY KEY,
    worker_type   text NOT NULL,
    name          text NOT NULL,
    concurrency   integer NOT NULL,
    cpu           double precision NOT NULL,
    memory_mb     bigint NOT NULL,
    gpu           integer NOT NULL,
    labels        jsonb NOT NULL,
    capabilities  jsonb NOT NULL,
    host          text NOT NULL,
    pid           integer NOT NULL,
    version       text NOT NULL,
    status        text NOT NULL CHECK (status IN ('online', 'draining', 'offline')),
    registered_at double precision NOT NULL,
    last_seen_at  double precision NOT NULL
);
CREATE INDEX workers_seen ON workers (status, last_seen_at);

-- The claim, in one round trip. Locks the worker row (concurrent claims of one worker run
-- one after the other, so its free capacity is never counted twice), then walks the due
-- pending jobs in claim order through jobs_claimable, packs greedily what fits (a job that
-- does not fit is skipped, a smaller one after it may still be taken), locking each job it
-- takes with SKIP LOCKED (two claims never get the same job, and never wait for each
-- other; rows passed over stay free for other claims), and marks the taken rows claimed. Returns them in claim order. An unknown worker raises SQLSTATE BX404; a
-- worker that is not online gets nothing. The scan budget matches the SQLite driver's.
CREATE FUNCTION blixard_claim(
    p_worker_id text, p_limit integer, p_now double precision, p_ttl double precision
) RETURNS SETOF jobs
LANGUAGE plpgsql
SET search_path FROM CURRENT
-- The right plans are known (index scans on jobs_claimable, jobs_by_worker and the primary
-- key); pin them, so a table whose statistics lag behind a burst of submits (autovacuum
-- has not analysed it yet) cannot get a bitmap or hash plan over every pending row.
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    w        workers%ROWTYPE;
    v_slots  integer;
    v_cpu    double precision;
    v_mem    bigint;
    v_gpu    bigint;
    v_budget integer;
    v_sum_cpu double precision;
    v_sum_mem bigint;
    v_sum_gpu bigint;
    v_ids    text[] := '{}';
    c        record;
BEGIN
    SELECT * INTO w FROM workers AS wk WHERE wk.id = p_worker_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'worker % not found', p_worker_id USING ERRCODE = 'BX404';
    END IF;
    IF w.status <> 'online' OR p_limit <= 0 THEN
        RETURN;
    END IF;

    SELECT least(p_limit::bigint, w.concurrency - count(*)),
           w.cpu - coalesce(sum(a.req_cpu), 0),
           w.memory_mb - coalesce(sum(a.req_memory_mb), 0),
           w.gpu - coalesce(sum(a.req_gpu), 0)
      INTO v_slots, v_cpu, v_mem, v_gpu
      FROM jobs AS a
     WHERE a.claimed_by = p_worker_id AND a.status IN ('claimed', 'in_progress');
    IF v_slots <= 0 THEN
        RETURN;
    END IF;

    -- Fast path, one statement: lock the first v_slots claimable jobs in claim order; if
    -- together they fit the worker's free resources (jobs without requirements always do),
    -- take them all.
    SELECT coalesce(array_agg(f.id ORDER BY f.priority DESC, f.run_at, f.id), '{}'),
           coalesce(sum(f.req_cpu), 0), coalesce(sum(f.req_memory_mb), 0),
           coalesce(sum(f.req_gpu), 0)
      INTO v_ids, v_sum_cpu, v_sum_mem, v_sum_gpu
      FROM (SELECT j.id, j.priority, j.run_at, j.req_cpu, j.req_memory_mb, j.req_gpu
              FROM jobs AS j
             WHERE j.status = 'pending'
               AND j.run_at <= p_now
               AND (j.worker_types = '{}' OR w.worker_type = ANY (j.worker_types))
               AND (j.req_labels = '{}' OR w.labels @> j.req_labels)
               AND j.req_cpu <= v_cpu + 1e-9
               AND j.req_memory_mb <= v_mem
               AND j.req_gpu <= v_gpu
             ORDER BY j.priority DESC, j.run_at, j.id
             LIMIT v_slots
               FOR UPDATE SKIP LOCKED) AS f;
    IF v_sum_cpu > v_cpu + 1e-9 OR v_sum_mem > v_mem OR v_sum_gpu > v_gpu THEN
        -- Slow path: they do not all fit together; pack greedily in claim order, skipping
        -- what does not fit (rows this transaction already locked stay available to it).
        v_ids := '{}';
        v_budget := greatest(2000, v_slots * 8);
        FOR c IN
        SELECT j.id, j.req_cpu, j.req_memory_mb, j.req_gpu
          FROM jobs AS j
         WHERE j.status = 'pending'
           AND j.run_at <= p_now
           AND (j.worker_types = '{}' OR w.worker_type = ANY (j.worker_types))
           AND (j.req_labels = '{}' OR w.labels @> j.req_labels)
           AND j.req_cpu <= v_cpu + 1e-9
           AND j.req_memory_mb <= v_mem
           AND j.req_gpu <= v_gpu
         ORDER BY j.priority DESC, j.run_at, j.id
         LIMIT v_budget
    LOOP
        CONTINUE WHEN c.req_cpu > v_cpu + 1e-9 OR c.req_memory_mb > v_mem OR c.req_gpu > v_gpu;
        -- Lock only what is taken; a row another claim holds, or that changed since the
        -- scan's snapshot, is passed over.
        PERFORM 1 FROM jobs AS l
          WHERE l.id = c.id AND l.status = 'pending' AND l.run_at <= p_now
            FOR UPDATE SKIP LOCKED;
        IF FOUND THEN
            v_ids := v_ids || c.id;
            v_cpu := v_cpu - c.req_cpu;
            v_mem := v_mem - c.req_memory_mb;
            v_gpu := v_gpu - c.req_gpu;
            v_slots := v_slots - 1;
            EXIT WHEN v_slots <= 0;
        END IF;
    END LOOP;
    END IF;
    IF cardinality(v_ids) = 0 THEN
        RETURN;
    END IF;

    RETURN QUERY
    WITH taken AS (
        UPDATE jobs AS t
           SET status = 'claimed',
               attempt = t.attempt + 1,
               claimed_by = p_worker_id,
               claimed_at = p_now,
               lease_expires_at = p_now + p_ttl,
               deadline_at = CASE WHEN t.timeout_s IS NULL THEN NULL
                                  ELSE p_now + t.timeout_s + p_ttl END,
               started_at = NULL,
               updated_at = p_now
         WHERE t.id = ANY (v_ids) AND t.status = 'pending'
     RETURNING t.*
    )
    SELECT taken.* FROM taken
      JOIN unnest(v_ids) WITH ORDINALITY AS o(id, n) ON o.id = taken.id
     ORDER BY o.n;
END;
$$;
