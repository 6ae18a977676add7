-- Flow cycles (issue #11): a flow is (project, mode, reference, cycle). Test and live flows of one
-- reference never join, and a receipt for a reference whose flow is closed starts the next cycle,
-- with its own deadline, incident and history. Every flow stored before this is cycle 1 of its
-- mode (a flow row always carried the mode it was received in), with one receipt.
ALTER TABLE flows
    ADD COLUMN cycle           integer NOT NULL DEFAULT 1 CHECK (cycle >= 1),
    -- Receipts recorded on this cycle, and the newest one's received_at: a receipt repeated while
    -- the cycle is open is counted here and moves nothing else (not the deadline).
    ADD COLUMN receipts        integer NOT NULL DEFAULT 1 CHECK (receipts >= 1),
    ADD COLUMN last_receipt_at timestamptz;
UPDATE flows SET last_receipt_at = received_at;
ALTER TABLE flows ALTER COLUMN last_receipt_at SET NOT NULL;
-- The identity, and the lookup of a reference's latest cycles: this index read backwards answers
-- "cycle DESC" for one (project, mode, reference) without a sort.
ALTER TABLE flows DROP CONSTRAINT flows_pkey, ADD PRIMARY KEY (project_id, mode, reference, cycle);
