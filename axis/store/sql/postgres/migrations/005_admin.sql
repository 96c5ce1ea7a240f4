-- Registry administration, as in sqlite/005_admin.sql: the history of every agency, and which
-- expiring certificates the daily audit event has already reported.

CREATE TABLE agency_history (
    seq       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organ_id  text COLLATE "C" NOT NULL,
    at        text COLLATE "C" NOT NULL,
    actor     text NOT NULL,
    status    text NOT NULL,   -- the status after the change
    successor text COLLATE "C",            -- the successor after the change
    changes   text NOT NULL    -- JSON {field: {"from": …, "to": …}}, secrets only as "(set)"
);
CREATE INDEX agency_history_organ ON agency_history (organ_id, seq);

-- Certificates reported as expiring on a UTC day: each is reported once a day, by whichever
-- node gets there first (INSERT … ON CONFLICT DO NOTHING RETURNING decides). Only the latest
-- day is kept.
CREATE TABLE certificate_expiry_reports (
    day      text COLLATE "C" NOT NULL,
    organ_id text COLLATE "C" NOT NULL,
    sha256   text COLLATE "C" NOT NULL,
    PRIMARY KEY (day, organ_id, sha256)
);
