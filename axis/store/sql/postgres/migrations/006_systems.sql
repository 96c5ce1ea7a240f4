-- Connected systems (the VNPT SDK's systemid), as in SQLite's 006.

CREATE TABLE systems (
    id              text COLLATE "C" PRIMARY KEY,
    name            text NOT NULL,
    signature       text NOT NULL CHECK (signature IN ('required', 'optional')),
    register        boolean NOT NULL DEFAULT false,
    status          text NOT NULL CHECK (status IN ('active', 'disabled')),
    secret          text NOT NULL,
    previous_secret text,
    secret_set_at   text COLLATE "C" NOT NULL,
    created_at      text COLLATE "C" NOT NULL,
    updated_at      text COLLATE "C" NOT NULL
);

CREATE TABLE system_agencies (
    organ_id  text COLLATE "C" PRIMARY KEY,
    system_id text COLLATE "C" NOT NULL REFERENCES systems (id)
);
CREATE INDEX system_agencies_system ON system_agencies (system_id);

ALTER TABLE messages ADD COLUMN authenticated_by text NOT NULL DEFAULT 'signature';
ALTER TABLE messages ADD COLUMN system_id text COLLATE "C";
ALTER TABLE messages ADD COLUMN subject text;
ALTER TABLE messages ADD COLUMN notation text;

ALTER TABLE deliveries ADD COLUMN processing_at text COLLATE "C";

ALTER TABLE agencies ADD COLUMN number bigint;
ALTER TABLE agencies ADD COLUMN version bigint NOT NULL DEFAULT 0;
UPDATE agencies SET number = n FROM (SELECT organ_id AS o, row_number() OVER (ORDER BY organ_id) AS n
    FROM agencies) ranked WHERE organ_id = ranked.o;
CREATE UNIQUE INDEX agencies_number ON agencies (number);
