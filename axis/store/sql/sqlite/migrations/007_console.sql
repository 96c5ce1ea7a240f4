-- The console (axis/web/console): browser sessions, and the indexes its pages search by, so
-- that no page scans a big store (1,000,000 messages, 10,000,000 audit events).
--
-- Migration 006 is kept for the connected systems (VDXP).

-- A browser's session: an admin or auditor token exchanged at sign-in. Only the SHA-256 of
-- the session id is kept (as for tokens); the role is the token's, so revoking the token
-- ends its sessions at once. Sessions live here, not in a process, so every process and
-- node serving the port knows them.
CREATE TABLE console_sessions (
    session_hash TEXT PRIMARY KEY,
    token_id     TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL
);

-- documents per hour and today (the overview), overdue recipients: by kind and time
CREATE INDEX messages_received ON messages (kind, received_at);
-- messages by recipient, newest first (the message search)
CREATE INDEX deliveries_recipient ON deliveries (delivered_to, seq);
-- deliveries by state: counted on the overview (open ones, failed ones) from the index alone,
-- listed newest first (retrying, dead, failed)
CREATE INDEX deliveries_state ON deliveries (open, state, seq);
-- endpoints failing: deliveries waiting after a failed push, per recipient, oldest round first
CREATE INDEX deliveries_retrying ON deliveries (delivered_to, push_since) WHERE state = 'retrying';
