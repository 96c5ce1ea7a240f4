-- Connected systems (the VNPT SDK's systemid): one installation of document software serving
-- one or more agencies, authenticated by an HMAC secret the axis keeps sealed (AES-256-GCM
-- under systems.key in the data directory; the store alone does not reveal it).

CREATE TABLE systems (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    signature       TEXT NOT NULL CHECK (signature IN ('required', 'optional')),
    register        INTEGER NOT NULL DEFAULT 0,   -- may use registerAgency / deleteAgency
    status          TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    secret          TEXT NOT NULL,                -- sealed; the current secret
    previous_secret TEXT,                         -- sealed; valid until the new one is used
    secret_set_at   TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

-- the codes a system serves (their descendants too); a code is listed by one system at most
CREATE TABLE system_agencies (
    organ_id  TEXT PRIMARY KEY,
    system_id TEXT NOT NULL REFERENCES systems (id)
);
CREATE INDEX system_agencies_system ON system_agencies (system_id);

-- what vouched for a message: its XML-DSig signature, or (signature: optional) the HMAC of
-- the connected system it came through; the system, when it came through one
ALTER TABLE messages ADD COLUMN authenticated_by TEXT NOT NULL DEFAULT 'signature';
ALTER TABLE messages ADD COLUMN system_id TEXT;
-- what a clerk recognises a document by in the SDK's sent list: Subject, CodeNumber/Notation
ALTER TABLE messages ADD COLUMN subject TEXT;
ALTER TABLE messages ADD COLUMN notation TEXT;

-- the recipient said it is working on it (VDXP updateStatus processing); it stays listed
ALTER TABLE deliveries ADD COLUMN processing_at TEXT;

-- the SDK's directory: a stable number per agency, and the registry version of its last change
ALTER TABLE agencies ADD COLUMN number INTEGER;
ALTER TABLE agencies ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
UPDATE agencies SET number = (SELECT count(*) FROM agencies a WHERE a.organ_id <= agencies.organ_id);
CREATE UNIQUE INDEX agencies_number ON agencies (number);
