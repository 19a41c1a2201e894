-- PostgreSQL schema 1: the same tables as SQLite's schema 1 (see ../001_initial.sql).
-- Times are unix seconds. Tokens are stored only as SHA-256 hashes.

CREATE TABLE workspaces (
    id          BIGSERIAL PRIMARY KEY,
    public_id   TEXT NOT NULL UNIQUE,
    name        TEXT,
    created_at  BIGINT NOT NULL,
    -- Highest sequence number assigned; advanced in the push transaction, which holds this row
    -- locked (SELECT ... FOR NO KEY UPDATE) until it commits.
    head_seq    BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE devices (
    id            BIGSERIAL PRIMARY KEY,
    public_id     TEXT NOT NULL UNIQUE,
    workspace     BIGINT NOT NULL REFERENCES workspaces (id),
    name          TEXT NOT NULL,
    token_hash    BYTEA NOT NULL UNIQUE,
    enrolled_at   BIGINT NOT NULL,
    last_sync_at  BIGINT,
    revoked_at    BIGINT
);
CREATE INDEX devices_workspace ON devices (workspace);

CREATE TABLE enrollment_tokens (
    token_hash  BYTEA PRIMARY KEY,
    workspace   BIGINT NOT NULL REFERENCES workspaces (id),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    issued_by   BIGINT REFERENCES devices (id),  -- NULL: issued by the operator
    used_at     BIGINT,
    used_by     BIGINT REFERENCES devices (id)
);
CREATE INDEX enrollment_tokens_issuer ON enrollment_tokens (issued_by) WHERE issued_by IS NOT NULL;

CREATE TABLE blobs (
    workspace      BIGINT NOT NULL REFERENCES workspaces (id),
    seq            BIGINT NOT NULL,
    content_id     BYTEA NOT NULL,
    doc_id         BYTEA NOT NULL,
    epoch          BIGINT NOT NULL,
    device         BIGINT NOT NULL REFERENCES devices (id),  -- first pusher
    size           BIGINT NOT NULL,
    ciphertext     BYTEA,          -- NULL once compacted away (the row stays for idempotency)
    created_at     BIGINT NOT NULL,
    superseded_by  BIGINT,         -- seq of the full save that covers this blob
    superseded_at  BIGINT,
    PRIMARY KEY (workspace, seq)
);
-- Ciphertext does not compress: store it out of line without trying.
ALTER TABLE blobs ALTER COLUMN ciphertext SET STORAGE EXTERNAL;
CREATE UNIQUE INDEX blobs_content ON blobs (workspace, content_id);
CREATE INDEX blobs_doc ON blobs (workspace, doc_id, seq);
CREATE INDEX blobs_device ON blobs (device);
CREATE INDEX blobs_superseded ON blobs (superseded_at)
    WHERE superseded_at IS NOT NULL AND ciphertext IS NOT NULL;
