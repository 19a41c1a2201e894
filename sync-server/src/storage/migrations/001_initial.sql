-- Schema 1: workspaces, devices, one-time enrollment tokens, and the blob log.
-- Times are unix seconds. Tokens are stored only as SHA-256 hashes.

CREATE TABLE workspaces (
    id          INTEGER PRIMARY KEY,
    public_id   TEXT NOT NULL UNIQUE,
    name        TEXT,
    created_at  INTEGER NOT NULL,
    -- Highest sequence number assigned; advanced in the push transaction.
    head_seq    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE devices (
    id            INTEGER PRIMARY KEY,
    public_id     TEXT NOT NULL UNIQUE,
    workspace     INTEGER NOT NULL REFERENCES workspaces (id),
    name          TEXT NOT NULL,
    token_hash    BLOB NOT NULL UNIQUE,
    enrolled_at   INTEGER NOT NULL,
    last_sync_at  INTEGER,
    revoked_at    INTEGER
);
CREATE INDEX devices_workspace ON devices (workspace);

CREATE TABLE enrollment_tokens (
    token_hash  BLOB PRIMARY KEY,
    workspace   INTEGER NOT NULL REFERENCES workspaces (id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    issued_by   INTEGER REFERENCES devices (id),  -- NULL: issued by the operator
    used_at     INTEGER,
    used_by     INTEGER REFERENCES devices (id)
) WITHOUT ROWID;
CREATE INDEX enrollment_tokens_issuer ON enrollment_tokens (issued_by) WHERE issued_by IS NOT NULL;

CREATE TABLE blobs (
    workspace      INTEGER NOT NULL REFERENCES workspaces (id),
    seq            INTEGER NOT NULL,
    content_id     BLOB NOT NULL,
    doc_id         BLOB NOT NULL,
    epoch          INTEGER NOT NULL,
    device         INTEGER NOT NULL REFERENCES devices (id),  -- first pusher
    size           INTEGER NOT NULL,
    ciphertext     BLOB,           -- NULL once compacted away (the row stays for idempotency)
    created_at     INTEGER NOT NULL,
    superseded_by  INTEGER,        -- seq of the full save that covers this blob
    superseded_at  INTEGER,
    PRIMARY KEY (workspace, seq)
);
CREATE UNIQUE INDEX blobs_content ON blobs (workspace, content_id);
CREATE INDEX blobs_doc ON blobs (workspace, doc_id, seq);
CREATE INDEX blobs_device ON blobs (device);
CREATE INDEX blobs_superseded ON blobs (superseded_at)
    WHERE superseded_at IS NOT NULL AND ciphertext IS NOT NULL;
