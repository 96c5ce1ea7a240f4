-- The document lifecycle: statuses relayed between the parties of a document, and the links
-- between messages (revocation, update, replacement, answers to take-back requests).

CREATE TABLE statuses (
    seq         INTEGER PRIMARY KEY,
    message_id  TEXT NOT NULL,   -- the status packet that carried it
    doc_from    TEXT NOT NULL,   -- the document it concerns: its sender …
    document_id TEXT NOT NULL,   -- … and its DocumentId
    party       TEXT NOT NULL,   -- the recipient agency whose row of the document it belongs to
    code        TEXT NOT NULL,
    at          TEXT NOT NULL,   -- when it happened: the packet's Timestamp, else receipt time
    received_at TEXT NOT NULL
);
CREATE INDEX statuses_document ON statuses (doc_from, document_id, party);

CREATE TABLE links (
    from_message TEXT NOT NULL,  -- the newer message …
    to_message   TEXT NOT NULL,  -- … refers to this one
    relation     TEXT NOT NULL,  -- revokes | updates | replaces | status_of | answers
    PRIMARY KEY (from_message, to_message, relation)
);
CREATE INDEX links_to ON links (to_message);

CREATE INDEX messages_document_any ON messages (from_id, document_id);
