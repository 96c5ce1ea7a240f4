-- Push delivery: when each delivery is next due, who holds it, and how long it has been tried.
--
-- next_attempt_at: the delivery may be claimed once this time has passed. '' (the default, so
--   every new delivery) sorts before any time: due at once. A claim moves it to the end of the
--   lease, so a delivery whose holder died falls due again by itself.
-- lease_id, leased_by: the claim in force (NULL when none) and the worker that made it.
-- push_since: when this round's clock started (first claim, or a redelivery); the delivery
--   is dead once AXIS_PUSH_MAX_AGE has passed since.
-- push_failures: failures in a row in this round (the backoff exponent).

ALTER TABLE deliveries ADD COLUMN next_attempt_at TEXT NOT NULL DEFAULT '';
ALTER TABLE deliveries ADD COLUMN lease_id TEXT;
ALTER TABLE deliveries ADD COLUMN leased_by TEXT;
ALTER TABLE deliveries ADD COLUMN push_since TEXT;
ALTER TABLE deliveries ADD COLUMN push_failures INTEGER NOT NULL DEFAULT 0;

-- what a worker may claim, per recipient, earliest due first
CREATE INDEX deliveries_push_due ON deliveries (delivered_to, next_attempt_at)
    WHERE open = 1 AND state IN ('queued', 'fetched', 'retrying');
-- the dead letters an administrator looks through
CREATE INDEX deliveries_dead ON deliveries (seq) WHERE state = 'dead';
