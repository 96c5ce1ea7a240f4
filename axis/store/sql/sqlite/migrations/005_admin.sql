-- Registry administration: the history of every agency, and which expiring certificates the
-- daily audit event has already reported.

-- One row per registration or change of an agency, with who made it and what changed: closing
-- a code, suspending it or re-pointing its successor stays visible after the row in
-- `agencies` has moved on.
CREATE TABLE agency_history (
    seq       INTEGER PRIMARY KEY,
    organ_id  TEXT NOT NULL,
    at        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    status    TEXT NOT NULL,   -- the status after the change
    successor TEXT,            -- the successor after the change
    changes   TEXT NOT NULL    -- JSON {field: {"from": …, "to": …}}, secrets only as "(set)"
);
CREATE INDEX agency_history_organ ON agency_history (organ_id, seq);

-- Certificates reported as expiring on a UTC day: each is reported once a day, by whichever
-- process gets there first. Only the latest day is kept.
CREATE TABLE certificate_expiry_reports (
    day      TEXT NOT NULL,    -- YYYY-MM-DD (UTC)
    organ_id TEXT NOT NULL,
    sha256   TEXT NOT NULL,
    PRIMARY KEY (day, organ_id, sha256)
);
