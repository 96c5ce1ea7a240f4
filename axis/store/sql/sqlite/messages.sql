-- Sending and receiving (axis/store/ops/messages.py). Placeholders are `?`, in the order the
-- operations pass their arguments; PostgreSQL's file has the same names and arguments.

-- name: message_by_digest
SELECT id FROM messages WHERE from_id = ? AND sha256 = ?;

-- name: document_introduced
-- the first message that introduced a DocumentId (a new document or a replacement)
SELECT id FROM messages WHERE from_id = ? AND document_id = ? AND kind = 'edoc'
    AND business_type IN (0, 3) ORDER BY seq LIMIT 1;

-- name: document_recipients
SELECT d.delivered_to FROM deliveries d JOIN messages m ON m.id = d.message_id
    WHERE m.from_id = ? AND m.document_id = ? AND m.kind = 'edoc' ORDER BY d.seq;

-- name: latest_request
-- the newest take-back request (status 13) or revocation/update sent to a party
SELECT m.id FROM messages m JOIN deliveries d ON d.message_id = m.id
    WHERE m.from_id = ? AND m.document_id = ? AND d.delivered_to = ?
    AND ((m.kind = 'status' AND m.status_code = ?) OR (m.kind = 'edoc' AND m.business_type IN (1, 2)))
    ORDER BY m.seq DESC LIMIT 1;

-- name: message_insert
-- the last column: the blob file of a body larger than AXIS_INLINE_MAX
INSERT INTO messages (id, kind, from_id, document_id, business_type, status_code, sha256, size,
    received_at, body, routes, replaced_ids, signer_sha256, authenticated_by, system_id, subject,
    notation, body_file) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING;

-- name: delivery_insert
INSERT INTO deliveries (id, message_id, delivered_to, kind, state, updated_at)
    VALUES (?,?,?,?,?,?);

-- name: status_insert
INSERT INTO statuses (message_id, doc_from, document_id, party, code, at, received_at)
    VALUES (?,?,?,?,?,?,?);

-- name: link_insert
INSERT INTO links (from_message, to_message, relation) VALUES (?,?,?) ON CONFLICT DO NOTHING;

-- name: message_by_id
SELECT id, kind, from_id, document_id, business_type, status_code, sha256, size, received_at,
    routes, authenticated_by, system_id, subject, notation FROM messages WHERE id = ?;

-- name: message_deliveries
-- who a message is delivered to and where each delivery stands, in the order they were made
SELECT delivered_to, state FROM deliveries WHERE message_id = ? ORDER BY seq;

-- name: message_around
-- one read for everything around a message: (d)eliveries, (s)tatuses of a document,
-- links (t)o earlier messages and links (b)ack from later ones (with their seq, for order)
SELECT 'd', delivered_to, id, state, attempts, last_error, updated_at, NULL
    FROM deliveries WHERE message_id = ?1
UNION ALL SELECT 's', party, code, at, message_id, received_at, NULL, NULL
    FROM (SELECT * FROM statuses WHERE ?2 AND doc_from = ?3 AND document_id = ?4 ORDER BY seq)
UNION ALL SELECT 't', l.to_message, l.relation, m.kind, m.document_id, NULL, NULL, NULL
    FROM links l JOIN messages m ON m.id = l.to_message WHERE l.from_message = ?1
UNION ALL SELECT 'b', l.from_message, l.relation, m.kind, m.document_id, NULL, NULL, m.seq
    FROM links l JOIN messages m ON m.id = l.from_message WHERE l.to_message = ?1;

-- name: outbox_page
SELECT seq, id, kind, from_id, document_id, business_type, status_code, sha256, size,
    received_at, routes, authenticated_by, system_id, subject, notation FROM messages
    WHERE from_id = ? /*and*/ ORDER BY seq DESC LIMIT ?;

-- name: outbox_before
seq < ?

-- name: outbox_since
received_at >= ?

-- name: outbox_until
received_at < ?

-- name: outbox_document
document_id = ?

-- name: outbox_overdue
-- a sent document with a recipient that has reported no receipt (01, 02 or 03)
kind = 'edoc' AND received_at < ? AND EXISTS (SELECT 1 FROM deliveries d
    WHERE d.message_id = messages.id AND NOT EXISTS (SELECT 1 FROM statuses s
    WHERE s.doc_from = messages.from_id AND s.document_id = messages.document_id
    AND s.party = d.delivered_to AND s.code IN ('01', '02', '03')))

-- name: inbox_page
SELECT d.seq, m.id, m.kind, m.from_id, m.document_id, m.status_code, m.sha256, m.size,
    m.received_at, m.authenticated_by, m.system_id FROM deliveries d
    JOIN messages m ON m.id = d.message_id
    WHERE d.delivered_to = ? AND d.open = 1 AND d.seq > ? /*and*/ ORDER BY d.seq LIMIT ?;

-- name: inbox_kind
d.kind = ?

-- name: delivery_to_fetch
SELECT d.id, d.state, m.kind, m.from_id, m.sha256, m.size, m.body, m.body_file, m.document_id
    FROM deliveries d JOIN messages m ON m.id = d.message_id
    WHERE d.message_id = ? AND d.delivered_to = ?;

-- name: delivery_fetched
UPDATE deliveries SET state = ?, updated_at = ? WHERE id = ? AND state IN (?, ?);

-- name: delivery_to_ack
SELECT d.id, d.state, d.updated_at, m.document_id, m.from_id FROM deliveries d
    JOIN messages m ON m.id = d.message_id WHERE d.message_id = ? AND d.delivered_to = ?;

-- name: delivery_acked
-- the fourth argument: whether it failed (the sender then sees the reason as last_error)
UPDATE deliveries SET state = ?, open = 0, reason = ?, updated_at = ?,
    last_error = CASE WHEN ? THEN ? ELSE last_error END WHERE id = ?;

-- name: pending_page
-- a connected system's inbox: open deliveries to any agency it serves, oldest first
SELECT m.id, m.kind, m.from_id, d.delivered_to, m.received_at, d.updated_at, d.state,
    d.processing_at FROM deliveries d JOIN messages m ON m.id = d.message_id
    WHERE d.delivered_to IN (SELECT value FROM json_each(?)) AND d.open = 1 /*and*/ ORDER BY d.seq LIMIT ? OFFSET ?;

-- name: pending_count
SELECT count(*) FROM deliveries d JOIN messages m ON m.id = d.message_id
    WHERE d.delivered_to IN (SELECT value FROM json_each(?)) AND d.open = 1 /*and*/;

-- name: pending_kind
d.kind = ?

-- name: pending_since
m.received_at >= ?

-- name: pending_until
m.received_at < ?

-- name: sent_page
SELECT seq, id, kind, from_id, document_id, business_type, status_code, sha256, size,
    received_at, routes, authenticated_by, system_id, subject, notation FROM messages
    WHERE from_id IN (SELECT value FROM json_each(?)) /*and*/ ORDER BY seq DESC LIMIT ? OFFSET ?;

-- name: sent_since
received_at >= ?

-- name: sent_until
received_at < ?

-- name: delivery_processing
UPDATE deliveries SET processing_at = ?, updated_at = ? WHERE id = ? AND processing_at IS NULL;
