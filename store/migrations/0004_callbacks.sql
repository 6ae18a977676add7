-- Repair callbacks and the payload snapshots they carry.

-- A receipt's encrypted payload snapshot, copied from sendpromptly.receipts.v1 by the callbacks
-- sink as ciphertext (never opened there). The first receipt of a flow wins. Purged 30 days after
-- received_at.
CREATE TABLE snapshots (
    project_id  text NOT NULL REFERENCES projects (id),
    reference   text NOT NULL,
    -- The envelope as the receipt carried it: {kid, nonce, ct}.
    snapshot    jsonb NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (project_id, reference)
);
CREATE INDEX snapshots_received ON snapshots (received_at);

-- One delivery per replay: the state of its retries, here rather than in memory so that pending
-- retries survive a restart, and claimed with FOR UPDATE SKIP LOCKED so replicas share the work.
--   pending   an attempt is due at next_attempt_at
--   delivered the endpoint answered 2xx
--   failed    refused for good: a 4xx other than 408/429, a redirect, no callback URL or secret
--   exhausted every attempt of the retry schedule failed (alerts read these)
CREATE TABLE callback_deliveries (
    replay_id       text PRIMARY KEY,
    incident_id     text NOT NULL REFERENCES incidents (id),
    project_id      text NOT NULL REFERENCES projects (id),
    -- The repair request as received (metadata only, never a payload).
    request         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed', 'exhausted')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL)),
    CHECK ((status = 'pending') = (finished_at IS NULL))
);
CREATE INDEX callback_deliveries_due ON callback_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX callback_deliveries_finished ON callback_deliveries (status, finished_at)
    WHERE status IN ('failed', 'exhausted');

-- Every attempt of a delivery: when, what came back, how long it took.
CREATE TABLE callback_attempts (
    replay_id     text NOT NULL REFERENCES callback_deliveries (replay_id),
    attempt       integer NOT NULL CHECK (attempt >= 1),
    nonce         text NOT NULL,
    attempted_at  timestamptz NOT NULL,
    -- NULL when no answer came (network error, timeout, refused target).
    http_status   integer,
    latency_ms    integer NOT NULL,
    error         text,
    PRIMARY KEY (replay_id, attempt)
);
