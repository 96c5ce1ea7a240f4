-- The registry, tokens and the schema's own records (axis/store/ops/agencies.py, tokens.py).

-- name: probe
SELECT 1;

-- name: lock_migrations
-- one node migrates at a time; the others wait, then find nothing left to do
SELECT pg_advisory_xact_lock(hashtext('axis_migrate'));

-- name: lock_registry
-- registry changes take turns across nodes: link checks then see every committed change
SELECT 1 FROM meta WHERE key = 'registry_version' FOR UPDATE;

-- name: meta_exists
SELECT to_regclass('meta') IS NOT NULL;

-- name: meta_all
SELECT key, value FROM meta;

-- name: meta_get
SELECT value FROM meta WHERE key = ?;

-- name: meta_put
INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value;

-- name: registry_bump
UPDATE meta SET value = (value::bigint + 1)::text WHERE key = 'registry_version';

-- name: agency_ids
SELECT organ_id FROM agencies;

-- name: agencies_all
SELECT organ_id, name, kind, parent, status, successor, endpoint, push_secret, allow_sha1,
    confirmed, source, number, version, updated_at FROM agencies ORDER BY organ_id;

-- name: agency_by_id
SELECT organ_id, name, kind, parent, status, successor, endpoint, push_secret, allow_sha1,
    confirmed, source, number, version, updated_at FROM agencies WHERE organ_id = ?;

-- name: agency_links
SELECT organ_id, status, successor FROM agencies;

-- name: agency_upsert
-- a new agency takes the next number; every change carries the registry version it makes
-- (the operation bumps the version once, after its changes)
INSERT INTO agencies (organ_id, name, kind, parent, status, successor, endpoint, push_secret,
    allow_sha1, confirmed, source, updated_at, number, version)
    VALUES (?,?,?,?,?,?,?,?,?,?,?,?, (SELECT COALESCE(max(number), 0) + 1 FROM agencies),
    (SELECT value::bigint + 1 FROM meta WHERE key = 'registry_version'))
    ON CONFLICT (organ_id) DO UPDATE SET name = excluded.name, kind = excluded.kind,
    parent = excluded.parent, status = excluded.status, successor = excluded.successor,
    endpoint = excluded.endpoint, push_secret = excluded.push_secret,
    allow_sha1 = excluded.allow_sha1, confirmed = excluded.confirmed, source = excluded.source,
    updated_at = excluded.updated_at, version = excluded.version;

-- name: certificates_all
SELECT organ_id, pem FROM certificates ORDER BY organ_id, not_before;

-- name: certificates_of
SELECT pem FROM certificates WHERE organ_id = ?;

-- name: certificates_clear
DELETE FROM certificates WHERE organ_id = ?;

-- name: certificate_insert
INSERT INTO certificates (organ_id, sha256, pem, not_before, not_after) VALUES (?,?,?,?,?)
    ON CONFLICT DO NOTHING;

-- name: agency_history_insert
INSERT INTO agency_history (organ_id, at, actor, status, successor, changes)
    VALUES (?,?,?,?,?,?);

-- name: agency_history_of
SELECT at, actor, status, successor, changes FROM agency_history WHERE organ_id = ? ORDER BY seq;

-- name: expiry_reports_before_clear
DELETE FROM certificate_expiry_reports WHERE day < ?;

-- name: expiry_report_insert
-- whichever node inserts the row first reports the certificate that day
INSERT INTO certificate_expiry_reports (day, organ_id, sha256) VALUES (?,?,?)
    ON CONFLICT DO NOTHING RETURNING 1;

-- name: expiry_reports_of
SELECT organ_id, sha256 FROM certificate_expiry_reports WHERE day = ?;

-- name: token_insert
INSERT INTO tokens (token_id, token_hash, role, organ_id, created_at) VALUES (?,?,?,?,?);

-- name: token_principal
SELECT token_id, role, organ_id FROM tokens WHERE token_hash = ? AND revoked_at IS NULL;

-- name: token_revoke
UPDATE tokens SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL RETURNING organ_id;

-- name: tokens_all
SELECT token_id, role, organ_id, created_at, last_used_at, revoked_at FROM tokens
    ORDER BY created_at;

-- name: tokens_of
SELECT token_id, role, organ_id, created_at, last_used_at, revoked_at FROM tokens
    WHERE organ_id = ? ORDER BY created_at;

-- name: token_touch
UPDATE tokens SET last_used_at = ? WHERE token_id = ?
    AND (last_used_at IS NULL OR last_used_at < ?);
