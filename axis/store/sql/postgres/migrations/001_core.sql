-- The core, as in sqlite/001_core.sql: agencies and their pins, tokens, messages stored once,
-- one delivery per recipient, and the audit chain. Times are the same fixed-width RFC 3339
-- text as in SQLite (sortable as text; every text compared or sorted is COLLATE "C", so the
-- order is the bytes' order whatever the database's locale).

CREATE TABLE agencies (
    organ_id    text COLLATE "C" PRIMARY KEY,
    name        text NOT NULL,
    kind        text NOT NULL,
    parent      text COLLATE "C",
    status      text NOT NULL CHECK (status IN ('active', 'suspended', 'closed')),
    successor   text COLLATE "C",
    endpoint    text,
    push_secret text,
    allow_sha1  boolean NOT NULL DEFAULT false,
    confirmed   boolean NOT NULL DEFAULT true,
    source      text,
    updated_at  text COLLATE "C" NOT NULL
);

CREATE TABLE certificates (
    organ_id   text COLLATE "C" NOT NULL REFERENCES agencies (organ_id),
    sha256     text COLLATE "C" NOT NULL,
    pem        text NOT NULL,
    not_before text COLLATE "C" NOT NULL,
    not_after  text COLLATE "C" NOT NULL,
    PRIMARY KEY (organ_id, sha256)
);

CREATE TABLE tokens (
    token_id     text COLLATE "C" PRIMARY KEY,
    token_hash   text COLLATE "C" NOT NULL UNIQUE,
    role         text NOT NULL CHECK (role IN ('agency', 'admin', 'auditor')),
    organ_id     text COLLATE "C",
    created_at   text COLLATE "C" NOT NULL,
    last_used_at text COLLATE "C",
    revoked_at   text COLLATE "C"
);

CREATE TABLE messages (
    seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id            text COLLATE "C" NOT NULL UNIQUE,
    kind          text NOT NULL CHECK (kind IN ('edoc', 'status')),
    from_id       text COLLATE "C" NOT NULL,
    document_id   text COLLATE "C" NOT NULL,
    business_type smallint,
    status_code   text COLLATE "C",
    sha256        text COLLATE "C" NOT NULL,
    size          bigint NOT NULL,
    received_at   text COLLATE "C" NOT NULL,
    body          bytea,                   -- the exact bytes, up to AXIS_INLINE_MAX …
    body_parts    integer NOT NULL DEFAULT 0, -- … else this many rows of message_parts
    routes        text NOT NULL,           -- JSON [[organ_id, delivered_to], ...] in address order
    replaced_ids  text,                    -- JSON list, replacements only
    signer_sha256 text
);
-- the bytes are signed and served as they are: no compression attempt on the way in
ALTER TABLE messages ALTER COLUMN body SET STORAGE EXTERNAL;
-- the same sender sending the same bytes again is the same message
CREATE UNIQUE INDEX messages_sender_digest ON messages (from_id, sha256);
-- a DocumentId introduced (new document or replacement) once per sender
CREATE UNIQUE INDEX messages_document ON messages (from_id, document_id)
    WHERE kind = 'edoc' AND business_type IN (0, 3);
CREATE INDEX messages_outbox ON messages (from_id, seq);

-- Bodies larger than AXIS_INLINE_MAX, in 1 MiB parts: every node reads them from here (a blob
-- directory is not shared between machines), and neither end holds a whole 50 MB body in
-- memory. A node keeps a copy in its blobs/ directory as a cache, named by the SHA-256.
CREATE TABLE message_parts (
    message_id text COLLATE "C" NOT NULL,
    part       integer NOT NULL,
    data       bytea NOT NULL,
    PRIMARY KEY (message_id, part)
);
ALTER TABLE message_parts ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE deliveries (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           text COLLATE "C" NOT NULL UNIQUE,
    message_id   text COLLATE "C" NOT NULL,
    delivered_to text COLLATE "C" NOT NULL,
    kind         text NOT NULL,
    state        text NOT NULL,
    open         boolean NOT NULL DEFAULT true,  -- listed in the inbox until acknowledged
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text,
    reason       text,
    updated_at   text COLLATE "C" NOT NULL,
    UNIQUE (message_id, delivered_to)
);
CREATE INDEX deliveries_inbox ON deliveries (delivered_to, seq) WHERE open;

CREATE TABLE audit_events (
    seq         bigint PRIMARY KEY,
    at          text COLLATE "C" NOT NULL,
    type        text COLLATE "C" NOT NULL,
    actor       text COLLATE "C" NOT NULL,
    message_id  text COLLATE "C",
    document_id text COLLATE "C",
    from_id     text COLLATE "C",
    to_id       text COLLATE "C",
    detail      text NOT NULL,
    hash        text NOT NULL
);
CREATE INDEX audit_message ON audit_events (message_id) WHERE message_id IS NOT NULL;

-- The head of the one audit chain all nodes append to. A batch locks this row (FOR UPDATE)
-- just before it writes its events and keeps it until COMMIT: appends serialise across
-- nodes, and sequence numbers and hashes follow commit order.
CREATE TABLE audit_head (
    id   integer PRIMARY KEY CHECK (id = 1),
    seq  bigint NOT NULL,
    hash text NOT NULL,
    at   text COLLATE "C" NOT NULL   -- the time of the last event (event times never go back)
);
INSERT INTO audit_head (id, seq, hash, at)
    VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000', '');

CREATE TABLE meta (
    key   text COLLATE "C" PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO meta (key, value) VALUES ('registry_version', '0');
