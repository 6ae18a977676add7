-- A repair-callback attempt is recorded before its request is sent and its outcome after, so that
-- a request sent by a process that then died (kill -9, the database away when recording the
-- outcome) is never lost from the record: the attempt stays without outcome (finished_at NULL)
-- until the delivery's lease runs out and the next claim records it as interrupted.
ALTER TABLE callback_attempts
    ALTER COLUMN latency_ms DROP NOT NULL,
    ADD COLUMN finished_at timestamptz;

-- Every attempt recorded so far was recorded with its outcome, at once.
UPDATE callback_attempts
   SET finished_at = attempted_at + make_interval(secs => latency_ms / 1000.0);

ALTER TABLE callback_attempts
    ADD CONSTRAINT callback_attempts_outcome_after_finish
    CHECK (finished_at IS NOT NULL OR (http_status IS NULL AND latency_ms IS NULL AND error IS NULL));
