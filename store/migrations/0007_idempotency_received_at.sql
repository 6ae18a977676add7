-- When the gateway received the ingest request that claimed the key. A signal is stamped with it,
-- and its 202 answers the deadline that follows from it; a retry that takes over a claim whose
-- owner never completed it (a crash, the database away after Kafka's ack) publishes the signal
-- again with this same moment, so the flow's deadline and the stored answer still agree.
-- NULL for operator requests, which publish nothing of their own.
ALTER TABLE idempotency_records ADD COLUMN received_at timestamptz;
