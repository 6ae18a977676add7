-- Operators, their tokens and project memberships; repair-callback secrets; alert destinations;
-- idempotency records; the audit outbox.

CREATE TABLE operators (
    id            text PRIMARY KEY,
    email         text NOT NULL,
    is_admin      boolean NOT NULL DEFAULT false,
    -- argon2id; NULL until a password is set for the console.
    password_hash text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX operators_email ON operators (lower(email));

CREATE TABLE operator_tokens (
    id           text PRIMARY KEY,
    operator_id  text NOT NULL REFERENCES operators (id),
    token_hash   bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

CREATE TABLE project_members (
    project_id  text NOT NULL REFERENCES projects (id),
    operator_id text NOT NULL REFERENCES operators (id),
    added_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, operator_id)
);
CREATE INDEX project_members_operator ON project_members (operator_id);

-- Signing secrets of a project's repair callback, encrypted with the application keyring (they
-- must be recoverable to sign). During a rotation the previous secret stays valid until
-- retired_at, so receivers see both signatures for 24 h.
CREATE TABLE callback_secrets (
    id          text PRIMARY KEY,
    project_id  text NOT NULL REFERENCES projects (id),
    secret_enc  jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz
);
CREATE INDEX callback_secrets_project ON callback_secrets (project_id, created_at DESC);

CREATE TABLE alert_destinations (
    id          text PRIMARY KEY,
    project_id  text NOT NULL REFERENCES projects (id),
    type        text NOT NULL CHECK (type IN ('email', 'slack')),
    target      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);
CREATE INDEX alert_destinations_project ON alert_destinations (project_id) WHERE deleted_at IS NULL;

-- One row per (scope, Idempotency-Key): scope is the project (ingest) or the operator (operator API).
CREATE TABLE idempotency_records (
    scope            text NOT NULL,
    key              text NOT NULL,
    fingerprint      bytea NOT NULL,
    state            text NOT NULL CHECK (state IN ('in_flight', 'completed')),
    -- An in-flight claim whose process died is taken over after this moment.
    lease_until      timestamptz NOT NULL,
    response_status  integer,
    response_headers jsonb,
    response_body    bytea,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_records_created ON idempotency_records (created_at);

-- Transactional outbox: an operator action and its audit event commit together; the relay
-- publishes rows to sendpromptly.audit.v1 and marks them. The audit-log API reads this table
-- until the audit sink's hash-chained log exists.
CREATE TABLE audit_outbox (
    seq            bigserial PRIMARY KEY,
    event_id       text NOT NULL UNIQUE,
    project_id     text,
    actor          text NOT NULL,
    action         text NOT NULL,
    target         text NOT NULL,
    data           jsonb NOT NULL DEFAULT '{}',
    source_address text,
    occurred_at    timestamptz NOT NULL DEFAULT now(),
    published_at   timestamptz
);
CREATE INDEX audit_outbox_unpublished ON audit_outbox (seq) WHERE published_at IS NULL;
CREATE INDEX audit_outbox_project ON audit_outbox (project_id, seq DESC);
