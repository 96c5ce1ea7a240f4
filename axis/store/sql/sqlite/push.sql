-- Push delivery (axis/store/ops/push.py). Each query on due deliveries repeats the condition
-- of the partial index deliveries_push_due (`open` and a pushable state), which is used only
-- then; :PUSHABLE is spelled out from axis.model.PUSHABLE_STATES when the file is loaded.

-- name: push_next_due
-- one index probe: MIN over (delivered_to, next_attempt_at)
SELECT MIN(d.next_attempt_at) FROM deliveries d WHERE d.delivered_to = ?
    AND d.open = 1 AND d.state IN (:PUSHABLE);

-- name: push_claim
SELECT d.id, d.message_id, d.delivered_to, d.kind, m.from_id, m.document_id, m.size, m.body,
    m.body_file, m.sha256, d.attempts, d.push_failures, COALESCE(d.push_since, ?)
    FROM deliveries d JOIN messages m ON m.id = d.message_id
    WHERE d.delivered_to = ? AND d.open = 1 AND d.state IN (:PUSHABLE)
    AND d.next_attempt_at <= ? ORDER BY d.next_attempt_at LIMIT ?;

-- name: push_lease
UPDATE deliveries SET next_attempt_at = ?, lease_id = ?, leased_by = ?,
    push_since = COALESCE(push_since, ?) WHERE id IN (SELECT value FROM json_each(?));

-- name: push_delivery_locked
SELECT d.state, d.open, d.lease_id, d.attempts, m.id, m.document_id, m.from_id, d.delivered_to
    FROM deliveries d JOIN messages m ON m.id = d.message_id WHERE d.id = ?;

-- name: push_acked
UPDATE deliveries SET state = ?, open = 0, attempts = ?, lease_id = NULL, leased_by = NULL,
    push_failures = 0, updated_at = ? WHERE id = ?;

-- name: push_gave_up
UPDATE deliveries SET state = ?, attempts = ?, last_error = ?, lease_id = NULL, leased_by = NULL,
    push_failures = push_failures + 1, updated_at = ? WHERE id = ?;

-- name: push_failed
UPDATE deliveries SET state = ?, attempts = ?, last_error = ?, next_attempt_at = ?,
    lease_id = NULL, leased_by = NULL, push_failures = push_failures + 1, updated_at = ?
    WHERE id = ?;

-- name: push_release
UPDATE deliveries SET next_attempt_at = ?, lease_id = NULL, leased_by = NULL
    WHERE id = ? AND lease_id = ?;

-- name: push_hasten
UPDATE deliveries AS d SET next_attempt_at = ?
    WHERE d.delivered_to IN (SELECT value FROM json_each(?)) AND d.open = 1
    AND d.state IN (:PUSHABLE) AND d.next_attempt_at > ? AND d.lease_id IS NULL;

-- name: push_start_held
-- held: due, unleased, pushable deliveries of agencies whose endpoint's circuit is open
UPDATE deliveries AS d SET push_since = ?
    WHERE d.delivered_to IN (SELECT value FROM json_each(?)) AND d.open = 1
    AND d.state IN (:PUSHABLE) AND d.next_attempt_at <= ? AND d.lease_id IS NULL
    AND d.push_since IS NULL;

-- name: push_expired_held
SELECT d.id, d.attempts, d.last_error, m.id, m.document_id, m.from_id, d.delivered_to
    FROM deliveries d JOIN messages m ON m.id = d.message_id
    WHERE d.delivered_to IN (SELECT value FROM json_each(?)) AND d.open = 1
    AND d.state IN (:PUSHABLE) AND d.next_attempt_at <= ? AND d.lease_id IS NULL
    AND d.push_since < ? ORDER BY d.seq;

-- name: push_held_dead
UPDATE deliveries SET state = ?, last_error = ?, updated_at = ? WHERE id = ?;

-- name: push_redeliver
UPDATE deliveries SET state = ?, next_attempt_at = '', lease_id = NULL, leased_by = NULL,
    push_since = NULL, push_failures = 0, updated_at = ? WHERE id = ?;

-- name: deliveries_page
SELECT d.seq, d.id, d.message_id, d.kind, m.from_id, m.document_id, d.delivered_to, d.state,
    d.attempts, d.last_error, d.updated_at, d.push_since, d.next_attempt_at, d.open
    FROM deliveries d JOIN messages m ON m.id = d.message_id
    WHERE d.seq > ? /*and*/ ORDER BY d.seq LIMIT ?;

-- name: deliveries_state
d.state = ?

-- name: deliveries_to
d.delivered_to = ?

-- name: delivery_by_id
SELECT d.seq, d.id, d.message_id, d.kind, m.from_id, m.document_id, d.delivered_to, d.state,
    d.attempts, d.last_error, d.updated_at, d.push_since, d.next_attempt_at, d.open
    FROM deliveries d JOIN messages m ON m.id = d.message_id WHERE d.id = ?;

-- name: deliveries_open_by_state
-- what /metrics shows an operator: open deliveries by state (the inbox's partial index)
SELECT state, count(*), min(seq) FROM deliveries WHERE open = 1 GROUP BY state;

-- name: delivery_received_at
SELECT m.received_at FROM deliveries d JOIN messages m ON m.id = d.message_id WHERE d.seq = ?;
