-- The audit trail (axis/store/ops/audit.py). Events are appended by the writer at the end of
-- each batch, with the one-row audit_head locked until COMMIT (one chain across nodes).

-- name: audit_head_lock
SELECT seq, hash, at FROM audit_head WHERE id = 1 FOR UPDATE;

-- name: audit_append
-- the batch's events, the new head and its notifications, in one round trip
WITH ev AS (INSERT INTO audit_events (seq, at, type, actor, message_id, document_id, from_id,
    to_id, detail, hash) SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[],
    $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])),
hd AS (UPDATE audit_head SET seq = $11, hash = $12, at = $13 WHERE id = 1)
SELECT count(pg_notify($14, p)) FROM unnest($15::text[]) AS p;

-- name: mail_notify
SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p;

-- name: audit_head
SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1;

-- name: audit_last_seq
SELECT max(seq) FROM audit_events;

-- name: audit_count
SELECT count(*) FROM audit_events;

-- name: audit_bounds
-- each end by the index, spelled as in SQLite's file (where two aggregates in one SELECT read the whole table)
SELECT (SELECT min(seq) FROM audit_events), (SELECT max(seq) FROM audit_events);

-- name: audit_time_from
SELECT at FROM audit_events WHERE seq >= ? ORDER BY seq LIMIT 1;

-- name: messages_bounds
-- each end by the index, spelled as in SQLite's file (where two aggregates in one SELECT read the whole table)
SELECT (SELECT min(seq) FROM messages), (SELECT max(seq) FROM messages);

-- name: messages_time_from
SELECT received_at FROM messages WHERE seq >= ? ORDER BY seq LIMIT 1;

-- name: audit_page
SELECT seq, at, type, actor, message_id, document_id, from_id, to_id, detail, hash
    FROM audit_events WHERE seq > ? AND seq <= ? /*and*/ ORDER BY seq LIMIT ?;

-- name: audit_message
message_id = ?

-- name: audit_document
message_id IN (SELECT m.id FROM agencies a CROSS JOIN messages m
    WHERE m.from_id = a.organ_id AND m.document_id = ?) AND document_id = ?

-- name: audit_organ
(from_id = ? OR to_id = ?)

-- name: audit_type
type = ?

-- name: audit_since
at >= ?

-- name: audit_until
at < ?

-- name: audit_after
SELECT seq, at, type, actor, message_id, document_id, from_id, to_id, detail, hash
    FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?;

-- name: audit_news_since
SELECT 1 FROM audit_events WHERE seq > ? AND type != ? LIMIT 1;

-- name: audit_hash_at
SELECT hash FROM audit_events WHERE seq = ?;

-- name: message_purged_at
SELECT body_purged_at FROM messages WHERE id = ?;

-- name: checkpoint_last_seq
SELECT max(seq) FROM audit_checkpoints;

-- name: checkpoint_count
SELECT count(*) FROM audit_checkpoints;

-- name: checkpoint_insert
INSERT INTO audit_checkpoints (seq, hash, at, xml) VALUES (?,?,?,?);

-- name: checkpoints_page
SELECT seq, hash, at, xml FROM audit_checkpoints WHERE seq > ? ORDER BY seq LIMIT ?;

-- name: checkpoint_latest
SELECT seq, hash, at, xml FROM audit_checkpoints ORDER BY seq DESC LIMIT 1;

-- name: checkpoint_at
SELECT seq, hash, at, xml FROM audit_checkpoints WHERE seq = ?;

-- name: checkpoints_after
SELECT seq, hash, xml FROM audit_checkpoints WHERE seq > ? ORDER BY seq;

-- name: checkpoints_between
SELECT seq, hash, xml FROM audit_checkpoints WHERE seq > ? AND seq <= ? ORDER BY seq;

-- name: purge_candidates
SELECT m.seq, m.id, m.received_at,
    EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id AND d.open)
    FROM messages m WHERE m.seq > ? AND m.seq <= ? AND m.body_purged_at IS NULL
    ORDER BY m.seq LIMIT ?;

-- name: purge_eligible_locked
SELECT m.id, m.document_id, m.from_id, m.sha256, m.size, m.received_at, m.body_parts
    FROM messages m WHERE m.id = ANY(?) AND m.body_purged_at IS NULL
    AND m.received_at < ? AND NOT EXISTS (SELECT 1 FROM deliveries d
    WHERE d.message_id = m.id AND d.open) ORDER BY m.seq FOR UPDATE OF m;

-- name: message_purge
UPDATE messages SET body = NULL, body_parts = 0, body_purged_at = ? WHERE id = ?;

-- name: message_parts_delete
DELETE FROM message_parts WHERE message_id = ?;

-- name: purged_blob_insert
INSERT INTO purged_blobs (sha256, since) VALUES (?, ?)
    ON CONFLICT (sha256) DO UPDATE SET since = excluded.since;

-- name: purged_blobs_unused
-- the cached copies this node may delete: bodies purged that no kept message stores
SELECT p.sha256 FROM purged_blobs p WHERE NOT EXISTS (SELECT 1 FROM agencies a
    CROSS JOIN messages m WHERE m.from_id = a.organ_id AND m.sha256 = p.sha256
    AND m.body_parts > 0 AND m.body_purged_at IS NULL);

-- name: purged_blobs_forget_before
DELETE FROM purged_blobs WHERE since < ?;
