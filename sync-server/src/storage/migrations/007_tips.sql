-- Schema 7: anonymous tips (docs/0008-tips.md). A coordinator's device publishes the
-- workspace's tip page, signed; anyone may post a tip to it, sealed in their browser to the
-- team's tip key; coordinators' devices fetch the waiting tips, store them as records and say
-- so, and the server deletes them. Replies are sealed to the tipster and kept under the
-- receipt's lookup id. The server keeps no trace of the tipster: no address, no user agent, no
-- exact time (the hour is enough to order them), only the ciphertext.

-- `tips_waiting` is what pulls report to coordinators (read with the head, at no cost), and
-- what a submission checks against the cap; `tips_seq` numbers the workspace's tips, never
-- reusing a number, so a late "done" for a deleted tip cannot delete a newer one, and a
-- workspace's numbers say nothing of other workspaces' tips.
ALTER TABLE workspaces ADD COLUMN tips_waiting INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workspaces ADD COLUMN tips_seq INTEGER NOT NULL DEFAULT 0;

-- One page per workspace; publishing again replaces it (and a new path frees the old one).
CREATE TABLE tip_pages (
    workspace     INTEGER PRIMARY KEY REFERENCES workspaces (id),
    page          TEXT NOT NULL UNIQUE,   -- the path segment under /t/, 26 base32 characters
    statement     BLOB NOT NULL,          -- the signed CBOR TipPageStatement, as published
    device        INTEGER NOT NULL REFERENCES devices (id),  -- the coordinator's that signed it
    signature     BLOB NOT NULL,
    published_at  INTEGER NOT NULL
);

CREATE TABLE tips (
    workspace      INTEGER NOT NULL REFERENCES workspaces (id),
    id             INTEGER NOT NULL,      -- from workspaces.tips_seq
    received_hour  INTEGER NOT NULL,      -- unix seconds rounded down to the hour
    epoch          INTEGER NOT NULL,      -- of the tip key it is sealed to, as the browser said
    ephemeral      BLOB NOT NULL,         -- 32 bytes
    nonce          BLOB NOT NULL,         -- 24 bytes
    sealed         BLOB NOT NULL,
    PRIMARY KEY (workspace, id)
);

CREATE TABLE tip_replies (
    id         INTEGER PRIMARY KEY,       -- order of arrival
    workspace  INTEGER NOT NULL REFERENCES workspaces (id),
    lookup     BLOB NOT NULL,             -- 16 bytes, from the tipster's receipt code
    ephemeral  BLOB NOT NULL,
    nonce      BLOB NOT NULL,
    sealed     BLOB NOT NULL
);
CREATE INDEX tip_replies_lookup ON tip_replies (workspace, lookup, id);
