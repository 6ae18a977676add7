-- Projects and their API keys: the part of the control plane the ingest path needs.
CREATE TABLE projects (
    id                  text PRIMARY KEY,
    name                text NOT NULL,
    mode                text NOT NULL DEFAULT 'test' CHECK (mode IN ('test', 'live')),
    timeout_minutes     integer NOT NULL DEFAULT 30 CHECK (timeout_minutes BETWEEN 1 AND 10080),
    snapshots_enabled   boolean NOT NULL DEFAULT false,
    repair_callback_url text,
    created_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id           text PRIMARY KEY,
    project_id   text NOT NULL REFERENCES projects (id),
    label        text NOT NULL,
    -- The first characters after "sk_", shown to operators so they can tell keys apart.
    prefix       text NOT NULL,
    last_four    text NOT NULL,
    -- SHA-256 of the whole key; the key itself is never stored.
    key_hash     bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_project ON api_keys (project_id, created_at DESC);

-- The read model of flow state. The agents own the state; the read-model sink copies each
-- transition here. "version" only grows, so a redelivered or reordered transition is ignored.
CREATE TABLE flows (
    project_id   text NOT NULL REFERENCES projects (id),
    reference    text NOT NULL,
    mode         text NOT NULL CHECK (mode IN ('test', 'live')),
    status       text NOT NULL CHECK (status IN ('pending', 'applied', 'incident', 'resolved')),
    event_type   text NOT NULL,
    effect_type  text NOT NULL,
    received_at  timestamptz NOT NULL,
    deadline     timestamptz NOT NULL,
    applied_at   timestamptz,
    incident_id  text,
    version      bigint NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, reference)
);
CREATE INDEX flows_project_received ON flows (project_id, received_at DESC);
