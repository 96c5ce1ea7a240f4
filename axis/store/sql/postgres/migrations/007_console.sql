-- The console, as in sqlite/007_console.sql: browser sessions (a hash of the session id, the
-- token it was exchanged for), and the indexes its pages search by. 006 is kept for the
-- connected systems (VDXP).

CREATE TABLE console_sessions (
    session_hash text COLLATE "C" PRIMARY KEY,
    token_id     text COLLATE "C" NOT NULL,
    created_at   text COLLATE "C" NOT NULL,
    last_seen_at text COLLATE "C" NOT NULL
);

CREATE INDEX messages_received ON messages (kind, received_at);
CREATE INDEX deliveries_recipient ON deliveries (delivered_to, seq);
CREATE INDEX deliveries_state ON deliveries (open, state, seq);
CREATE INDEX deliveries_retrying ON deliveries (delivered_to, push_since) WHERE state = 'retrying';
