-- Operators investigate (issue #11): a failed result's detail (at most 2 KiB, never a payload) is
-- kept on the flow and on its incident; NULL for every other flow and incident.
ALTER TABLE flows ADD COLUMN detail text;
ALTER TABLE incidents ADD COLUMN detail text;
-- A flow's timeline (GET /api/v1/projects/{id}/flows/{reference}) is the audit entries of its
-- reference and of its incident: found by target within the project's chain.
CREATE INDEX audit_log_target ON audit_log (chain, target, seq);
