-- The operators' web console (issue #13): server-side sign-in sessions, failed sign-ins for the
-- slow-down and lock-out, and an index for the open-incident counts its project list shows.

-- The cookie carries a random token; only its SHA-256 is stored, like operator tokens. A session
-- ends at expires_at or at sign-out (the row is deleted); a removed operator's sessions are refused.
CREATE TABLE console_sessions (
    token_hash  bytea PRIMARY KEY,
    operator_id text NOT NULL REFERENCES operators (id),
    -- Every form of the session carries it; a post without it is refused.
    csrf_token  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX console_sessions_operator ON console_sessions (operator_id);

-- Failed sign-ins per lower-cased email, whether or not an operator has it (an unknown address is
-- throttled like a known one, so the lock-out does not tell which exist). Cleared by a sign-in.
CREATE TABLE console_sign_in_failures (
    email          text PRIMARY KEY,
    failures       integer NOT NULL,
    last_failed_at timestamptz NOT NULL,
    locked_until   timestamptz
);

CREATE INDEX incidents_project_open ON incidents (project_id) WHERE status = 'open';
