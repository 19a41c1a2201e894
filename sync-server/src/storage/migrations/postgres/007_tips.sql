-- PostgreSQL schema 7: the same as SQLite's schema 7 (see ../007_tips.sql).
ALTER TABLE workspaces ADD COLUMN tips_waiting BIGINT NOT NULL DEFAULT 0;
ALTER TABLE workspaces ADD COLUMN tips_seq BIGINT NOT NULL DEFAULT 0;

CREATE TABLE tip_pages (
    workspace     BIGINT PRIMARY KEY REFERENCES workspaces (id),
    page          TEXT NOT NULL UNIQUE,
    statement     BYTEA NOT NULL,
    device        BIGINT NOT NULL REFERENCES devices (id),
    signature     BYTEA NOT NULL,
    published_at  BIGINT NOT NULL
);

CREATE TABLE tips (
    workspace      BIGINT NOT NULL REFERENCES workspaces (id),
    id             BIGINT NOT NULL,
    received_hour  BIGINT NOT NULL,
    epoch          BIGINT NOT NULL,
    ephemeral      BYTEA NOT NULL,
    nonce          BYTEA NOT NULL,
    sealed         BYTEA NOT NULL,
    PRIMARY KEY (workspace, id)
);

CREATE TABLE tip_replies (
    id         BIGSERIAL PRIMARY KEY,
    workspace  BIGINT NOT NULL REFERENCES workspaces (id),
    lookup     BYTEA NOT NULL,
    ephemeral  BYTEA NOT NULL,
    nonce      BYTEA NOT NULL,
    sealed     BYTEA NOT NULL
);
CREATE INDEX tip_replies_lookup ON tip_replies (workspace, lookup, id);
