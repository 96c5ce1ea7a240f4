-- The audit log's checkpoints and the retention of message bodies.
--
-- No index is added to audit_events: appending an event stays one INSERT (plus the existing
-- index on message_id); queries go by seq (see axis/store/sqlite_audit.py).

-- The axis's signed statements of the chain head: event `seq` had hash `hash` at `at`.
-- `xml` is the signed document exactly as served (it verifies with xmlsec1). Each one is also
-- recorded by a `checkpoint` event in the chain.
CREATE TABLE audit_checkpoints (
    seq  INTEGER PRIMARY KEY,
    hash TEXT NOT NULL,
    at   TEXT NOT NULL,
    xml  BLOB NOT NULL
);

-- When the retention policy dropped the body (body and body_file are then NULL); the digest,
-- the size and every event stay.
ALTER TABLE messages ADD COLUMN body_purged_at TEXT;

-- Blob files of purged bodies not yet deleted: a file goes once no kept message stores its
-- body there and no intake has reused it lately (see _sweep in sqlite_audit.py).
CREATE TABLE purged_blobs (
    sha256 TEXT PRIMARY KEY,
    since  TEXT NOT NULL
);
