-- Push delivery, as in sqlite/004_push.sql: when each delivery is next due, who holds it, and
-- how long it has been tried. A claim is SELECT … FOR UPDATE SKIP LOCKED then UPDATE, so two
-- nodes never take the same delivery; a lease is a later next_attempt_at and a lease_id, so a
-- dead node's deliveries fall due again by themselves.
--
-- next_attempt_at: '' (every new delivery) sorts before any time: due at once.

ALTER TABLE deliveries ADD COLUMN next_attempt_at text COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE deliveries ADD COLUMN lease_id text COLLATE "C";
ALTER TABLE deliveries ADD COLUMN leased_by text;
ALTER TABLE deliveries ADD COLUMN push_since text COLLATE "C";
ALTER TABLE deliveries ADD COLUMN push_failures integer NOT NULL DEFAULT 0;

-- what a worker may claim, per recipient, earliest due first
CREATE INDEX deliveries_push_due ON deliveries (delivered_to, next_attempt_at)
    WHERE open AND state IN ('queued', 'fetched', 'retrying');
-- the dead letters an administrator looks through
CREATE INDEX deliveries_dead ON deliveries (seq) WHERE state = 'dead';
