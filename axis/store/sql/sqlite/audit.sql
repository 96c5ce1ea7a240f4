-- The audit trail (axis/store/ops/audit.py); the appending itself is the backend's (Tx.event).

-- name: audit_head_at
SELECT seq, hash, at FROM audit_events ORDER BY seq DESC LIMIT 1;

-- name: audit_insert
INSERT INTO audit_events (seq, at, type, actor, message_id, document_id, from_id, to_id, detail,
    hash) VALUES (?,?,?,?,?,?,?,?,?,?);

-- name: audit_head
SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1;

-- name: audit_last_seq
SELECT max(seq) FROM audit_events;

-- name: audit_count
SELECT count(*) FROM audit_events;

-- name: audit_bounds
-- each end by the index (two aggregates in one SELECT would read the whole table)
SELECT (SELECT min(seq) FROM audit_events), (SELECT max(seq) FROM audit_events);

-- name: audit_time_from
SELECT at FROM audit_events WHERE seq >= ? ORDER BY seq LIMIT 1;

-- name: messages_bounds
-- each end by the index (two aggregates in one SELECT would read the whole table)
SELECT (SELECT min(seq) FROM messages), (SELECT max(seq) FROM messages);

-- name: messages_time_from
SELECT received_at FROM messages WHERE seq >= ? ORDER BY seq LIMIT 1;

-- name: audit_page
SELECT seq, at, type, actor, message_id, document_id, from_id, to_id, detail, hash
    FROM audit_events WHERE seq > ? AND seq <= ? /*and*/ ORDER BY seq LIMIT ?;

-- name: audit_message
message_id = ?

-- name: audit_document
-- the messages of a DocumentId, whoever sent it (the join drives the from_id index)
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
-- something other than a checkpoint happened after the last checkpoint
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
    EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id AND d.open = 1)
    FROM messages m WHERE m.seq > ? AND m.seq <= ? AND m.body_purged_at IS NULL
    ORDER BY m.seq LIMIT ?;

-- name: purge_eligible_locked
SELECT m.id, m.document_id, m.from_id, m.sha256, m.size, m.received_at, m.body_file
    FROM messages m WHERE m.id IN (SELECT value FROM json_each(?)) AND m.body_purged_at IS NULL
    AND m.received_at < ? AND NOT EXISTS (SELECT 1 FROM deliveries d
    WHERE d.message_id = m.id AND d.open = 1) ORDER BY m.seq;

-- name: message_purge
UPDATE messages SET body = NULL, body_file = NULL, body_purged_at = ? WHERE id = ?;

-- name: purged_blob_insert
INSERT INTO purged_blobs (sha256, since) VALUES (?, ?)
    ON CONFLICT (sha256) DO UPDATE SET since = excluded.since;

-- name: purged_blobs_due
-- SQLite keeps large bodies as blob files: those of purged bodies go once unused
SELECT sha256 FROM purged_blobs WHERE since <= ? ORDER BY since;

-- name: blob_in_use
-- a kept (unpurged) message stores its body in the blob file named by this digest
SELECT 1 FROM agencies a CROSS JOIN messages m
    WHERE m.from_id = a.organ_id AND m.sha256 = ? AND m.body_file IS NOT NULL LIMIT 1;

-- name: purged_blob_forget
DELETE FROM purged_blobs WHERE sha256 = ?;
