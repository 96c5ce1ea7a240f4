-- The audit log's checkpoints and the retention of message bodies, as in
-- sqlite/003_audit.sql. No index is added to audit_events: appending stays one INSERT per
-- batch; queries go by seq (see axis/store/postgres_audit.py).

-- The axis's signed statements of the chain head: event `seq` had hash `hash` at `at`, with
-- the signed document exactly as served. Each is also recorded by a `checkpoint` event.
CREATE TABLE audit_checkpoints (
    seq  bigint PRIMARY KEY,
    hash text NOT NULL,
    at   text COLLATE "C" NOT NULL,
    xml  bytea NOT NULL
);

-- When the retention policy dropped the body (body, and its parts, are then gone); the
-- digest, the size and every event stay.
ALTER TABLE messages ADD COLUMN body_purged_at text COLLATE "C";

-- Digests of purged large bodies: every node deletes its cached copy (blobs/) once no kept
-- message has those bytes. Rows stay a week, so that a node that was down catches up.
CREATE TABLE purged_blobs (
    sha256 text COLLATE "C" PRIMARY KEY,
    since  text COLLATE "C" NOT NULL
);
