-- Every alert send is recorded before it is made and its outcome after (store/attempts.py), as
-- repair callbacks are (0008): a mail or a webhook POST sent by an alerts sink that then died
-- (kill -9, the database away when recording the outcome) stays on record as an attempt without
-- outcome (finished_at NULL) until the notification's lease runs out and the next claim records it
-- as interrupted. notifications.attempts counts the attempts begun.
CREATE TABLE notification_attempts (
    notification_id bigint NOT NULL REFERENCES notifications (id),
    attempt         integer NOT NULL CHECK (attempt >= 1),
    attempted_at    timestamptz NOT NULL,
    -- Why the send failed (NULL: the channel accepted it); only once finished_at is set.
    error           text,
    finished_at     timestamptz,
    PRIMARY KEY (notification_id, attempt),
    CHECK (finished_at IS NOT NULL OR error IS NULL)
);
