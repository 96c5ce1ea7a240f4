-- Push delivery (axis/store/ops/push.py). A claim selects with FOR UPDATE SKIP LOCKED: two
-- nodes claiming at once skip each other's rows, and a row another node has just claimed
-- and committed is no longer due. Every other decision locks the delivery it reads.

-- name: push_next_due
SELECT MIN(d.next_attempt_at) FROM deliveries d WHERE d.delivered_to = ?
    AND d.open AND d.state IN (:PUSHABLE);

-- name: push_claim
SELECT d.id, d.message_id, d.delivered_to, d.kind, m.from_id, m.document_id, m.size, m.body,
    m.body_parts, m.sha256, d.attempts, d.push_failures, COALESCE(d.push_since, ?)
    FROM deliveries d JOIN messages m ON m.id = d.message_id
    WHERE d.delivered_to = ? AND d.open AND d.state IN (:PUSHABLE)
    AND d.next_attempt_at <= ? ORDER BY d.next_attempt_at LIMIT ? FOR UPDATE OF d SKIP LOCKED;

-- name: push_lease
UPDATE deliveries SET next_attempt_at = ?, lease_id = ?, leased_by = ?,
    push_since = COALESCE(push_since, ?) WHERE id = ANY(?);

-- name: push_delivery_locked
SELECT d.state, d.open, d.lease_id, d.attempts, m.id, m.document_id, m.from_id, d.delivered_to
    FROM deliveries d JOIN messages m ON m.id = d.message_id WHERE d.id = ? FOR UPDATE OF d;

-- name: push_acked
UPDATE deliveries SET state = ?, open = false, attempts = ?, lease_id = NULL, leased_by = NULL,
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
    WHERE d.delivered_to = ANY(?) AND d.open AND d.state IN (:PUSHABLE)
    AND d.next_attempt_at > ? AND d.lease_id IS NULL;

-- name: push_start_held
UPDATE deliveries AS d SET push_since = ?
    WHERE d.delivered_to = ANY(?) AND d.open AND d.state IN (:PUSHABLE)
    AND d.next_attempt_at <= ? AND d.lease_id IS NULL AND d.push_since IS NULL;

-- name: push_expired_held
SELECT d.id, d.attempts, d.last_error, m.id, m.document_id, m.from_id, d.delivered_to
    FROM deliveries d JOIN messages m ON m.id = d.message_id
    WHERE d.delivered_to = ANY(?) AND d.open AND d.state IN (:PUSHABLE)
    AND d.next_attempt_at <= ? AND d.lease_id IS NULL AND d.push_since < ?
    ORDER BY d.seq FOR UPDATE OF d SKIP LOCKED;

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
SELECT state, count(*), min(seq) FROM deliveries WHERE open GROUP BY state;

-- name: delivery_received_at
SELECT m.received_at FROM deliveries d JOIN messages m ON m.id = d.message_id WHERE d.seq = ?;
