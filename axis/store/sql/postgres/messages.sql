-- Sending and receiving (axis/store/ops/messages.py): the same names and arguments as
-- SQLite's file. `?` placeholders become $1, $2, … when the file is loaded; the long
-- statements below number theirs themselves. Rows a check reads before it writes are locked.

-- name: message_by_digest
SELECT id FROM messages WHERE from_id = ? AND sha256 = ?;

-- name: document_introduced
SELECT id FROM messages WHERE from_id = ? AND document_id = ? AND kind = 'edoc'
    AND business_type IN (0, 3) ORDER BY seq LIMIT 1;

-- name: document_recipients
SELECT d.delivered_to FROM deliveries d JOIN messages m ON m.id = d.message_id
    WHERE m.from_id = ? AND m.document_id = ? AND m.kind = 'edoc' ORDER BY d.seq;

-- name: latest_request
SELECT m.id FROM messages m JOIN deliveries d ON d.message_id = m.id
    WHERE m.from_id = ? AND m.document_id = ? AND d.delivered_to = ?
    AND ((m.kind = 'status' AND m.status_code = ?) OR (m.kind = 'edoc' AND m.business_type IN (1, 2)))
    ORDER BY m.seq DESC LIMIT 1;

-- name: message_insert_all
-- a message with its deliveries, statuses and links in one round trip. Nothing is inserted
-- when a unique index refuses the message (ON CONFLICT DO NOTHING waits for a transaction
-- that holds the same key, and yields if it commits); the count says which it was.
WITH m AS (INSERT INTO messages (id, kind, from_id, document_id, business_type, status_code,
    sha256, size, received_at, body, routes, replaced_ids, signer_sha256, authenticated_by,
    system_id, subject, notation)
    VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17)
    ON CONFLICT DO NOTHING RETURNING id),
d AS (INSERT INTO deliveries (id, message_id, delivered_to, kind, state, updated_at)
    SELECT x.d, m.id, x.t, $2, $18, $19 FROM m,
    unnest($20::text[], $21::text[]) WITH ORDINALITY AS x (d, t, n) ORDER BY x.n),
s AS (INSERT INTO statuses (message_id, doc_from, document_id, party, code, at, received_at)
    SELECT m.id, x.f, x.doc, x.p, x.c, x.a, $9 FROM m,
    unnest($22::text[], $23::text[], $24::text[], $25::text[], $26::text[])
    WITH ORDINALITY AS x (f, doc, p, c, a, n) ORDER BY x.n),
l AS (INSERT INTO links (from_message, to_message, relation)
    SELECT m.id, x.t, x.r FROM m, unnest($27::text[], $28::text[]) AS x (t, r)
    ON CONFLICT DO NOTHING)
SELECT count(*) FROM m;

-- name: messages_insert_many
-- the same for the messages of one batch: each row of the child tables names its message,
-- and only the messages the unique indexes let in get them. Returns their ids.
WITH x AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
    $5::smallint[], $6::text[], $7::text[], $8::bigint[], $9::text[], $10::bytea[],
    $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[])
    WITH ORDINALITY AS x (id, kind, from_id, document_id, business_type, status_code, sha256,
    size, received_at, body, routes, replaced_ids, signer_sha256, authenticated_by, system_id,
    subject, notation, n)),
m AS (INSERT INTO messages (id, kind, from_id, document_id, business_type, status_code,
    sha256, size, received_at, body, routes, replaced_ids, signer_sha256, authenticated_by,
    system_id, subject, notation)
    SELECT id, kind, from_id, document_id, business_type, status_code, sha256, size,
    received_at, body, routes, replaced_ids, signer_sha256, authenticated_by, system_id,
    subject, notation FROM x ORDER BY n
    ON CONFLICT DO NOTHING RETURNING id, kind, received_at),
d AS (INSERT INTO deliveries (id, message_id, delivered_to, kind, state, updated_at)
    SELECT y.d, m.id, y.t, m.kind, $18, $19 FROM
    unnest($20::text[], $21::text[], $22::text[]) WITH ORDINALITY AS y (mid, d, t, n)
    JOIN m ON m.id = y.mid ORDER BY y.n),
s AS (INSERT INTO statuses (message_id, doc_from, document_id, party, code, at, received_at)
    SELECT m.id, y.f, y.doc, y.p, y.c, y.a, m.received_at FROM
    unnest($23::text[], $24::text[], $25::text[], $26::text[], $27::text[], $28::text[])
    WITH ORDINALITY AS y (mid, f, doc, p, c, a, n) JOIN m ON m.id = y.mid ORDER BY y.n),
l AS (INSERT INTO links (from_message, to_message, relation)
    SELECT m.id, y.t, y.r FROM unnest($29::text[], $30::text[], $31::text[])
    AS y (mid, t, r) JOIN m ON m.id = y.mid ON CONFLICT DO NOTHING)
SELECT id FROM m;

-- name: message_part_insert
INSERT INTO message_parts (message_id, part, data) VALUES (?, ?, ?);

-- name: message_parts_set
UPDATE messages SET body_parts = ? WHERE id = ?;

-- name: message_part
SELECT data FROM message_parts WHERE message_id = ? AND part = ?;

-- name: message_by_id
SELECT id, kind, from_id, document_id, business_type, status_code, sha256, size, received_at,
    routes, authenticated_by, system_id, subject, notation FROM messages WHERE id = ?;

-- name: message_deliveries
-- who a message is delivered to and where each delivery stands, in the order they were made
SELECT delivered_to, state FROM deliveries WHERE message_id = ? ORDER BY seq;

-- name: message_around
SELECT 'd', delivered_to, id, state, attempts::text, last_error, updated_at, NULL::bigint
    FROM deliveries WHERE message_id = $1
UNION ALL SELECT 's', party, code, at, message_id, received_at, NULL, NULL
    FROM (SELECT * FROM statuses WHERE $2 AND doc_from = $3 AND document_id = $4 ORDER BY seq) s
UNION ALL SELECT 't', l.to_message, l.relation, m.kind, m.document_id, NULL, NULL, NULL
    FROM links l JOIN messages m ON m.id = l.to_message WHERE l.from_message = $1
UNION ALL SELECT 'b', l.from_message, l.relation, m.kind, m.document_id, NULL, NULL, m.seq
    FROM links l JOIN messages m ON m.id = l.from_message WHERE l.to_message = $1;

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
kind = 'edoc' AND received_at < ? AND EXISTS (SELECT 1 FROM deliveries d
    WHERE d.message_id = messages.id AND NOT EXISTS (SELECT 1 FROM statuses s
    WHERE s.doc_from = messages.from_id AND s.document_id = messages.document_id
    AND s.party = d.delivered_to AND s.code IN ('01', '02', '03')))

-- name: inbox_page
SELECT d.seq, m.id, m.kind, m.from_id, m.document_id, m.status_code, m.sha256, m.size,
    m.received_at, m.authenticated_by, m.system_id FROM deliveries d
    JOIN messages m ON m.id = d.message_id
    WHERE d.delivered_to = ? AND d.open AND d.seq > ? /*and*/ ORDER BY d.seq LIMIT ?;

-- name: inbox_kind
d.kind = ?

-- name: delivery_to_fetch
SELECT d.id, d.state, m.kind, m.from_id, m.sha256, m.size, m.body, m.body_parts, m.document_id
    FROM deliveries d JOIN messages m ON m.id = d.message_id
    WHERE d.message_id = ? AND d.delivered_to = ?;

-- name: delivery_fetched
UPDATE deliveries SET state = ?, updated_at = ? WHERE id = ? AND state IN (?, ?);

-- name: delivery_to_ack
SELECT d.id, d.state, d.updated_at, m.document_id, m.from_id FROM deliveries d
    JOIN messages m ON m.id = d.message_id WHERE d.message_id = ? AND d.delivered_to = ?
    FOR UPDATE OF d;

-- name: delivery_acked
UPDATE deliveries SET state = ?, open = false, reason = ?, updated_at = ?,
    last_error = CASE WHEN ? THEN ? ELSE last_error END WHERE id = ?;

-- name: pending_page
-- a connected system's inbox: open deliveries to any agency it serves, oldest first
SELECT m.id, m.kind, m.from_id, d.delivered_to, m.received_at, d.updated_at, d.state,
    d.processing_at FROM deliveries d JOIN messages m ON m.id = d.message_id
    WHERE d.delivered_to = ANY(?) AND d.open /*and*/ ORDER BY d.seq LIMIT ? OFFSET ?;

-- name: pending_count
SELECT count(*) FROM deliveries d JOIN messages m ON m.id = d.message_id
    WHERE d.delivered_to = ANY(?) AND d.open /*and*/;

-- name: pending_kind
d.kind = ?

-- name: pending_since
m.received_at >= ?

-- name: pending_until
m.received_at < ?

-- name: sent_page
SELECT seq, id, kind, from_id, document_id, business_type, status_code, sha256, size,
    received_at, routes, authenticated_by, system_id, subject, notation FROM messages
    WHERE from_id = ANY(?) /*and*/ ORDER BY seq DESC LIMIT ? OFFSET ?;

-- name: sent_since
received_at >= ?

-- name: sent_until
received_at < ?

-- name: delivery_processing
UPDATE deliveries SET processing_at = ?, updated_at = ? WHERE id = ? AND processing_at IS NULL;
