-- The console (axis/store/ops/console.py): sessions, the overview's counts, the message
-- search, the deliveries and audit pages newest first. Every query goes by an index (see
-- migrations/007_console.sql); a search whose filters no index covers scans at most a window
-- of sequence numbers per page. PostgreSQL's file has the same names and arguments.

-- name: console_session_insert
INSERT INTO console_sessions (session_hash, token_id, created_at, last_seen_at)
    VALUES (?, ?, ?, ?);

-- name: console_sessions_expire
-- sessions past their idle or absolute expiry, cleared when a new one starts
DELETE FROM console_sessions WHERE last_seen_at < ? OR created_at < ?;

-- name: console_session_get
-- a live session: its token must still be live too (revoking a token ends its sessions)
SELECT s.session_hash, t.token_id, t.role, t.organ_id, s.created_at, s.last_seen_at
    FROM console_sessions s JOIN tokens t ON t.token_id = s.token_id
    WHERE s.session_hash = ? AND t.revoked_at IS NULL;

-- name: console_session_any
SELECT s.session_hash, t.token_id, t.role, t.organ_id, s.created_at, s.last_seen_at
    FROM console_sessions s JOIN tokens t ON t.token_id = s.token_id
    WHERE s.session_hash = ?;

-- name: console_session_touch
-- a hint of activity for the idle expiry, never moved backwards
UPDATE console_sessions SET last_seen_at = ? WHERE session_hash = ? AND last_seen_at < ?;

-- name: console_session_delete
DELETE FROM console_sessions WHERE session_hash = ?;

-- name: console_documents_since
-- documents accepted per UTC hour (the index on kind and time, nothing else read)
SELECT substr(received_at, 1, 13), count(*) FROM messages
    WHERE kind = 'edoc' AND received_at >= ? GROUP BY substr(received_at, 1, 13) ORDER BY 1;

-- name: console_open_counts
SELECT state, count(*) FROM deliveries WHERE open = 1 GROUP BY state;

-- name: console_failed_count
SELECT count(*) FROM deliveries WHERE open = 0 AND state = 'failed';

-- name: console_deliveries_total
-- deliveries are never deleted, so the highest sequence number is how many there are
SELECT max(seq) FROM deliveries;

-- name: console_overdue
-- recipients of documents received in a period that reported no receipt (01, 02, 03)
SELECT m.id, m.from_id, m.document_id, m.received_at, d.delivered_to
    FROM messages m JOIN deliveries d ON d.message_id = m.id
    WHERE m.kind = 'edoc' AND m.received_at >= ? AND m.received_at < ?
    AND NOT EXISTS (SELECT 1 FROM statuses s WHERE s.doc_from = m.from_id
    AND s.document_id = m.document_id AND s.party = d.delivered_to
    AND s.code IN ('01', '02', '03'))
    ORDER BY m.received_at DESC, d.seq LIMIT ?;

-- name: console_failing_endpoints
-- one index probe per failing recipient (a skip scan over deliveries_retrying)
WITH RECURSIVE t (organ) AS (
    SELECT min(delivered_to) FROM deliveries WHERE state = 'retrying'
    UNION ALL SELECT (SELECT min(x.delivered_to) FROM deliveries x
        WHERE x.state = 'retrying' AND x.delivered_to > t.organ)
    FROM t WHERE t.organ IS NOT NULL)
SELECT t.organ,
    (SELECT min(y.push_since) FROM deliveries y WHERE y.state = 'retrying'
        AND y.delivered_to = t.organ),
    (SELECT count(*) FROM (SELECT 1 FROM deliveries z WHERE z.state = 'retrying'
        AND z.delivered_to = t.organ LIMIT ?) AS c),
    (SELECT w.last_error FROM deliveries w WHERE w.state = 'retrying'
        AND w.delivered_to = t.organ ORDER BY w.push_since DESC LIMIT 1)
    FROM t WHERE t.organ IS NOT NULL LIMIT ?;

-- name: console_failing_endpoint
SELECT min(push_since), count(*) FROM deliveries WHERE state = 'retrying' AND delivered_to = ?;

-- name: console_failing_error
SELECT last_error FROM deliveries WHERE state = 'retrying' AND delivered_to = ?
    ORDER BY push_since DESC LIMIT 1;

-- name: deliveries_bounds
-- each end by the index (two aggregates in one SELECT would read the whole table)
SELECT (SELECT min(seq) FROM deliveries), (SELECT max(seq) FROM deliveries);

-- name: deliveries_time_from
-- a delivery's time is its message's: both grow with the sequence numbers
SELECT m.received_at FROM deliveries d JOIN messages m ON m.id = d.message_id
    WHERE d.seq >= ? ORDER BY d.seq LIMIT 1;

-- name: console_last_message_seq
SELECT max(seq) FROM messages;

-- name: console_by_id
SELECT m.seq, m.id, m.kind, m.from_id, m.document_id, m.business_type, m.status_code,
    m.received_at FROM messages m WHERE m.id = ? /*and*/ LIMIT ?;

-- name: console_document_from
SELECT m.seq, m.id, m.kind, m.from_id, m.document_id, m.business_type, m.status_code,
    m.received_at FROM messages m WHERE m.from_id = ? AND m.document_id = ? /*and*/
    ORDER BY m.seq DESC LIMIT ?;

-- name: console_document_any
-- any sender's messages of a DocumentId: one probe of (from_id, document_id) per agency
SELECT m.seq, m.id, m.kind, m.from_id, m.document_id, m.business_type, m.status_code,
    m.received_at FROM agencies a CROSS JOIN messages m
    WHERE m.from_id = a.organ_id AND m.document_id = ? /*and*/ ORDER BY m.seq DESC LIMIT ?;

-- name: console_latest
SELECT m.seq, m.id, m.kind, m.from_id, m.document_id, m.business_type, m.status_code,
    m.received_at FROM messages m WHERE m.seq > ? AND m.seq <= ? /*and*/
    ORDER BY m.seq DESC LIMIT ?;

-- name: console_from
SELECT m.seq, m.id, m.kind, m.from_id, m.document_id, m.business_type, m.status_code,
    m.received_at FROM messages m WHERE m.from_id = ? AND m.seq > ? AND m.seq <= ? /*and*/
    ORDER BY m.seq DESC LIMIT ?;

-- name: console_to
SELECT d.seq, m.id, m.kind, m.from_id, m.document_id, m.business_type, m.status_code,
    m.received_at FROM deliveries d JOIN messages m ON m.id = d.message_id
    WHERE d.delivered_to = ? AND d.seq > ? AND d.seq <= ? /*and*/ ORDER BY d.seq DESC LIMIT ?;

-- name: console_state
SELECT d.seq, m.id, m.kind, m.from_id, m.document_id, m.business_type, m.status_code,
    m.received_at FROM deliveries d JOIN messages m ON m.id = d.message_id
    WHERE d.open = ? AND d.state = ? AND d.seq > ? AND d.seq <= ? /*and*/
    ORDER BY d.seq DESC LIMIT ?;

-- name: console_kind
-- (+: checked on the rows, so the index on kind and time never drives a ranged search)
+m.kind = ?

-- name: console_sent_by
m.from_id = ?

-- name: console_sent_to
EXISTS (SELECT 1 FROM deliveries x WHERE x.message_id = m.id AND x.delivered_to = ?)

-- name: console_any_in_state
EXISTS (SELECT 1 FROM deliveries x WHERE x.message_id = m.id AND x.state = ?)

-- name: console_any_overdue
-- a document with a recipient that has reported no receipt (01, 02 or 03)
+m.kind = 'edoc' AND EXISTS (SELECT 1 FROM deliveries x WHERE x.message_id = m.id
    AND NOT EXISTS (SELECT 1 FROM statuses s WHERE s.doc_from = m.from_id
    AND s.document_id = m.document_id AND s.party = x.delivered_to
    AND s.code IN ('01', '02', '03')))

-- name: console_this_in_state
d.state = ?

-- name: console_this_overdue
+m.kind = 'edoc' AND NOT EXISTS (SELECT 1 FROM statuses s WHERE s.doc_from = m.from_id
    AND s.document_id = m.document_id AND s.party = d.delivered_to
    AND s.code IN ('01', '02', '03'))

-- name: console_seq_below
m.seq < ?

-- name: console_document_is
m.document_id = ?

-- name: console_since
m.received_at >= ?

-- name: console_until
m.received_at < ?

-- name: console_deliveries_of
SELECT message_id, delivered_to, state FROM deliveries
    WHERE message_id IN (SELECT value FROM json_each(?)) ORDER BY seq;

-- name: console_message_facts
SELECT signer_sha256, body_purged_at, replaced_ids FROM messages WHERE id = ?;

-- name: console_message_body
-- the body an administrator downloads (the last column: the blob file of a large one)
SELECT id, from_id, document_id, kind, sha256, size, body, body_file, body_purged_at
    FROM messages WHERE id = ?;

-- name: console_state_deliveries
SELECT d.seq, d.id, d.message_id, d.kind, m.from_id, m.document_id, d.delivered_to, d.state,
    d.attempts, d.last_error, d.updated_at, d.push_since, d.next_attempt_at, d.open
    FROM deliveries d JOIN messages m ON m.id = d.message_id
    WHERE d.open = ? AND d.state = ? AND d.seq < ? /*and*/ ORDER BY d.seq DESC LIMIT ?;

-- name: console_audit_back
SELECT seq, at, type, actor, message_id, document_id, from_id, to_id, detail, hash
    FROM audit_events WHERE seq > ? AND seq <= ? /*and*/ ORDER BY seq DESC LIMIT ?;

-- name: console_checkpoints_back
SELECT seq, hash, at, xml FROM audit_checkpoints WHERE seq < ? ORDER BY seq DESC LIMIT ?;
