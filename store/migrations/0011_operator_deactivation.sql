-- Admins remove operators through the operator API. The row stays (the audit log and old
-- memberships name it); a deactivated operator's tokens are refused and the email stays taken,
-- so that an address cannot silently inherit someone else's history.
ALTER TABLE operators ADD COLUMN deactivated_at timestamptz;
