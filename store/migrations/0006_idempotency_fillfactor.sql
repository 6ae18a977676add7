-- An ingest request inserts its idempotency record and marks it completed milliseconds later. On
-- pages filled to the brim by the inserts, each completion's new row version went to another page
-- and added an entry to both indexes; with room left on the page it stays there (a HOT update)
-- and no index is touched. Applies to pages written from now on.
ALTER TABLE idempotency_records SET (fillfactor = 60);
