-- Alerts to the projects' destinations and the hash-chained audit log.

-- Why the last send to a destination failed for good (Slack 404/410, SMTP 5xx), shown to operators;
-- cleared by the next alert it accepts.
ALTER TABLE alert_destinations
    ADD COLUMN last_failure text,
    ADD COLUMN failed_at    timestamptz,
    ADD CHECK ((last_failure IS NULL) = (failed_at IS NULL));

-- One alert per (incident, event, destination), claimed when the event is consumed and before
-- anything is sent, so redelivery and extra replicas send nothing twice. replay_id tells one
-- replay's exhausted callback from another's (NULL for opened and resolved).
--   pending  a send is due at next_attempt_at
--   sent     the channel accepted it
--   failed   refused for good, or every retry failed (last_error says why)
CREATE TABLE notifications (
    id              bigserial PRIMARY KEY,
    incident_id     text NOT NULL,
    event_type      text NOT NULL CHECK (event_type IN ('opened', 'resolved', 'callback_exhausted')),
    replay_id       text,
    destination_id  text NOT NULL REFERENCES alert_destinations (id),
    project_id      text NOT NULL REFERENCES projects (id),
    -- What the message says (sinks/channels/message.py: Alert), fixed when claimed.
    alert           jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error      text,
    next_attempt_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    UNIQUE NULLS NOT DISTINCT (incident_id, event_type, replay_id, destination_id),
    CHECK ((event_type = 'callback_exhausted') = (replay_id IS NOT NULL)),
    CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'pending';

-- The audit log: every operator action and flow transition from sendpromptly.audit.v1, appended
-- by the audit sink once each (event_id), in topic order per chain. chain is the project id, or
-- 'system' for events of no project. hash = SHA-256 of the row's canonical JSON including
-- prev_hash, the previous row's hash in the same chain (64 zeros for the first):
-- store/audit_log.py computes it and `sendpromptly audit verify` checks it.
CREATE TABLE audit_log (
    seq            bigserial PRIMARY KEY,
    chain          text NOT NULL,
    event_id       text NOT NULL UNIQUE,
    actor          text NOT NULL,
    action         text NOT NULL,
    target         text NOT NULL,
    data           jsonb NOT NULL,
    source_address text,
    occurred_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL,
    prev_hash      text NOT NULL,
    hash           text NOT NULL
);
CREATE INDEX audit_log_chain ON audit_log (chain, seq DESC);

-- Append-only in the database itself, whoever connects: rows are never changed or removed. (The
-- table's owner can still disable the trigger; the hash chain is what shows that happened.)
CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
