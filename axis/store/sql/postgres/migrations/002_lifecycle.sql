-- The document lifecycle, as in sqlite/002_lifecycle.sql: statuses relayed between the
-- parties of a document, and the links between messages.

CREATE TABLE statuses (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id  text COLLATE "C" NOT NULL,   -- the status packet that carried it
    doc_from    text COLLATE "C" NOT NULL,   -- the document it concerns: its sender …
    document_id text COLLATE "C" NOT NULL,   -- … and its DocumentId
    party       text COLLATE "C" NOT NULL,   -- the recipient whose row it belongs to
    code        text COLLATE "C" NOT NULL,
    at          text COLLATE "C" NOT NULL,   -- the packet's Timestamp, else receipt time
    received_at text COLLATE "C" NOT NULL
);
CREATE INDEX statuses_document ON statuses (doc_from, document_id, party);

CREATE TABLE links (
    from_message text COLLATE "C" NOT NULL,  -- the newer message …
    to_message   text COLLATE "C" NOT NULL,  -- … refers to this one
    relation     text COLLATE "C" NOT NULL,  -- revokes | updates | replaces | status_of | answers
    PRIMARY KEY (from_message, to_message, relation)
);
CREATE INDEX links_to ON links (to_message);

CREATE INDEX messages_document_any ON messages (from_id, document_id);
