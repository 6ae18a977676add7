-- The read model of incidents, from sendpromptly.incidents.v1. Every column merges
-- monotonically (store/incidents.py), so an event applied twice, or after a later one, changes
-- nothing: redelivery and reordering are harmless without an event log.
CREATE TABLE incidents (
    id              text PRIMARY KEY,
    project_id      text NOT NULL REFERENCES projects (id),
    reference       text NOT NULL,
    mode            text NOT NULL CHECK (mode IN ('test', 'live')),
    -- NULL until the "opened" event is seen (another event of the incident may come first);
    -- readers show an incident only once it has opened.
    reason          text CHECK (reason IN ('timeout', 'failed_outcome')),
    opened_at       timestamptz,
    deadline        timestamptz,
    status          text NOT NULL CHECK (status IN ('open', 'resolved')),
    acknowledged_at timestamptz,
    resolved_at     timestamptz,
    resolution      text CHECK (resolution IN ('outcome_succeeded', 'manual')),
    -- The operator's note of a manual resolution.
    note            text,
    CHECK ((status = 'resolved') = (resolution IS NOT NULL)),
    CHECK ((resolution IS NULL) = (resolved_at IS NULL))
);
CREATE INDEX incidents_project_opened ON incidents (project_id, opened_at DESC, id DESC);
CREATE INDEX incidents_flow ON incidents (project_id, reference);

-- One row per reprocess an operator asked for. attempts and outcome are the repair-callback
-- sink's to fill in.
CREATE TABLE replays (
    replay_id    text PRIMARY KEY,
    incident_id  text NOT NULL REFERENCES incidents (id),
    requested_by text NOT NULL,
    requested_at timestamptz NOT NULL,
    attempts     integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    outcome      text CHECK (outcome IN ('succeeded', 'failed'))
);
CREATE INDEX replays_incident ON replays (incident_id, requested_at);
