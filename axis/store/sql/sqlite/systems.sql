-- Connected systems (axis/store/ops/systems.py) and what they list, read and change.

-- name: systems_all
SELECT id, name, signature, register, status, created_at, updated_at, secret_set_at, secret,
    previous_secret FROM systems ORDER BY id;

-- name: system_by_id
SELECT id, name, signature, register, status, created_at, updated_at, secret_set_at, secret,
    previous_secret FROM systems WHERE id = ?;

-- name: system_listings
SELECT system_id, organ_id FROM system_agencies ORDER BY organ_id;

-- name: system_listed
SELECT organ_id FROM system_agencies WHERE system_id = ? ORDER BY organ_id;

-- name: system_listing_of
SELECT system_id FROM system_agencies WHERE organ_id = ?;

-- name: system_insert
INSERT INTO systems (id, name, signature, register, status, secret, secret_set_at, created_at,
    updated_at) VALUES (?,?,?,?,?,?,?,?,?);

-- name: system_update
UPDATE systems SET name = ?, signature = ?, register = ?, status = ?, updated_at = ? WHERE id = ?;

-- name: system_listings_clear
DELETE FROM system_agencies WHERE system_id = ?;

-- name: system_listing_insert
INSERT INTO system_agencies (organ_id, system_id) VALUES (?, ?);

-- name: system_secret_set
-- a new secret; the one in use until now keeps working until the new one is first used
UPDATE systems SET previous_secret = secret, secret = ?, secret_set_at = ?, updated_at = ?
    WHERE id = ?;

-- name: system_previous_clear
UPDATE systems SET previous_secret = NULL, updated_at = ? WHERE id = ?
    AND previous_secret IS NOT NULL;
