-- The core: agencies and their pins, tokens, messages stored once, one delivery per recipient,
-- and the audit chain. Times are fixed-width RFC 3339 text (sortable).

CREATE TABLE agencies (
    organ_id    TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    parent      TEXT,
    status      TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'closed')),
    successor   TEXT,
    endpoint    TEXT,
    push_secret TEXT,
    allow_sha1  INTEGER NOT NULL DEFAULT 0,
    confirmed   INTEGER NOT NULL DEFAULT 1,
    source      TEXT,
    updated_at  TEXT NOT NULL
);

CREATE TABLE certificates (
    organ_id   TEXT NOT NULL REFERENCES agencies (organ_id),
    sha256     TEXT NOT NULL,
    pem        TEXT NOT NULL,
    not_before TEXT NOT NULL,
    not_after  TEXT NOT NULL,
    PRIMARY KEY (organ_id, sha256)
);

CREATE TABLE tokens (
    token_id     TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL CHECK (role IN ('agency', 'admin', 'auditor')),
    organ_id     TEXT,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
);

CREATE TABLE messages (
    seq           INTEGER PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    kind          TEXT NOT NULL CHECK (kind IN ('edoc', 'status')),
    from_id       TEXT NOT NULL,
    document_id   TEXT NOT NULL,
    business_type INTEGER,
    status_code   TEXT,
    sha256        TEXT NOT NULL,
    size          INTEGER NOT NULL,
    received_at   TEXT NOT NULL,
    body          BLOB,
    body_file     TEXT,
    routes        TEXT NOT NULL,           -- JSON [[organ_id, delivered_to], ...] in address order
    replaced_ids  TEXT,                    -- JSON list, replacements only
    signer_sha256 TEXT
);
-- the same sender sending the same bytes again is the same message
CREATE UNIQUE INDEX messages_sender_digest ON messages (from_id, sha256);
-- a DocumentId introduced (new document or replacement) once per sender
CREATE UNIQUE INDEX messages_document ON messages (from_id, document_id)
    WHERE kind = 'edoc' AND business_type IN (0, 3);
CREATE INDEX messages_outbox ON messages (from_id, seq);

CREATE TABLE deliveries (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    message_id   TEXT NOT NULL,
    delivered_to TEXT NOT NULL,
    kind         TEXT NOT NULL,
    state        TEXT NOT NULL,
    open         INTEGER NOT NULL DEFAULT 1,  -- listed in the inbox until acknowledged
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    reason       TEXT,
    updated_at   TEXT NOT NULL,
    UNIQUE (message_id, delivered_to)
);
CREATE INDEX deliveries_inbox ON deliveries (delivered_to, seq) WHERE open = 1;

CREATE TABLE audit_events (
    seq         INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    type        TEXT NOT NULL,
    actor       TEXT NOT NULL,
    message_id  TEXT,
    document_id TEXT,
    from_id     TEXT,
    to_id       TEXT,
    detail      TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_message ON audit_events (message_id) WHERE message_id IS NOT NULL;

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('registry_version', '0');
